//! [`S3Server`]: a real S3-compatible server on loopback for tests and benchmarks of
//! `--storage s3://...`: moto's server mode (PyPI's `moto[server]`, which `.ci/run`
//! installs; run as `$MOTO_SERVER`, else `python3 -m moto.server`), with one bucket created.
//! Killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running S3-compatible server with one empty bucket.
pub struct S3Server {
    child: Child,
    port: u16,
    bucket: String,
}

/// The command that runs moto's server: `$MOTO_SERVER`, else `python3 -m moto.server`.
fn moto_server() -> Command {
    match std::env::var_os("MOTO_SERVER") {
        Some(program) => Command::new(program),
        None => {
            let mut command = Command::new("python3");
            command.args(["-m", "moto.server"]);
            command
        }
    }
}

/// Sends one plain HTTP/1.1 request and returns the whole response.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

impl S3Server {
    /// Starts moto's server on a free loopback port and creates `bucket`.
    pub fn start(bucket: &str) -> Result<Self, String> {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            listener.local_addr().map_err(|e| e.to_string())?.port()
        };
        let child = moto_server()
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start moto's server (python3 -m moto.server): {e}"))?;
        let mut server = Self {
            child,
            port,
            bucket: bucket.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match http(port, "PUT", &format!("/{bucket}")) {
                Ok(answer) if answer.lines().next().is_some_and(|l| l.contains(" 200")) => {
                    return Ok(server);
                }
                Ok(answer) => return Err(format!("moto did not create the bucket: {answer}")),
                Err(e) => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        return Err(format!(
                            "moto's server exited ({status}): is it installed? pip install \
                             'moto[server]' (.ci/run does), or name it with MOTO_SERVER"
                        ));
                    }
                    if Instant::now() > deadline {
                        return Err(format!("moto did not answer within 60 s: {e}"));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// `s3://bucket/prefix` for `--storage`.
    pub fn storage_url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The environment a node needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ACCESS_KEY_ID", "shardfusion-test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "shardfusion-test".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// How many objects the bucket holds under `prefix` (a plain ListObjectsV2, first 1000).
    pub fn count_objects(&self, prefix: &str) -> Result<usize, String> {
        let path = format!("/{}?list-type=2&prefix={prefix}", self.bucket);
        let answer = http(self.port, "GET", &path).map_err(|e| e.to_string())?;
        Ok(answer.matches("<Key>").count())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
