//! One module per `shardfusion` subcommand, plus what they share.

pub mod cluster_secret;
pub mod coordinator;
pub mod demo;
pub mod limit_args;
pub mod local;
pub mod sql;
pub mod tls_args;
pub mod users;
pub mod worker;

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
