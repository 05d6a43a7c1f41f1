//! One module per `shardfusion` subcommand, plus what they share.

pub mod coordinator;
pub mod demo;
pub mod local;
pub mod sql;
pub mod worker;

use shardfusion_common::auth::ClusterSecret;

/// The development secret used when none is configured; only allowed on loopback.
const DEV_SECRET: &str = "shardfusion-development-secret-loopback-only";

/// The configured cluster secret, or the development one if `listen` is loopback.
pub fn cluster_secret(
    given: Option<String>,
    listen: &std::net::SocketAddr,
) -> Result<ClusterSecret, String> {
    match given {
        Some(secret) if !secret.is_empty() => Ok(ClusterSecret::new(secret)),
        _ if listen.ip().is_loopback() => {
            tracing::warn!(
                "no cluster secret configured: using the development secret (loopback only); \
                 set --cluster-secret or SHARDFUSION_CLUSTER_SECRET on every node"
            );
            Ok(ClusterSecret::new(DEV_SECRET))
        }
        _ => Err(format!(
            "listening on {listen} needs a cluster secret: pass --cluster-secret or set \
             SHARDFUSION_CLUSTER_SECRET (the same on the coordinator and every worker)"
        )),
    }
}

/// Resolves when Ctrl-C (or SIGTERM) arrives.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
