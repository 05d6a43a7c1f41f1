//! Citus's administration functions, called as `SELECT fn(...)`:
//! `create_distributed_table`, `create_reference_table`, `citus_add_node` and
//! `citus_remove_node` (and their `master_` names), `get_shard_id_for_distribution_column`,
//! `citus_get_active_worker_nodes`, `citus_version` and `citus_cleanup_orphaned_resources`
//! (returns how many orphaned shard files it removed).
//!
//! Arguments follow Citus's signatures, positionally or by name (`shard_count => 4`).
//! Distributing a table that holds rows moves them into the new shards (see
//! [`crate::distribution`]); the move and the change of table type commit in one catalog
//! transaction.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SelectItem, SetExpr,
    UnaryOperator, Value,
};
use shardfusion_catalog::layout::{ColocateWith, DistributionRequest};
use shardfusion_catalog::{CatalogError, TableKind};
use shardfusion_common::hashing::{hash_scalar, shard_index};

use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::node_membership;

/// A recognised call of an administration function.
#[derive(Debug)]
pub struct AdminCall {
    pub function: String,
    positional: Vec<ScalarValue>,
    named: HashMap<String, ScalarValue>,
}

const FUNCTIONS: [&str; 11] = [
    "create_distributed_table",
    "create_reference_table",
    "citus_add_node",
    "master_add_node",
    "citus_remove_node",
    "master_remove_node",
    "get_shard_id_for_distribution_column",
    "citus_get_active_worker_nodes",
    "master_get_active_worker_nodes",
    "citus_version",
    "citus_cleanup_orphaned_resources",
];

/// If `query` is `SELECT <admin function>(...)` with nothing else, the call.
pub fn admin_call(query: &Query) -> Result<Option<AdminCall>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Ok(None);
    };
    if !select.from.is_empty() || select.projection.len() != 1 {
        return Ok(None);
    }
    let expr = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return Ok(None),
    };
    let Expr::Function(function) = expr else {
        return Ok(None);
    };
    let name = function
        .name
        .0
        .last()
        .map(|p| p.to_string().to_ascii_lowercase())
        .unwrap_or_default();
    if !FUNCTIONS.contains(&name.as_str()) {
        return Ok(None);
    }
    let mut call = AdminCall {
        function: name.clone(),
        positional: Vec::new(),
        named: HashMap::new(),
    };
    let args = match &function.args {
        FunctionArguments::None => Vec::new(),
        FunctionArguments::List(list) => list.args.clone(),
        FunctionArguments::Subquery(_) => {
            return Err(SchedulerError::invalid(format!(
                "{name} takes constant arguments, not a subquery"
            )));
        }
    };
    for arg in args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                call.positional.push(constant(&name, &e)?);
            }
            FunctionArg::Named {
                name: arg_name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => {
                call.named
                    .insert(arg_name.value.to_ascii_lowercase(), constant(&name, &e)?);
            }
            FunctionArg::ExprNamed {
                name: Expr::Identifier(arg_name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => {
                call.named
                    .insert(arg_name.value.to_ascii_lowercase(), constant(&name, &e)?);
            }
            other => {
                return Err(SchedulerError::invalid(format!(
                    "unsupported argument {other} to {name}"
                )));
            }
        }
    }
    Ok(Some(call))
}

