//! `shardfusion local`: a whole cluster in one process — a coordinator and N workers, each
//! worker with its own data directory and its own loopback Flight endpoint, sharing a
//! generated cluster secret.

use std::net::SocketAddr;
use std::path::PathBuf;

use shardfusion_common::auth::ClusterSecret;
use shardfusion_executor::{WorkerConfig, registration};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn run(
    workers: usize,
    data_dir: Option<PathBuf>,
    listen: SocketAddr,
    demo: bool,
) -> Result<(), String> {
    if workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    let temp = match &data_dir {
        Some(_) => None,
        None => Some(
            tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?,
        ),
    };
    let root = data_dir
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
        .ok_or("no data directory")?;
    let secret = ClusterSecret::generate();
    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let coordinator =
        shardfusion_scheduler::server::open(&root.join("coordinator"), secret.clone())
            .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn({
        let coordinator = coordinator.clone();
        let done = until_stopped(stopped.clone());
        async move {
            shardfusion_scheduler::server::serve(listener, coordinator, done)
                .await
                .map_err(|e| e.to_string())
        }
    }));
    for i in 1..=workers {
        let dir = root.join(format!("worker-{i}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let uuid = registration::worker_uuid(&dir).map_err(|e| e.to_string())?;
        let config = WorkerConfig {
            data_dir: dir,
            secret: secret.clone(),
        };
        let done = until_stopped(stopped.clone());
        tasks.push(tokio::spawn(async move {
            shardfusion_executor::serve(listener, config, done)
                .await
                .map_err(|e| e.to_string())
        }));
        coordinator
            .register_worker("127.0.0.1", port, &uuid)
            .map_err(|e| e.to_string())?;
    }
    let url = format!("grpc://{address}");
    println!("ShardFusion local cluster: 1 coordinator, {workers} workers");
    println!("Flight SQL URL: {url}");
    println!(
        "Data directory: {}{}",
        root.display(),
        if temp.is_some() { " (temporary)" } else { "" }
    );
    if demo && let Err(e) = super::demo::run(&url).await {
        eprintln!("demo failed: {e}");
    }
    println!("Connect with: shardfusion sql --url {url}   (Ctrl-C stops the cluster)");
    super::shutdown_signal().await;
    println!("Shutting down...");
    let _ = stop.send(true);
    for task in tasks {
        match task.await {
            Ok(Err(e)) => eprintln!("{e}"),
            Err(e) => eprintln!("{e}"),
            Ok(Ok(())) => {}
        }
    }
    drop(temp);
    Ok(())
}
