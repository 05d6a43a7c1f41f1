//! [`FileStats`] to and from [`ColumnStatsMessage`]s, and bound values to and from bytes.
//!
//! Bounds are datafusion-proto `ScalarValue` messages, so a `Date32` stays a date and a
//! `Decimal128(12, 2)` keeps its precision and scale. The catalog stores the same bytes.
//! Decoding is forgiving on purpose: a bound or sketch that does not decode is dropped (it
//! becomes unknown) rather than failing the read of a whole catalog or write.

use datafusion::common::ScalarValue;
use datafusion_proto::protobuf;
use prost::Message;

use super::{Bound, ColumnStats, FileStats, HyperLogLog};
use crate::wire::ColumnStatsMessage;

/// `value` as datafusion-proto bytes; `None` for values datafusion-proto cannot encode.
pub fn encode_scalar(value: &ScalarValue) -> Option<Vec<u8>> {
    let message: protobuf::ScalarValue = value.try_into().ok()?;
    Some(message.encode_to_vec())
}

/// The value [`encode_scalar`] encoded; `None` if `bytes` are not one.
pub fn decode_scalar(bytes: &[u8]) -> Option<ScalarValue> {
    if bytes.is_empty() {
        return None;
    }
    let message = protobuf::ScalarValue::decode(bytes).ok()?;
    ScalarValue::try_from(&message).ok()
}

/// The bound as bytes and exactness; empty bytes for none.
pub fn encode_bound(bound: Option<&Bound>) -> (Vec<u8>, bool) {
    bound
        .and_then(|b| Some((encode_scalar(&b.value)?, b.exact)))
        .unwrap_or_default()
}

/// The bound stored as `bytes`; `None` for empty or undecodable bytes.
pub fn decode_bound(bytes: &[u8], exact: bool) -> Option<Bound> {
    decode_scalar(bytes).map(|value| Bound { value, exact })
}

/// `stats` as wire messages, one per column.
pub fn to_messages(stats: &FileStats) -> Vec<ColumnStatsMessage> {
    stats
        .columns
        .iter()
        .map(|(name, column)| {
            let (min, min_exact) = encode_bound(column.min.as_ref());
            let (max, max_exact) = encode_bound(column.max.as_ref());
            ColumnStatsMessage {
                name: name.clone(),
                null_count: column.null_count,
                min,
                max,
                min_exact,
                max_exact,
                distinct_sketch: column
                    .distinct
                    .as_ref()
                    .map(HyperLogLog::to_bytes)
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The statistics carried by `messages`; `None` when there are none (not recorded).
pub fn from_messages(messages: &[ColumnStatsMessage]) -> Option<FileStats> {
    if messages.is_empty() {
        return None;
    }
    let columns = messages
        .iter()
        .map(|m| {
            let stats = ColumnStats {
                null_count: m.null_count,
                min: decode_bound(&m.min, m.min_exact),
                max: decode_bound(&m.max, m.max_exact),
                distinct: HyperLogLog::from_bytes(&m.distinct_sketch),
            };
            (m.name.clone(), stats)
        })
        .collect();
    Some(FileStats { columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_round_trip() {
        let values = [
            ScalarValue::Int32(Some(-7)),
            ScalarValue::Date32(Some(19_000)),
            ScalarValue::Decimal128(Some(12_345), 12, 2),
            ScalarValue::TimestampMicrosecond(Some(1_700_000_000_000_000), Some("UTC".into())),
            ScalarValue::Utf8(Some("héllo".into())),
            ScalarValue::Boolean(Some(true)),
            ScalarValue::Float64(Some(-0.0)),
        ];
        for value in values {
            let bytes = encode_scalar(&value).expect("encodable");
            assert_eq!(decode_scalar(&bytes), Some(value));
        }
        assert_eq!(decode_scalar(&[]), None);
        assert_eq!(decode_scalar(&[0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn file_stats_round_trip() {
        let mut sketch = HyperLogLog::new();
        sketch.add_bytes(b"x");
        let mut stats = FileStats::default();
        stats.columns.insert(
            "a".into(),
            ColumnStats {
                null_count: 3,
                min: Some(Bound {
                    value: ScalarValue::Int64(Some(1)),
                    exact: true,
                }),
                max: Some(Bound {
                    value: ScalarValue::Int64(Some(9)),
                    exact: false,
                }),
                distinct: Some(sketch),
            },
        );
        stats.columns.insert("b".into(), ColumnStats::default());
        assert_eq!(from_messages(&to_messages(&stats)), Some(stats));
        assert_eq!(from_messages(&[]), None);
    }
}
