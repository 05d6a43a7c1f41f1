//! Keeping a node's absolute paths out of the errors it sends.
//!
//! Errors from the object store, Parquet and the file system name files by their absolute
//! path (`/srv/shardfusion/worker-1/shards/t7/s102008/<id>.parquet`), which tells a client
//! how a server's disks are laid out and is of no use to it. Every data root registers its
//! directory here when it opens ([`crate::storage::DataRoot::open`]); [`redact`] then rewrites
//! paths under those directories relative to their root (`shards/t7/s102008/<id>.parquet`),
//! as shard files are named everywhere else, and the directory itself as "the data
//! directory". [`crate::status::to_status`] and the worker's error mapping apply it to
//! every message that leaves a node.
//!
//! The registry is per process: in `local` mode the coordinator and every worker share it,
//! which is harmless, as none of them may show its paths.

use std::borrow::Cow;
use std::path::Path;
use std::sync::RwLock;

/// What a data directory named on its own becomes.
const DATA_DIR_NAME: &str = "the data directory";

/// Directories to redact, longest first so that a nested root wins over its parent.
static DATA_DIRS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Redacts `dir`, an absolute path, from every later message of this process.
pub fn register_data_dir(dir: &Path) {
    // A relative name ("data") would also match ordinary words of messages.
    if !dir.is_absolute() {
        return;
    }
    let Some(dir) = dir.to_str() else {
        return;
    };
    let dir = dir.trim_end_matches('/');
    // The file system root would redact every path; it is not a node's data directory.
    if dir.is_empty() {
        return;
    }
    let mut dirs = DATA_DIRS.write().unwrap_or_else(|e| e.into_inner());
    if !dirs.iter().any(|d| d == dir) {
        dirs.push(dir.to_string());
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    }
}

/// `message` with every registered data directory rewritten (see the module docs).
pub fn redact(message: &str) -> Cow<'_, str> {
    let dirs = DATA_DIRS.read().unwrap_or_else(|e| e.into_inner());
    if !dirs.iter().any(|d| message.contains(d.as_str())) {
        return Cow::Borrowed(message);
    }
    let mut out = message.to_string();
    for dir in dirs.iter() {
        out = redact_dir(&out, dir);
    }
    Cow::Owned(out)
}

/// Rewrites the occurrences of `dir` in `message` that name it or a path below it (and not,
/// say, `/data/worker-10` when `dir` is `/data/worker-1`).
fn redact_dir(message: &str, dir: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(dir) {
        let after = &rest[at + dir.len()..];
        out.push_str(&rest[..at]);
        if let Some(below) = after.strip_prefix('/') {
            rest = below;
        } else if after.chars().next().is_none_or(ends_path) {
            out.push_str(DATA_DIR_NAME);
            rest = after;
        } else {
            out.push_str(dir);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Whether `c` can follow a path in a message (so the path ended before it).
fn ends_path(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | ':' | ',' | ')' | ']' | '}' | '`')
}

/// `status` with its message redacted; code and metadata are kept.
pub fn redact_status(status: tonic::Status) -> tonic::Status {
    match redact(status.message()) {
        Cow::Borrowed(_) => status,
        Cow::Owned(message) => {
            tonic::Status::with_metadata(status.code(), message, status.metadata().clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_below_a_data_dir_become_relative_to_it() {
        let dir = "/srv/redaction-test/worker-1";
        register_data_dir(Path::new(dir));
        register_data_dir(Path::new("/srv/redaction-test"));
        let message = format!(
            "Object at location {dir}/shards/t7/s102008/a.parquet not found: No such file or \
             directory (os error 2); cannot list {dir}: denied; \
             /srv/redaction-test/worker-10/x and /srv/redaction-test/catalog.db"
        );
        assert_eq!(
            redact(&message),
            "Object at location shards/t7/s102008/a.parquet not found: No such file or \
             directory (os error 2); cannot list the data directory: denied; \
             worker-10/x and catalog.db"
        );
        assert!(matches!(redact("nothing to hide"), Cow::Borrowed(_)));
    }

    #[test]
    fn statuses_keep_their_code() {
        register_data_dir(Path::new("/srv/redaction-status"));
        let status = tonic::Status::not_found("no /srv/redaction-status/shards/x.parquet");
        let status = redact_status(status);
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "no shards/x.parquet");
    }
}
