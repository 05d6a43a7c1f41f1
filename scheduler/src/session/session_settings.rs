//! [`SessionSettings`]: the settings a client session may change, with `SET`/`SHOW`/`RESET`
//! in SQL or Flight SQL's `SetSessionOptions`/`GetSessionOptions`.
//!
//! | name | value | effect |
//! |------|-------|--------|
//! | `statement_timeout` | milliseconds, or a number with `ms`, `s`, `min`, `h`, `d`; `0`: none | a statement running (or waiting to run) longer is cancelled with `DeadlineExceeded` (SQLSTATE 57014) |
//! | `datafusion.runtime.memory_limit` | bytes, or a number with `K`, `M`, `G`, `T`; `0`: none | a query's memory pool on each node; beyond it, operators spill, or the query fails with `ResourceExhausted` (53200) |
//! | `citus.shard_count` | 1..=64000 | shards of tables distributed without a `shard_count` |
//! | `idle_in_transaction_session_timeout` | as `statement_timeout`; default 10min, `0`: none | an explicit transaction left idle longer is rolled back (its next statement is refused, 25P02) |
//! | `search_path` | schemas, `public` among them (`"$user"`, `pg_catalog`, `information_schema` too) | none: every table is in `public`; other schemas are refused (3F000) |
//! | `TimeZone` | `UTC` (or `GMT`, `Etc/UTC`, `Z`, `+00:00`) | none: times are UTC; other zones are refused (0A000) |
//! | `citus.shard_replication_factor` | `1` | none: one placement per shard; more is refused (0A000) |
//!
//! The last three are accepted as PostgreSQL tools and Citus scripts set them, with the only
//! values ShardFusion honours; `SHOW` answers those values.
//!
//! The server's defaults (command-line flags) are the same type; a session's own values
//! take precedence ([`SessionSettings::over`]).

use std::fmt::Write as _;
use std::time::Duration;

use crate::error::{Result, SchedulerError};

/// Settings, each unset unless given. A limit set to zero is off, even where the server's
/// default sets one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionSettings {
    pub statement_timeout: Option<Duration>,
    pub memory_limit: Option<usize>,
    pub shard_count: Option<usize>,
    pub idle_in_transaction_timeout: Option<Duration>,
}

/// The names of the settings, as `SET` and `SetSessionOptions` take them.
pub const STATEMENT_TIMEOUT: &str = "statement_timeout";
pub const MEMORY_LIMIT: &str = "datafusion.runtime.memory_limit";
pub const SHARD_COUNT: &str = "citus.shard_count";
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "idle_in_transaction_session_timeout";
pub const SEARCH_PATH: &str = "search_path";
pub const TIME_ZONE: &str = "TimeZone";
pub const SHARD_REPLICATION_FACTOR: &str = "citus.shard_replication_factor";

/// Every setting's name.
pub const SETTING_NAMES: [&str; 7] = [
    STATEMENT_TIMEOUT,
    MEMORY_LIMIT,
    SHARD_COUNT,
    IDLE_IN_TRANSACTION_TIMEOUT,
    SEARCH_PATH,
    TIME_ZONE,
    SHARD_REPLICATION_FACTOR,
];

/// How long an explicit transaction may stay idle where no setting says.
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(600);

impl SessionSettings {
    /// Whether `name` is a setting of a session (case-insensitive, as in PostgreSQL).
    pub fn is_setting(name: &str) -> bool {
        canonical(name).is_some()
    }

