//! What a call's headers tell: its credentials (`authorization`), its deadline
//! (`grpc-timeout`) and its session (`cookie`, see [`crate::session::client_sessions`]).

use std::time::Duration;

use tonic::Status;
use tonic::metadata::MetadataMap;

pub use crate::session::client_sessions::session_cookie;

/// The `authorization` header of a call, if any.
pub fn credentials(metadata: &MetadataMap) -> Result<Option<&str>, Status> {
    metadata
        .get("authorization")
        .map(|v| v.to_str())
        .transpose()
        .map_err(|_| Status::unauthenticated("unreadable authorization header"))
}

/// The client's deadline for the call, from gRPC's `grpc-timeout` header (at most 8 digits
/// and a unit: `H`, `M`, `S`, `m`, `u`, `n`); none if absent or malformed.
pub fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        let mut metadata = MetadataMap::new();
        assert_eq!(grpc_timeout(&metadata), None);
        metadata.insert("grpc-timeout", "1500m".parse().expect("test value"));
        assert_eq!(grpc_timeout(&metadata), Some(Duration::from_millis(1500)));
        metadata.insert("grpc-timeout", "2S".parse().expect("test value"));
        assert_eq!(grpc_timeout(&metadata), Some(Duration::from_secs(2)));
        metadata.insert("grpc-timeout", "soon".parse().expect("test value"));
        assert_eq!(grpc_timeout(&metadata), None);
    }
}
