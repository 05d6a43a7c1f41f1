//! `CREATE SEQUENCE` and `DROP SEQUENCE`, with PostgreSQL's options and defaults.
//!
//! `CYCLE` is refused: values are handed out in blocks ([`crate::session::sequence_functions`]),
//! and a block cannot wrap around.

use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, Expr, ObjectName, SequenceOptions, Statement, UnaryOperator, Value,
    ValueWithSpan,
};
use shardfusion_catalog::sequence_store::{SequenceMeta, SequenceType};

use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::session::transaction_branch::ddl_catalog;
use crate::statements::ddl::table_name;

/// `CREATE SEQUENCE [IF NOT EXISTS] name [AS type] [options]`.
pub fn create_sequence(
    coordinator: &Coordinator,
    statement: &Statement,
) -> Result<StatementOutput> {
    let Statement::CreateSequence {
        temporary,
        if_not_exists,
        name,
        data_type,
        sequence_options: options,
        owned_by,
    } = statement
    else {
        return Err(SchedulerError::invalid("not a CREATE SEQUENCE statement"));
    };
    if *temporary {
        return Err(SchedulerError::unsupported("temporary sequences"));
    }
    if owned_by.is_some() {
        return Err(SchedulerError::unsupported(
            "CREATE SEQUENCE ... OWNED BY (a serial column owns its sequence)",
        ));
    }
    let name = table_name(name)?;
    let data_type = match data_type.as_ref() {
        None | Some(SqlType::BigInt(_) | SqlType::Int8(_)) => SequenceType::BigInt,
        Some(SqlType::Integer(_) | SqlType::Int(_) | SqlType::Int4(_)) => SequenceType::Integer,
        Some(SqlType::SmallInt(_) | SqlType::Int2(_)) => SequenceType::SmallInt,
        Some(other) => {
            return Err(SchedulerError::invalid(format!(
                "sequence type must be smallint, integer, or bigint, not {other}"
            )));
        }
    };
    let meta = sequence_meta(&name, data_type, options)?;
    ddl_catalog(coordinator.cluster())?.create_sequence(&meta, *if_not_exists)?;
    Ok(StatementOutput::empty())
}

/// The sequence `name` of `data_type` that `options` describe, with PostgreSQL's defaults for
/// what they leave out (which depend on the direction).
pub fn sequence_meta(
    name: &str,
    data_type: SequenceType,
    options: &[SequenceOptions],
) -> Result<SequenceMeta> {
    let mut meta = SequenceMeta::new(name, data_type);
    let (mut min, mut max, mut start) = (None, None, None);
    for option in options {
        match option {
            SequenceOptions::IncrementBy(value, _) => meta.increment = integer(value)?,
            SequenceOptions::MinValue(value) => min = value.as_ref().map(integer).transpose()?,
            SequenceOptions::MaxValue(value) => max = value.as_ref().map(integer).transpose()?,
            SequenceOptions::StartWith(value, _) => start = Some(integer(value)?),
            SequenceOptions::Cache(value) => {
                if integer(value)? < 1 {
                    return Err(SchedulerError::invalid("CACHE must be at least 1"));
                }
            }
            SequenceOptions::Cycle(no_cycle) => {
                if !no_cycle {
                    return Err(SchedulerError::unsupported("CYCLE sequences"));
                }
            }
        }
    }
    let ascending = meta.increment > 0;
    meta.min = min.unwrap_or(if ascending { 1 } else { data_type.min() });
    meta.max = max.unwrap_or(if ascending { data_type.max() } else { -1 });
    meta.start = start.unwrap_or(if ascending { meta.min } else { meta.max });
    Ok(meta)
}

/// `DROP SEQUENCE [IF EXISTS] name, ...`.
pub fn drop_sequences(
    coordinator: &Coordinator,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<StatementOutput> {
    let cluster = coordinator.cluster();
    let names = names.iter().map(table_name).collect::<Result<Vec<_>>>()?;
    // All or nothing when one is missing, as in PostgreSQL.
    let catalog = ddl_catalog(cluster)?;
    let snapshot = catalog.snapshot();
    if !if_exists && let Some(missing) = names.iter().find(|n| !snapshot.sequences.contains_key(*n))
    {
        return Err(shardfusion_catalog::CatalogError::SequenceNotFound {
            name: missing.clone(),
        }
        .into());
    }
    for name in names {
        catalog.drop_sequence(&name, if_exists)?;
        cluster.sequences.forget(&name);
    }
    Ok(StatementOutput::empty())
}

/// An integer option value, possibly negative (down to the smallest `bigint`).
fn integer(expr: &Expr) -> Result<i64> {
    let bad = || SchedulerError::invalid(format!("sequence option value {expr} is not an integer"));
    wide_integer(expr)
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(bad)
}

fn wide_integer(expr: &Expr) -> Option<i128> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::Number(n, _),
            ..
        }) => n.parse().ok(),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => wide_integer(expr).map(|v| -v),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => wide_integer(expr),
        _ => None,
    }
}
