//! Checking that an Arrow IPC message's buffers lie inside its body, before arrow-ipc decodes
//! it.
//!
//! arrow-ipc slices each buffer out of the body as the message header says, without checking
//! it against the body's length: a message cut off midway, or a forged header, panics the
//! decoding task. Flight data from a peer goes through [`checked_message`] first, so it fails
//! with a decode error (`InvalidArgument`) instead.

use arrow::ipc::{MessageHeader, root_as_message};
use arrow_flight::FlightData;
use arrow_flight::error::FlightError;

/// `data`, if every buffer its header names lies inside its body.
pub fn checked_message(data: FlightData) -> Result<FlightData, FlightError> {
    if data.data_header.is_empty() {
        return Ok(data);
    }
    let bad = |reason: String| FlightError::DecodeError(format!("malformed IPC message: {reason}"));
    let message = root_as_message(&data.data_header)
        .map_err(|e| bad(format!("the header does not decode: {e}")))?;
    let body = i64::try_from(data.data_body.len()).unwrap_or(i64::MAX);
    if message.bodyLength() > body {
        return Err(bad(format!(
            "the body has {body} bytes but its header announces {} (was it cut off?)",
            message.bodyLength()
        )));
    }
    let buffers = match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch().and_then(|b| b.buffers()),
        MessageHeader::DictionaryBatch => message
            .header_as_dictionary_batch()
            .and_then(|d| d.data())
            .and_then(|b| b.buffers()),
        _ => None,
    };
    for buffer in buffers.iter().flat_map(|buffers| buffers.iter()) {
        let inside = buffer.offset() >= 0
            && buffer.length() >= 0
            && buffer
                .offset()
                .checked_add(buffer.length())
                .is_some_and(|end| end <= body);
        if !inside {
            return Err(bad(format!(
                "a buffer at offset {} of {} bytes lies outside the {body}-byte body",
                buffer.offset(),
                buffer.length()
            )));
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use futures::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn a_cut_off_body_is_a_decode_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..100))])
                .expect("batch");
        let messages: Vec<FlightData> = FlightDataEncoderBuilder::new()
            .build(futures::stream::iter([Ok(batch)]))
            .try_collect()
            .await
            .expect("encode");
        for message in &messages {
            assert!(checked_message(message.clone()).is_ok());
        }
        let mut cut = messages[1].clone();
        cut.data_body = cut.data_body.slice(..cut.data_body.len() / 2);
        assert!(matches!(
            checked_message(cut),
            Err(FlightError::DecodeError(_))
        ));
    }
}
