//! The completion rule of a shard write's `DoPut` stream.
//!
//! A clean end of an HTTP/2 stream does not mean the coordinator finished: a statement that is
//! cancelled, or whose client went away, drops its senders, and the request stream then ends
//! as if all rows had been sent. So a write counts as complete only when its last message
//! carries [`WRITE_COMPLETE_MARKER`]; [`require_completion`] turns any other end into an error,
//! and the shard writer then removes what it wrote instead of publishing the file.

use arrow_flight::FlightData;
use arrow_flight::error::FlightError;
use futures::{Stream, StreamExt};
use shardfusion_common::wire::WRITE_COMPLETE_MARKER;

/// The error a write stream ends with when the coordinator never completed it.
fn aborted() -> FlightError {
    FlightError::Tonic(Box::new(tonic::Status::invalid_argument(
        "the write stream ended before the coordinator completed it (the statement was \
         cancelled or its client went away); nothing of it was kept",
    )))
}

fn is_marker(message: &FlightData) -> bool {
    message.data_header.is_empty() && message.app_metadata.as_ref() == WRITE_COMPLETE_MARKER
}

/// Passes `data` through without its completion marker; ends with an error instead of
/// cleanly if the marker never arrives, or if anything follows it.
pub fn require_completion<S>(data: S) -> impl Stream<Item = Result<FlightData, FlightError>>
where
    S: Stream<Item = Result<FlightData, FlightError>> + Send,
{
    futures::stream::unfold(Some(Box::pin(data)), |state| async move {
        let mut data = state?;
        match data.next().await {
            Some(Ok(message)) if is_marker(&message) => match data.next().await {
                None => None,
                Some(Ok(_)) => Some((
                    Err(FlightError::ProtocolError(
                        "data after the write's completion marker".to_string(),
                    )),
                    None,
                )),
                Some(Err(e)) => Some((Err(e), None)),
            },
            Some(Ok(message)) => Some((Ok(message), Some(data))),
            Some(Err(e)) => Some((Err(e), None)),
            None => Some((Err(aborted()), None)),
        }
    })
}

/// The message that completes a write, sent by the coordinator after a placement's last rows.
pub fn completion_marker() -> FlightData {
    FlightData {
        app_metadata: WRITE_COMPLETE_MARKER.to_vec().into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    fn data(n: u8) -> FlightData {
        FlightData {
            data_header: vec![n].into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn completed_stream_ends_cleanly_without_the_marker() {
        let input = futures::stream::iter([Ok(data(1)), Ok(data(2)), Ok(completion_marker())]);
        let out: Vec<FlightData> = require_completion(input)
            .try_collect()
            .await
            .expect("complete");
        assert_eq!(out, vec![data(1), data(2)]);
    }

    #[tokio::test]
    async fn stream_without_the_marker_ends_with_an_error() {
        let input = futures::stream::iter([Ok(data(1))]);
        let out: Vec<_> = require_completion(input).collect().await;
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        let Err(FlightError::Tonic(status)) = &out[1] else {
            panic!("expected an error, got {:?}", out[1]);
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn data_after_the_marker_is_an_error() {
        let input = futures::stream::iter([Ok(completion_marker()), Ok(data(1))]);
        let out: Vec<_> = require_completion(input).collect().await;
        assert!(matches!(
            out.as_slice(),
            [Err(FlightError::ProtocolError(_))]
        ));
    }
}
