//! Shard files in S3-compatible object storage: `--storage s3://bucket/prefix`.
//!
//! Every node of a cluster started with the same storage URL reads and writes one shared
//! namespace of shard files. Paths stay what they are on local disk
//! (`shards/t7/s102008/<id>.parquet`), under the URL's prefix. The connection settings are the
//! usual AWS environment variables, read by `object_store`:
//! `AWS_ENDPOINT_URL` (e.g. `http://127.0.0.1:9000` for MinIO or moto), `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`. An `http://` endpoint is allowed without
//! `AWS_ALLOW_HTTP`: naming one is the operator's choice.
//!
//! The URL itself never carries credentials, so it can be shown (in `pg_dist_node`, in
//! errors, in registration checks) as it is.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::prefix::PrefixStore;
use url::Url;

/// Errors about a `--storage` URL and the store it names.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStorageError {
    #[error(
        "invalid --storage {given:?}: {reason} (expected s3://bucket/prefix; endpoint, region \
         and credentials come from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY)"
    )]
    InvalidUrl { given: String, reason: String },
    #[error("cannot open the object store {url}: {source}")]
    Open {
        url: String,
        source: object_store::Error,
    },
}

/// Where a cluster keeps its shard files when not on each node's local disk:
/// `s3://bucket[/prefix]`, normalized (no trailing slash, no credentials, no query).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageUrl {
    bucket: String,
    prefix: String,
}

impl StorageUrl {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix every shard file is stored under (empty: the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Opens the store, prefixed so that paths are relative to this URL.
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, ObjectStorageError> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        let store = builder.build().map_err(|source| ObjectStorageError::Open {
            url: self.to_string(),
            source,
        })?;
        Ok(if self.prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, self.prefix.as_str()))
        })
    }
}

impl FromStr for StorageUrl {
    type Err = ObjectStorageError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| ObjectStorageError::InvalidUrl {
            given: given.to_string(),
            reason: reason.to_string(),
        };
        let url = Url::parse(given).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "s3" | "s3a") {
            return Err(invalid(
                "only S3-compatible storage (s3://) is supported; leave --storage out to keep \
                 shard files on each node's disk",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("the URL takes no query or fragment"));
        }
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("no bucket"))?
            .to_string();
        let segments: Vec<&str> = url
            .path()
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect();
        let valid_segment = |segment: &&str| {
            *segment != "."
                && *segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !segments.iter().all(valid_segment) {
            return Err(invalid(
                "prefix segments may use letters, digits, '-', '_' and '.' only",
            ));
        }
        Ok(Self {
            bucket,
            prefix: segments.join("/"),
        })
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() -> Result<(), ObjectStorageError> {
        let url: StorageUrl = "s3://data/cluster-1/".parse()?;
        assert_eq!((url.bucket(), url.prefix()), ("data", "cluster-1"));
        assert_eq!(url.to_string(), "s3://data/cluster-1");
        let bare: StorageUrl = "s3a://data".parse()?;
        assert_eq!(bare.to_string(), "s3://data");
        for bad in [
            "/var/data",
            "file:///tmp/x",
            "s3://key:secret@data/x",
            "s3://data/x?region=eu",
            "s3://data/a b",
            "s3:///x",
            "gs://data/x",
        ] {
            assert!(bad.parse::<StorageUrl>().is_err(), "{bad}");
        }
        Ok(())
    }
}
