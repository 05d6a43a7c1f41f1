//! The flags that bound statements on `coordinator` and `local`: how many run at once, how
//! many wait, and the default `statement_timeout` and per-query memory limit.

use shardfusion_scheduler::limits::admission::{DEFAULT_MAX_QUEUED, DEFAULT_MAX_RUNNING};
use shardfusion_scheduler::limits::server_limits::ServerLimits;
use shardfusion_scheduler::session::session_settings::{
    MEMORY_LIMIT, STATEMENT_TIMEOUT, SessionSettings,
};

/// `--max-running-statements`, `--max-queued-statements`, `--statement-timeout`,
/// `--query-memory-limit`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Statements running at once; more wait in a queue.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_RUNNING as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_running_statements: u64,
    /// Statements waiting for a slot; beyond, a statement is refused with
    /// ResourceExhausted (SQLSTATE 53300).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_QUEUED)]
    pub max_queued_statements: usize,
    /// Default statement_timeout, as PostgreSQL writes it ('30s', '5min', 2000 for
    /// milliseconds; 0: none). Sessions change theirs with SET statement_timeout.
    #[arg(long, value_name = "DURATION", default_value = "0")]
    pub statement_timeout: String,
    /// Default memory limit of each query on each node ('512M', '2G'; 0: none): beyond it,
    /// sorts and aggregations spill to disk, or the query fails with ResourceExhausted.
    /// Sessions change theirs with SET datafusion.runtime.memory_limit.
    #[arg(long, value_name = "BYTES", default_value = "0")]
    pub query_memory_limit: String,
}

impl LimitArgs {
    /// The limits, or what is wrong with a flag.
    pub fn limits(&self) -> Result<ServerLimits, String> {
        let mut defaults = SessionSettings::default();
        defaults
            .set(STATEMENT_TIMEOUT, &self.statement_timeout)
            .map_err(|e| format!("--statement-timeout: {e}"))?;
        defaults
            .set(MEMORY_LIMIT, &self.query_memory_limit)
            .map_err(|e| format!("--query-memory-limit: {e}"))?;
        Ok(ServerLimits {
            max_running: usize::try_from(self.max_running_statements).unwrap_or(usize::MAX),
            max_queued: self.max_queued_statements,
            defaults,
        })
    }
}