    /// Sets `name` to `value` (its text, as `SET` gives it). `0` (or `default`) unsets the
    /// limits.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let value = value.trim().trim_matches('\'');
        match canonical(name).ok_or_else(|| unknown(name))? {
            STATEMENT_TIMEOUT => self.statement_timeout = Some(parse_duration(value)?),
            MEMORY_LIMIT => self.memory_limit = Some(parse_bytes(value)?),
            IDLE_IN_TRANSACTION_TIMEOUT => {
                self.idle_in_transaction_timeout = Some(parse_duration(value)?)
            }
            SEARCH_PATH => check_search_path(value)?,
            TIME_ZONE => check_time_zone(value)?,
            SHARD_REPLICATION_FACTOR => check_replication_factor(value)?,
            _ => self.shard_count = Some(parse_shard_count(value)?),
        }
        Ok(())
    }

    /// Unsets `name`: back to the server's default.
    pub fn reset(&mut self, name: &str) -> Result<()> {
        match canonical(name).ok_or_else(|| unknown(name))? {
            STATEMENT_TIMEOUT => self.statement_timeout = None,
            MEMORY_LIMIT => self.memory_limit = None,
            IDLE_IN_TRANSACTION_TIMEOUT => self.idle_in_transaction_timeout = None,
            SEARCH_PATH | TIME_ZONE | SHARD_REPLICATION_FACTOR => {}
            _ => self.shard_count = None,
        }
        Ok(())
    }

    /// These settings where set, `defaults` elsewhere.
    pub fn over(&self, defaults: &SessionSettings) -> SessionSettings {
        SessionSettings {
            statement_timeout: self.statement_timeout.or(defaults.statement_timeout),
            memory_limit: self.memory_limit.or(defaults.memory_limit),
            shard_count: self.shard_count.or(defaults.shard_count),
            idle_in_transaction_timeout: self
                .idle_in_transaction_timeout
                .or(defaults.idle_in_transaction_timeout),
        }
    }

    /// How long an explicit transaction may stay idle, if bounded.
    pub fn idle_in_transaction_timeout(&self) -> Option<Duration> {
        self.idle_in_transaction_timeout
            .or(Some(DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT))
            .filter(|t| !t.is_zero())
    }

    /// The statement timeout in force, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.statement_timeout.filter(|t| !t.is_zero())
    }

    /// The per-query memory limit in force, if any.
    pub fn query_memory_limit(&self) -> Option<usize> {
        self.memory_limit.filter(|bytes| *bytes > 0)
    }

    /// `name`'s value as `SHOW` prints it (`0` for no limit; the built-in shard count for an
    /// unset `citus.shard_count`).
    pub fn show(&self, name: &str) -> Result<String> {
        Ok(match canonical(name).ok_or_else(|| unknown(name))? {
            STATEMENT_TIMEOUT => self
                .timeout()
                .map_or_else(|| "0".to_string(), format_duration),
            MEMORY_LIMIT => self
                .query_memory_limit()
                .map_or_else(|| "0".to_string(), format_bytes),
            IDLE_IN_TRANSACTION_TIMEOUT => self
                .idle_in_transaction_timeout()
                .map_or_else(|| "0".to_string(), format_duration),
            SEARCH_PATH => "\"$user\", public".to_string(),
            TIME_ZONE => "UTC".to_string(),
            SHARD_REPLICATION_FACTOR => "1".to_string(),
            _ => self
                .shard_count
                .unwrap_or(shardfusion_catalog::store::DEFAULT_SHARD_COUNT)
                .to_string(),
        })
    }

    /// Every setting's name and value, as [`Self::show`] prints them.
    pub fn all(&self) -> Vec<(&'static str, String)> {
        SETTING_NAMES
            .iter()
            .map(|name| (*name, self.show(name).expect("a known setting")))
            .collect()
    }
}

fn canonical(name: &str) -> Option<&'static str> {
    let name = name.trim().trim_matches('"');
    SETTING_NAMES
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
}

fn unknown(name: &str) -> SchedulerError {
    SchedulerError::UnknownSetting {
        name: name.to_string(),
    }
}

fn bad_value(name: &str, value: &str, expected: &str) -> SchedulerError {
    SchedulerError::BadSettingValue {
        message: format!("invalid value for parameter \"{name}\": \"{value}\" ({expected})"),
    }
}

/// A PostgreSQL duration setting: milliseconds by default; `0` means none.
pub fn parse_duration(value: &str) -> Result<Duration> {
    let expected = "a number of milliseconds, or with a unit: ms, s, min, h, d";
    let (number, unit) = split_unit(value);
    let number: f64 = number
        .parse()
        .map_err(|_| bad_value(STATEMENT_TIMEOUT, value, expected))?;
    let millis = match unit.to_ascii_lowercase().as_str() {
        "" | "ms" => 1.0,
        "s" | "sec" => 1e3,
        "min" => 60e3,
        "h" => 3600e3,
        "d" => 86_400e3,
        _ => return Err(bad_value(STATEMENT_TIMEOUT, value, expected)),
    };
    let total = number * millis;
    if !(0.0..=1e13).contains(&total) || total.is_nan() {
        return Err(bad_value(STATEMENT_TIMEOUT, value, expected));
    }
    Ok(Duration::from_millis(total as u64))
}

/// A byte size: bytes by default, or with K, M, G, T (powers of 1024; `KB`, `MiB` too); `0`
/// means none.
pub fn parse_bytes(value: &str) -> Result<usize> {
    let expected = "a number of bytes, or with a unit: K, M, G, T";
    let (number, unit) = split_unit(value);
    let number: f64 = number
        .parse()
        .map_err(|_| bad_value(MEMORY_LIMIT, value, expected))?;
    let unit = unit.to_ascii_uppercase();
    let scale = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad_value(MEMORY_LIMIT, value, expected)),
    };
    let total = number * scale;
    if !(0.0..=usize::MAX as f64).contains(&total) || total.is_nan() {
        return Err(bad_value(MEMORY_LIMIT, value, expected));
    }
    Ok(total as usize)
}

