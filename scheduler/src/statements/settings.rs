//! `SET`, `SHOW` and `RESET` of the settings a session keeps
//! ([`crate::session::session_settings`]): `statement_timeout`,
//! `datafusion.runtime.memory_limit`, `citus.shard_count`, and the PostgreSQL and Citus
//! settings tools set (`search_path`, `TimeZone`, `citus.shard_replication_factor`) with the
//! values ShardFusion honours.
//!
//! Within one statement text, a `SET` applies to the statements after it; in a client
//! session (see [`crate::session::client_sessions`]) it lasts for the session, as in
//! PostgreSQL. `SHOW name` answers one row, in a column named after the setting. Names in
//! DataFusion's namespaces (`datafusion.*`, `shardfusion.*`) are left to DataFusion
//! (`SET datafusion.execution.batch_size = ...`), which applies them to that statement
//! alone; `SET` or `RESET` of any other name is refused as unknown (42704), as PostgreSQL
//! does. `SHOW` of other names (`SHOW ALL`) is DataFusion's.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::parser::{ResetStatement, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, Reset, Set, Statement, Value, ValueWithSpan,
};

use crate::coordinator::StatementOutput;
use crate::error::{Result, SchedulerError};
use crate::session::session_settings::{SETTING_NAMES, SessionSettings, TIME_ZONE};

/// A statement about a session's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingStatement {
    Set { name: String, value: String },
    Reset { name: String },
    ResetAll,
    Show { name: String },
}

impl SettingStatement {
    /// `statement`, if it sets, shows or resets one of a session's settings (or `RESET ALL`).
    pub fn of(statement: &DFStatement) -> Option<Self> {
        let statement = match statement {
            DFStatement::Statement(statement) => statement,
            // DataFusion parses `RESET` itself.
            DFStatement::Reset(ResetStatement::Variable(name)) => {
                if name.to_string().eq_ignore_ascii_case("all") {
                    return Some(Self::ResetAll);
                }
                return setting_name(name).map(|name| Self::Reset { name });
            }
            _ => return None,
        };
        match statement.as_ref() {
            Statement::Set(Set::SingleAssignment {
                variable, values, ..
            }) => {
                let name = setting_name(variable)?;
                match values.as_slice() {
                    [value] if is_default(value) => Some(Self::Reset { name }),
                    [value] => Some(Self::Set {
                        name,
                        value: value_text(value),
                    }),
                    _ => Some(Self::Set {
                        name,
                        value: values.iter().map(value_text).collect::<Vec<_>>().join(","),
                    }),
                }
            }
            // `SET TIME ZONE x` is PostgreSQL's `SET TimeZone TO x`.
            Statement::Set(Set::SetTimeZone { value, .. }) => Some(Self::Set {
                name: TIME_ZONE.to_string(),
                value: value_text(value),
            }),
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|ident| ident.value.as_str())
                    .collect::<Vec<_>>()
                    .join(".");
                // `SHOW TIME ZONE` is `SHOW TimeZone`.
                let name = match name.eq_ignore_ascii_case("time.zone") {
                    true => TIME_ZONE.to_string(),
                    false => name,
                };
                SessionSettings::is_setting(&name).then_some(Self::Show { name })
            }
            Statement::Reset(reset) => match &reset.reset {
                Reset::ALL => Some(Self::ResetAll),
                Reset::ConfigurationParameter(name) => {
                    setting_name(name).map(|name| Self::Reset { name })
                }
            },
            _ => None,
        }
    }

    /// Whether the statement changes settings (`SHOW` does not).
    pub fn changes(&self) -> bool {
        !matches!(self, Self::Show { .. })
    }

    /// Applies the statement to `settings` (a session's own); `defaults` are the server's,
    /// shown where the session sets nothing.
    pub fn apply(
        &self,
        settings: &mut SessionSettings,
        defaults: &SessionSettings,
    ) -> Result<StatementOutput> {
        match self {
            Self::Set { name, value } => settings.set(name, value)?,
            Self::Reset { name } => settings.reset(name)?,
            Self::ResetAll => *settings = SessionSettings::default(),
            Self::Show { name } => {
                let value = settings.over(defaults).show(name)?;
                let canonical = SETTING_NAMES
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(name))
                    .copied()
                    .unwrap_or(name.as_str());
                let schema = Arc::new(Schema::new(vec![Field::new(
                    canonical,
                    DataType::Utf8,
                    false,
                )]));
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(StringArray::from(vec![value]))],
                )
                .map_err(|e| SchedulerError::invalid(e.to_string()))?;
                return Ok(StatementOutput::Rows {
                    schema,
                    batches: vec![batch],
                });
            }
        }
        Ok(StatementOutput::empty())
    }
}

