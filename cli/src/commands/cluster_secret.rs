//! Where the cluster secret of `coordinator` and `worker` comes from.
//!
//! There is no built-in secret. A coordinator started without one generates a random secret,
//! keeps it in `<data-dir>/cluster_secret` (mode 0600) so that a restart keeps its workers,
//! and prints it once with the command that starts workers. A worker must be given the
//! coordinator's secret, or refuses to start.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use shardfusion_common::auth::ClusterSecret;

/// The file in the coordinator's data directory that keeps a generated secret.
const SECRET_FILE: &str = "cluster_secret";

/// The coordinator's secret, and whether it was generated now (then it must be shown).
pub struct CoordinatorSecret {
    pub secret: ClusterSecret,
    pub generated: Option<PathBuf>,
}

/// The configured secret, else the one stored in `data_dir`, else a new one stored there.
pub fn for_coordinator(
    given: Option<String>,
    data_dir: &Path,
) -> Result<CoordinatorSecret, String> {
    if let Some(secret) = given.filter(|s| !s.is_empty()) {
        return Ok(CoordinatorSecret {
            secret: ClusterSecret::new(secret),
            generated: None,
        });
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(stored) if !stored.trim().is_empty() => {
            tracing::info!("using the cluster secret stored in {}", path.display());
            return Ok(CoordinatorSecret {
                secret: ClusterSecret::new(stored.trim()),
                generated: None,
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let secret = ClusterSecret::generate();
    write_private(&path, secret.reveal())
        .map_err(|e| format!("cannot store the cluster secret in {}: {e}", path.display()))?;
    Ok(CoordinatorSecret {
        secret,
        generated: Some(path),
    })
}

/// Creates `path` readable by its owner only, holding `secret`.
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// What a coordinator that generated its secret prints: the secret and how to start workers.
pub fn worker_instructions(
    secret: &ClusterSecret,
    stored: &Path,
    coordinator: SocketAddr,
) -> String {
    format!(
        "No cluster secret was configured: generated one and stored it in {stored} (kept \
         across restarts).\nStart workers with this secret, e.g.:\n\n  \
         SHARDFUSION_CLUSTER_SECRET={secret} shardfusion worker --coordinator http://{coordinator} \
         --data-dir WORKER_DIR --listen 127.0.0.1:50061\n",
        stored = stored.display(),
        secret = secret.reveal(),
    )
}

/// A worker's secret: it must be the coordinator's, so there is no default.
pub fn for_worker(given: Option<String>) -> Result<ClusterSecret, String> {
    match given.filter(|s| !s.is_empty()) {
        Some(secret) => Ok(ClusterSecret::new(secret)),
        None => Err(
            "a worker needs its cluster's secret: set SHARDFUSION_CLUSTER_SECRET (or pass \
             --cluster-secret) to the coordinator's secret. A coordinator started without one \
             printed it at startup and keeps it in <coordinator data dir>/cluster_secret"
                .to_string(),
        ),
    }
}
