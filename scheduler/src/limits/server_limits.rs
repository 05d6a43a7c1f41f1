//! [`ServerLimits`]: the limits a coordinator starts with (its command-line flags): the
//! statement slots and queue, and the settings statements get where their session sets
//! none.

use crate::cluster::shared_state::Cluster;
use crate::limits::admission::{DEFAULT_MAX_QUEUED, DEFAULT_MAX_RUNNING};
use crate::session::session_settings::SessionSettings;

/// A coordinator's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Statements running at once (`--max-running-statements`).
    pub max_running: usize,
    /// Statements waiting for a slot (`--max-queued-statements`).
    pub max_queued: usize,
    /// `statement_timeout` and `datafusion.runtime.memory_limit` by default
    /// (`--statement-timeout`, `--query-memory-limit`).
    pub defaults: SessionSettings,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_running: DEFAULT_MAX_RUNNING,
            max_queued: DEFAULT_MAX_QUEUED,
            defaults: SessionSettings::default(),
        }
    }
}

impl ServerLimits {
    /// Puts the limits in force on `cluster`, for statements starting from now on.
    pub fn apply(&self, cluster: &Cluster) {
        cluster.set_statement_slots(self.max_running, self.max_queued);
        cluster.set_default_settings(self.defaults);
    }
}