/// Whether DataFusion answers for `name` (its own configuration namespaces).
fn is_datafusion_setting(name: &str) -> bool {
    let lower = name.trim().trim_matches('"').to_ascii_lowercase();
    lower.starts_with("datafusion.") || lower.starts_with("shardfusion.")
}

fn setting_name(name: &ObjectName) -> Option<String> {
    let text = name
        .0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.clone(),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".");
    (SessionSettings::is_setting(&text) || !is_datafusion_setting(&text)).then_some(text)
}

fn is_default(value: &Expr) -> bool {
    matches!(value, Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case("default"))
}

/// A value as written, strings without their quotes.
fn value_text(value: &Expr) -> String {
    match value {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text) | Value::DoubleQuotedString(text),
            ..
        }) => text.clone(),
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    fn statement(sql: &str) -> Option<SettingStatement> {
        let mut parsed =
            DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {}).expect("test value");
        SettingStatement::of(&parsed.pop_front().expect("test value"))
    }

    #[test]
    fn settings_statements_are_recognized() {
        assert_eq!(
            statement("SET statement_timeout = '5s'"),
            Some(SettingStatement::Set {
                name: "statement_timeout".into(),
                value: "5s".into()
            })
        );
        assert_eq!(
            statement("set statement_timeout to 100"),
            Some(SettingStatement::Set {
                name: "statement_timeout".into(),
                value: "100".into()
            })
        );
        assert_eq!(
            statement("SET citus.shard_count = 4"),
            Some(SettingStatement::Set {
                name: "citus.shard_count".into(),
                value: "4".into()
            })
        );
        assert_eq!(
            statement("SET statement_timeout TO DEFAULT"),
            Some(SettingStatement::Reset {
                name: "statement_timeout".into()
            })
        );
        assert_eq!(
            statement("SHOW statement_timeout"),
            Some(SettingStatement::Show {
                name: "statement_timeout".into()
            })
        );
        assert_eq!(statement("RESET ALL"), Some(SettingStatement::ResetAll));
        assert_eq!(
            statement("RESET statement_timeout"),
            Some(SettingStatement::Reset {
                name: "statement_timeout".into()
            })
        );
        assert_eq!(statement("SET datafusion.execution.batch_size = 10"), None);
        // Names of no namespace DataFusion knows are ours to refuse.
        let mut settings = SessionSettings::default();
        for sql in [
            "SET no_such_setting = 1",
            "SET citus.no_such = 2",
            "RESET no_such",
        ] {
            let refused = statement(sql)
                .expect("ours")
                .apply(&mut settings, &SessionSettings::default());
            assert!(
                matches!(refused, Err(SchedulerError::UnknownSetting { .. })),
                "{sql}: {refused:?}"
            );
        }
        assert_eq!(statement("SELECT 1"), None);
    }

    #[test]
    fn show_answers_the_effective_value() {
        let defaults = SessionSettings {
            statement_timeout: Some(std::time::Duration::from_secs(30)),
            ..Default::default()
        };
        let mut settings = SessionSettings::default();
        let shown = statement("SHOW statement_timeout")
            .expect("test value")
            .apply(&mut settings, &defaults)
            .expect("test value");
        let StatementOutput::Rows { schema, batches } = shown else {
            panic!("rows");
        };
        assert_eq!(schema.field(0).name(), "statement_timeout");
        let values = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("test value");
        assert_eq!(values.value(0), "30s");
    }
}