fn constant(function: &str, expr: &Expr) -> Result<ScalarValue> {
    let bad = || {
        SchedulerError::invalid(format!(
            "arguments of {function} must be constants, got {expr}"
        ))
    };
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::DoubleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::DollarQuotedString(datafusion::sql::sqlparser::ast::DollarQuotedString {
                value: s,
                ..
            }) => Ok(ScalarValue::Utf8(Some(s.clone()))),
            Value::Number(n, _) => n
                .parse::<i64>()
                .map(|i| ScalarValue::Int64(Some(i)))
                .or_else(|_| n.parse::<f64>().map(|f| ScalarValue::Float64(Some(f))))
                .map_err(|_| bad()),
            Value::Boolean(b) => Ok(ScalarValue::Boolean(Some(*b))),
            Value::Null => Ok(ScalarValue::Null),
            _ => Err(bad()),
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => constant(function, expr),
        Expr::TypedString(typed) => Ok(ScalarValue::Utf8(Some(
            typed.value.value.clone().into_string().unwrap_or_default(),
        ))),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match constant(function, expr)? {
            ScalarValue::Int64(Some(i)) => Ok(ScalarValue::Int64(Some(-i))),
            ScalarValue::Float64(Some(f)) => Ok(ScalarValue::Float64(Some(-f))),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

impl AdminCall {
    fn arg(&self, position: usize, name: &str) -> Option<&ScalarValue> {
        self.named
            .get(name)
            .or_else(|| self.positional.get(position))
            .filter(|v| !v.is_null())
    }

    fn text(&self, position: usize, name: &str) -> Result<Option<String>> {
        match self.arg(position, name) {
            None => Ok(None),
            Some(ScalarValue::Utf8(Some(s))) => Ok(Some(s.clone())),
            Some(other) => Ok(Some(other.to_string())),
        }
    }

    fn required_text(&self, position: usize, name: &str) -> Result<String> {
        self.text(position, name)?.ok_or_else(|| {
            SchedulerError::invalid(format!("{} needs the argument {name}", self.function))
        })
    }

    fn integer(&self, position: usize, name: &str) -> Result<Option<i64>> {
        match self.arg(position, name) {
            None => Ok(None),
            Some(ScalarValue::Int64(Some(i))) => Ok(Some(*i)),
            Some(ScalarValue::Utf8(Some(s))) => s.trim().parse().map(Some).map_err(|_| {
                SchedulerError::invalid(format!("{name} must be an integer, got '{s}'"))
            }),
            Some(other) => Err(SchedulerError::invalid(format!(
                "{name} must be an integer, got {other}"
            ))),
        }
    }

    /// The `nodename`, `nodeport` arguments of the node functions.
    fn node_address(&self) -> Result<(String, u16)> {
        let host = self.required_text(0, "nodename")?;
        let port = self.integer(1, "nodeport")?.ok_or_else(|| {
            SchedulerError::invalid(format!("{} needs the argument nodeport", self.function))
        })?;
        let port = u16::try_from(port)
            .map_err(|_| SchedulerError::invalid(format!("nodeport {port} is out of range")))?;
        Ok((host, port))
    }

    fn check_arity(&self, max: usize) -> Result<()> {
        if self.positional.len() > max {
            return Err(SchedulerError::invalid(format!(
                "{} takes at most {max} arguments, got {}",
                self.function,
                self.positional.len()
            )));
        }
        Ok(())
    }
}

/// Postgres folds an unquoted regclass name to lower case.
fn relation_name(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"') {
        trimmed[1..trimmed.len() - 1].to_string()
    } else {
        let unqualified = trimmed.strip_prefix("public.").unwrap_or(trimmed);
        unqualified.to_ascii_lowercase()
    }
}

fn single_value(name: &str, data_type: DataType, value: ArrayRef) -> StatementOutput {
    let schema = Arc::new(Schema::new(vec![Field::new(name, data_type, true)]));
    match RecordBatch::try_new(Arc::clone(&schema), vec![value]) {
        Ok(batch) => StatementOutput::Rows {
            schema,
            batches: vec![batch],
        },
        Err(_) => StatementOutput::empty(),
    }
}

fn void_result(name: &str) -> StatementOutput {
    single_value(name, DataType::Utf8, Arc::new(StringArray::from(vec![""])))
}

/// Runs an administration function.
pub async fn run(coordinator: &Coordinator, call: AdminCall) -> Result<StatementOutput> {
    match call.function.as_str() {
        "create_distributed_table" => {
            call.check_arity(5)?;
            let table = relation_name(&call.required_text(0, "table_name")?);
            let column = call.required_text(1, "distribution_column")?;
            if let Some(kind) = call.text(2, "distribution_type")?
                && !kind.eq_ignore_ascii_case("hash")
            {
                return Err(SchedulerError::unsupported(format!(
                    "distribution_type '{kind}' (only 'hash' is)"
                )));
            }
            let colocate_with = call
                .text(3, "colocate_with")?
                .map(|c| match ColocateWith::parse(&c) {
                    ColocateWith::Table(t) => ColocateWith::Table(relation_name(&t)),
                    other => other,
                })
                .unwrap_or(ColocateWith::Default);
            let shard_count = match call.integer(4, "shard_count")? {
                Some(n) if !(1..=64_000).contains(&n) => {
                    return Err(CatalogError::BadShardCount { given: n }.into());
                }
                other => other.map(|n| n as usize),
            };
            let snapshot = coordinator.cluster().catalog.snapshot();
            let schema = snapshot
                .table(&table)
                .map(|t| Arc::clone(&t.schema))
                .ok_or_else(|| CatalogError::TableNotFound {
                    name: table.clone(),
                })?;
            // Citus takes the column name as written; accept Postgres-folded names too.
            let column = if schema.column_with_name(&column).is_some() {
                column
            } else {
                column.to_ascii_lowercase()
            };
            let request = DistributionRequest::Distributed {
                column,
                shard_count,
                colocate_with,
            };
            crate::distribution::distribute(coordinator, &table, &request).await?;
            Ok(void_result("create_distributed_table"))
        }
        "create_reference_table" => {
            call.check_arity(1)?;
            let table = relation_name(&call.required_text(0, "table_name")?);
            crate::distribution::distribute(coordinator, &table, &DistributionRequest::Reference)
                .await?;
            Ok(void_result("create_reference_table"))
        }
        "citus_add_node" | "master_add_node" => {
            let (host, port) = call.node_address()?;
            let node = node_membership::add_node(coordinator.cluster(), &host, port).await?;
            Ok(single_value(
                &call.function,
                DataType::Int32,
                Arc::new(Int32Array::from(vec![node.node_id.0])),
            ))
        }
        "citus_remove_node" | "master_remove_node" => {
            call.check_arity(2)?;
            let (host, port) = call.node_address()?;
            node_membership::remove_node(coordinator.cluster(), &host, port)?;
            Ok(void_result(&call.function))
        }
        "get_shard_id_for_distribution_column" => {
            call.check_arity(2)?;
            let name = relation_name(&call.required_text(0, "table_name")?);
            let snapshot = coordinator.cluster().catalog.snapshot();
            let table = snapshot
                .table(&name)
                .ok_or_else(|| CatalogError::TableNotFound { name: name.clone() })?;
            let shard = match &table.kind {
                TableKind::Local => {
                    return Err(SchedulerError::invalid(format!(
                        "relation \"{name}\" is not a distributed table"
                    )));
                }
                TableKind::Reference { .. } => table.shards.first(),
                TableKind::Distributed { .. } => {
                    let (_, _, data_type) = table.distribution_column().ok_or_else(|| {
                        SchedulerError::invalid(format!("{name} has no distribution column"))
                    })?;
                    let value = call.arg(1, "distribution_value").ok_or_else(|| {
                        SchedulerError::invalid(
                            "distribution value cannot be NULL for distributed tables",
                        )
                    })?;
                    let hash = hash_scalar(value, data_type)?;
                    table.shards.get(shard_index(hash, table.shards.len()))
                }
            };
            let shard = shard.ok_or_else(|| {
                SchedulerError::invalid(format!("relation \"{name}\" has no shards"))
            })?;
            Ok(single_value(
                "get_shard_id_for_distribution_column",
                DataType::Int64,
                Arc::new(Int64Array::from(vec![shard.shard_id.0])),
            ))
        }
        "citus_get_active_worker_nodes" | "master_get_active_worker_nodes" => {
            let snapshot = coordinator.cluster().catalog.snapshot();
            let workers = snapshot.active_workers();
            let schema = Arc::new(Schema::new(vec![
                Field::new("node_name", DataType::Utf8, false),
                Field::new("node_port", DataType::Int64, false),
            ]));
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        workers.iter().map(|n| n.node_name.clone()),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        workers.iter().map(|n| i64::from(n.node_port)),
                    )),
                ],
            )
            .map_err(|e| SchedulerError::DataFusion(e.into()))?;
            Ok(StatementOutput::Rows {
                schema,
                batches: vec![batch],
            })
        }
        "citus_version" => Ok(single_value(
            "citus_version",
            DataType::Utf8,
            Arc::new(StringArray::from(vec![format!(
                "ShardFusion {} on Apache DataFusion (Citus-compatible metadata)",
                env!("CARGO_PKG_VERSION")
            )])),
        )),
        "citus_cleanup_orphaned_resources" => {
            call.check_arity(0)?;
            let removed = crate::orphan_cleanup::cleanup_all(coordinator.cluster()).await? as i64;
            Ok(single_value(
                "citus_cleanup_orphaned_resources",
                DataType::Int64,
                Arc::new(Int64Array::from(vec![removed])),
            ))
        }
        other => Err(SchedulerError::unsupported(format!("function {other}"))),
    }
}
