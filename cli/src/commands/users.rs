//! The flags that set up users on `coordinator` and `local`: the initial superuser, whether
//! clients elsewhere may connect without logging in, and how long a login lasts.

use std::time::Duration;

/// `--user`, `--password`, `--insecure`, `--token-ttl`.
#[derive(Debug, Clone, clap::Args)]
pub struct UserArgs {
    /// The initial superuser's name.
    #[arg(long, env = "SHARDFUSION_USER", default_value = "admin")]
    pub user: String,
    /// The initial superuser's password. With one, every client logs in (the Flight SQL
    /// handshake, e.g. ADBC's `username`/`password` options). The first start creates the
    /// user; later starts keep the stored password (change it with ALTER USER).
    #[arg(long, env = "SHARDFUSION_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Serve clients on a non-loopback address although nobody needs a password: everyone
    /// who can reach the port is a superuser. Only for networks you trust entirely.
    #[arg(long)]
    pub insecure: bool,
    /// How long a login stays valid; clients then log in again.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl: u64,
}

impl UserArgs {
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl)
    }
}
