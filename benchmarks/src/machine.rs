//! [`Machine`]: what a benchmark ran on, recorded with every report.

use serde::Serialize;

/// The machine, the software and the commit a measurement belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
    pub os: String,
    pub shardfusion_version: &'static str,
    pub datafusion_version: &'static str,
    pub arrow_version: &'static str,
    pub git_commit: String,
    /// Cargo profile the runner was built with.
    pub profile: &'static str,
    pub date: String,
}

impl Machine {
    pub fn describe() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: kib_field("/proc/meminfo", "MemTotal") as f64 / (1024.0 * 1024.0),
            cpu: cpu_model(),
            os: format!("{} {}", std::env::consts::OS, kernel_release()),
            shardfusion_version: env!("CARGO_PKG_VERSION"),
            datafusion_version: datafusion::DATAFUSION_VERSION,
            arrow_version: arrow::ARROW_VERSION,
            git_commit: git_commit(),
            profile: if cfg!(debug_assertions) {
                "dev (dependencies at opt-level 2)"
            } else {
                "release"
            },
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    /// One line for report headers.
    pub fn summary(&self) -> String {
        format!(
            "{} cores, {:.0} GiB, {}; ShardFusion {} (commit {}), DataFusion {}, Arrow {}; {} build; {}",
            self.cores,
            self.memory_gib,
            self.cpu,
            self.shardfusion_version,
            self.git_commit,
            self.datafusion_version,
            self.arrow_version,
            self.profile,
            self.date
        )
    }
}

/// The value of `key` in a `/proc` file of "Key:   value kB" lines (0 if absent).
pub fn kib_field(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// This process's peak resident memory (VmHWM), in bytes.
pub fn peak_rss_bytes() -> u64 {
    kib_field("/proc/self/status", "VmHWM") * 1024
}

/// Resets the peak-RSS counter so that [`peak_rss_bytes`] measures from now (Linux ≥ 4.0).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