/// A `search_path` naming `public` and no schema ShardFusion lacks.
fn check_search_path(value: &str) -> Result<()> {
    let schemas: Vec<String> = value
        .split(',')
        .map(|s| s.trim().trim_matches('\'').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for schema in &schemas {
        let known = [
            "public",
            "\"$user\"",
            "$user",
            "pg_catalog",
            "information_schema",
        ];
        if !known.contains(&schema.to_lowercase().as_str()) {
            return Err(SchedulerError::BadValue(
                shardfusion_common::status::with_sqlstate(
                    tonic::Status::invalid_argument(format!(
                        "schema \"{}\" does not exist: ShardFusion's tables are all in schema \
                     public",
                        schema.trim_matches('"')
                    )),
                    "3F000",
                ),
            ));
        }
    }
    if !schemas.iter().any(|s| s.eq_ignore_ascii_case("public")) {
        return Err(bad_value(
            SEARCH_PATH,
            value,
            "it must include public, where every table is",
        ));
    }
    Ok(())
}

/// A `TimeZone` that is UTC under one of its names.
fn check_time_zone(value: &str) -> Result<()> {
    let utc = [
        "utc", "etc/utc", "gmt", "etc/gmt", "z", "zulu", "+00:00", "00:00", "0", "utc0",
    ];
    match utc.contains(&value.trim().to_lowercase().as_str()) {
        true => Ok(()),
        false => Err(SchedulerError::unsupported(format!(
            "time zone \"{value}\": times are kept and shown in UTC; SET TimeZone = 'UTC'"
        ))),
    }
}

/// A `citus.shard_replication_factor` of 1.
fn check_replication_factor(value: &str) -> Result<()> {
    match value.trim() {
        "1" => Ok(()),
        _ => Err(SchedulerError::unsupported(format!(
            "citus.shard_replication_factor = {value}: every shard has one placement (reference \
             tables one on each worker); shard replication is not supported yet"
        ))),
    }
}

fn parse_shard_count(value: &str) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if (1..=64_000).contains(&n) => Ok(n),
        _ => Err(bad_value(
            SHARD_COUNT,
            value,
            "a whole number from 1 to 64000",
        )),
    }
}

fn split_unit(value: &str) -> (&str, &str) {
    let value = value.trim();
    let at = value
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    (value[..at].trim(), value[at..].trim())
}

fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

fn format_bytes(bytes: usize) -> String {
    let mut text = String::new();
    for (unit, scale) in [
        ("T", 1usize << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            let _ = write!(text, "{}{unit}", bytes / scale);
            return text;
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_as_postgres_writes_them() {
        let mut settings = SessionSettings::default();
        settings
            .set("STATEMENT_TIMEOUT", "'2s'")
            .expect("test value");
        assert_eq!(settings.statement_timeout, Some(Duration::from_secs(2)));
        settings
            .set("statement_timeout", "1500")
            .expect("test value");
        assert_eq!(
            settings.show("statement_timeout").expect("test value"),
            "1500ms"
        );
        settings.set("statement_timeout", "0").expect("test value");
        assert_eq!(settings.timeout(), None);
        // Zero turns a server default off.
        let defaults = SessionSettings {
            statement_timeout: Some(Duration::from_secs(9)),
            ..Default::default()
        };
        assert_eq!(settings.over(&defaults).timeout(), None);
        settings.set(MEMORY_LIMIT, "64M").expect("test value");
        assert_eq!(settings.memory_limit, Some(64 << 20));
        assert_eq!(settings.show(MEMORY_LIMIT).expect("test value"), "64M");
        settings.set(SHARD_COUNT, "8").expect("test value");
        assert_eq!(settings.shard_count, Some(8));
        settings.reset(SHARD_COUNT).expect("test value");
        assert_eq!(settings.shard_count, None);
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        let mut settings = SessionSettings::default();
        assert!(matches!(
            settings.set("no_such_setting", "1"),
            Err(SchedulerError::UnknownSetting { .. })
        ));
        for (name, value) in [
            (STATEMENT_TIMEOUT, "soon"),
            (STATEMENT_TIMEOUT, "-5"),
            (STATEMENT_TIMEOUT, "3 fortnights"),
            (MEMORY_LIMIT, "lots"),
            (SHARD_COUNT, "0"),
            (SHARD_COUNT, "100000"),
        ] {
            assert!(
                matches!(
                    settings.set(name, value),
                    Err(SchedulerError::BadSettingValue { .. })
                ),
                "{name} = {value}"
            );
        }
        assert_eq!(settings, SessionSettings::default());
    }

    #[test]
    fn a_session_value_wins_over_the_default() {
        let defaults = SessionSettings {
            statement_timeout: Some(Duration::from_secs(60)),
            memory_limit: Some(1 << 30),
            shard_count: None,
            idle_in_transaction_timeout: None,
        };
        let session = SessionSettings {
            statement_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let effective = session.over(&defaults);
        assert_eq!(effective.statement_timeout, Some(Duration::from_secs(1)));
        assert_eq!(effective.memory_limit, Some(1 << 30));
    }
}
