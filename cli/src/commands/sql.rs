//! `shardfusion sql`: a Flight SQL client, one-shot (`-c`) or interactive.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use shardfusion_common::tls::ClusterTls;
use tonic::transport::Channel;

use crate::output::{Format, render};

/// A connection to a coordinator.
pub struct SqlClient {
    inner: FlightSqlServiceClient<Channel>,
}

/// A user name and password to log in with.
pub type Login = Option<(String, String)>;

impl SqlClient {
    /// Connects to `url` (`grpc://` or `grpc+tls://`, trusting the PEM authority `tls_ca`),
    /// logging in with `login` if given.
    pub async fn connect(url: &str, login: Login, tls_ca: Option<&Path>) -> Result<Self, String> {
        let (http, tls) = match url.strip_prefix("grpc+tls://") {
            Some(rest) => {
                let ca = tls_ca.ok_or_else(|| {
                    format!(
                        "{url} is TLS: give --tls-ca, the authority that signed its certificate"
                    )
                })?;
                let ca = ClusterTls::load(ca).map_err(|e| e.to_string())?;
                (format!("https://{rest}"), Some(ca))
            }
            None => (
                url.replacen("grpc+tcp://", "http://", 1)
                    .replacen("grpc://", "http://", 1),
                None,
            ),
        };
        let mut endpoint = tonic::transport::Endpoint::from_shared(http.clone())
            .map_err(|e| format!("bad URL {url}: {e}"))?;
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls.client_config())
                .map_err(|e| format!("cannot set up TLS to {url}: {e}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        let mut inner = FlightSqlServiceClient::new(channel);
        if let Some((user, password)) = login {
            inner
                .handshake(&user, &password)
                .await
                .map_err(|e| format!("cannot log in to {url} as {user}: {e}"))?;
        }
        Ok(Self { inner })
    }

    /// Runs `sql` and fetches every result batch.
    pub async fn query(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
        let info = self
            .inner
            .execute(sql.to_string(), None)
            .await
            .map_err(describe)?;
        let schema: SchemaRef = std::sync::Arc::new(
            info.clone()
                .try_decode_schema()
                .map_err(|e| format!("bad schema from server: {e}"))?,
        );
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                continue;
            };
            let stream = self.inner.do_get(ticket).await.map_err(describe)?;
            let mut part: Vec<RecordBatch> = stream.try_collect().await.map_err(describe)?;
            batches.append(&mut part);
        }
        Ok((schema, batches))
    }
}

/// "message (Code)" for a server error, the error's text otherwise.
fn describe(error: arrow_flight::error::FlightError) -> String {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => {
            format!("{} ({:?})", status.message(), status.code())
        }
        other => other.to_string(),
    }
}

pub async fn run(
    url: String,
    command: Option<String>,
    format: Format,
    login: Login,
    tls_ca: Option<PathBuf>,
) -> Result<(), String> {
    let mut client = SqlClient::connect(&url, login, tls_ca.as_deref()).await?;
    if let Some(sql) = command {
        let (schema, batches) = client.query(&sql).await?;
        println!("{}", render(&schema, &batches, format)?);
        return Ok(());
    }
    interactive(&mut client, &url, format).await
}

async fn interactive(client: &mut SqlClient, url: &str, format: Format) -> Result<(), String> {
    let mut editor = DefaultEditor::new().map_err(|e| e.to_string())?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".shardfusion_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!("Connected to {url}. End statements with ';'. \\q quits, \\? helps.");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "shardfusion=> "
        } else {
            "shardfusion-> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with('\\') {
                    let _ = editor.add_history_entry(trimmed);
                    match trimmed {
                        "\\q" | "\\quit" => break,
                        "\\dt" => buffer = "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name;".into(),
                        "\\d+" | "\\dist" => buffer = "SELECT * FROM citus_tables;".into(),
                        _ => {
                            println!("\\q quit   \\dt list tables   \\dist distributed tables");
                            continue;
                        }
                    }
                } else {
                    if !buffer.is_empty() {
                        buffer.push('\n');
                    }
                    buffer.push_str(&line);
                    if !trimmed.ends_with(';') {
                        continue;
                    }
                }
                let sql = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(sql.as_str());
                let started = Instant::now();
                match client.query(&sql).await {
                    Ok((schema, batches)) => match render(&schema, &batches, format) {
                        Ok(text) => println!("{text}"),
                        Err(e) => println!("ERROR: {e}"),
                    },
                    Err(e) => println!("ERROR: {e}"),
                }
                println!("Time: {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
