//! [`FileAccess`]: which of the coordinator host's files server-side `COPY` may read or write.
//!
//! A client's SQL runs with the coordinator process's rights, so `COPY t FROM '/etc/shadow'`
//! or `COPY (...) TO '/root/.ssh/authorized_keys'` must not simply be obeyed. Access is off
//! unless directories were granted when the server started (`--allow-file-access DIR`).
//! Every path is made absolute and canonical (symlinks and `..` resolved) *before* it is
//! checked against the canonical granted roots, and the canonical path is the one used, so a
//! symlink inside a granted directory cannot lead outside it.
//!
//! This module only decides; the statements that touch files (`crate::statements::copy`, COPY ... TO in
//! `crate::coordinator`) call it, and the sessions that ordinary statements run in have no
//! `file://` object store at all.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, SchedulerError};

/// The directories server-side file access is granted under (none: access is off).
#[derive(Debug, Clone, Default)]
pub struct FileAccess {
    roots: Vec<PathBuf>,
}

/// Whether a path is to be read or written (written paths may not exist yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl FileAccess {
    /// No server-side file access: every `COPY` to or from a file is refused.
    pub fn none() -> Self {
        Self::default()
    }

    /// Access under each of `dirs`, which must exist (they are canonicalized now, once).
    pub fn granted<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> Result<Self> {
        let mut roots = Vec::new();
        for dir in dirs {
            let dir = dir.as_ref();
            let root = dir.canonicalize().map_err(|e| {
                SchedulerError::invalid(format!(
                    "--allow-file-access {}: {e} (the directory must exist)",
                    dir.display()
                ))
            })?;
            if !root.is_dir() {
                return Err(SchedulerError::invalid(format!(
                    "--allow-file-access {}: not a directory",
                    dir.display()
                )));
            }
            roots.push(root);
        }
        Ok(Self { roots })
    }

    /// Whether any directory is granted.
    pub fn is_enabled(&self) -> bool {
        !self.roots.is_empty()
    }

    /// The granted directories, canonical.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The canonical path to use for `path`, if `access` to it is granted; otherwise
    /// `PermissionDenied` saying how to grant it (or `InvalidArgument` for a malformed path).
    pub fn check(&self, path: &str, access: Access) -> Result<PathBuf> {
        let verb = match access {
            Access::Read => "COPY FROM",
            Access::Write => "COPY TO",
        };
        if !self.is_enabled() {
            return Err(SchedulerError::PermissionDenied {
                message: format!(
                    "{verb} a file on the server is disabled on this coordinator: start it with \
                     --allow-file-access DIR to grant a directory, or send the rows from the \
                     client instead (Flight SQL bulk ingest, e.g. ADBC's adbc_ingest or \
                     shardfusion's session.ingest)"
                ),
            });
        }
        let given = Path::new(path);
        if !given.is_absolute() {
            return Err(SchedulerError::invalid(format!(
                "{verb} needs an absolute path on the coordinator, got '{path}'"
            )));
        }
        let canonical = match access {
            Access::Read => given.canonicalize().map_err(|e| {
                SchedulerError::invalid(format!(
                    "could not open file \"{path}\" for reading: {}",
                    io_reason(&e)
                ))
            })?,
            Access::Write => canonical_for_write(given, path)?,
        };
        if self.roots.iter().any(|root| canonical.starts_with(root)) {
            Ok(canonical)
        } else {
            Err(SchedulerError::PermissionDenied {
                message: format!(
                    "{verb} '{path}' is outside the directories this coordinator grants file \
                     access to ({}); grant another with --allow-file-access DIR",
                    self.roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    }
}

/// The canonical form of a path that may not exist yet: its longest existing ancestor made
/// canonical, followed by the remaining plain components (no `..`, which could climb out of
/// the canonical ancestor once directories are created).
fn canonical_for_write(given: &Path, original: &str) -> Result<PathBuf> {
    if given.exists() {
        return given.canonicalize().map_err(|e| {
            SchedulerError::invalid(format!(
                "could not open \"{original}\" for writing: {}",
                io_reason(&e)
            ))
        });
    }
    let mut existing = given;
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name() else {
            break;
        };
        rest.push(name.to_os_string());
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    if given
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(SchedulerError::invalid(format!(
            "COPY TO '{original}': the path may not contain '..'"
        )));
    }
    let mut canonical = existing.canonicalize().map_err(|e| {
        SchedulerError::invalid(format!(
            "could not open \"{original}\" for writing: {}",
            io_reason(&e)
        ))
    })?;
    for name in rest.into_iter().rev() {
        canonical.push(name);
    }
    Ok(canonical)
}

fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory on the coordinator".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<PathBuf>) -> tonic::Code {
        match result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => tonic::Status::from(e).code(),
        }
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let access = FileAccess::none();
        assert_eq!(
            code(access.check("/etc/passwd", Access::Read)),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            code(access.check("/tmp/x.csv", Access::Write)),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn paths_resolve_before_the_check() {
        let granted = tempfile::tempdir().expect("temp dir");
        let outside = tempfile::tempdir().expect("temp dir");
        let secret = outside.path().join("secret.csv");
        std::fs::write(&secret, "a\n").expect("write");
        let inside = granted.path().join("data.csv");
        std::fs::write(&inside, "a\n").expect("write");
        std::os::unix::fs::symlink(&secret, granted.path().join("link.csv")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), granted.path().join("dir")).expect("symlink");
        let access = FileAccess::granted([granted.path()]).expect("grant");
        let at = |p: &Path| p.display().to_string();

        assert!(access.check(&at(&inside), Access::Read).is_ok());
        let new_file = granted.path().join("out/new.csv");
        assert!(access.check(&at(&new_file), Access::Write).is_ok());
        for (path, access_kind) in [
            (secret.clone(), Access::Read),
            (granted.path().join("link.csv"), Access::Read),
            (granted.path().join("link.csv"), Access::Write),
            (granted.path().join("dir/secret.csv"), Access::Read),
            (granted.path().join("dir/new.csv"), Access::Write),
            (
                granted
                    .path()
                    .join("../")
                    .join(outside.path().file_name().expect("temp dirs have names")),
                Access::Write,
            ),
        ] {
            let result = access.check(&at(&path), access_kind);
            assert!(
                matches!(
                    code(result),
                    tonic::Code::PermissionDenied | tonic::Code::InvalidArgument
                ),
                "{} must be refused",
                path.display()
            );
        }
        assert_eq!(
            code(access.check("relative.csv", Access::Read)),
            tonic::Code::InvalidArgument
        );
    }
}
