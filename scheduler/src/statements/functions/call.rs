//! [`FunctionCall`]: a recognised `SELECT citus_function(...)` with its constant arguments,
//! positional or named as in Citus's signatures (`shard_count => 4`), and the accessors the
//! functions read them with.

use std::collections::HashMap;

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SelectItem, SetExpr,
    UnaryOperator, Value,
};

use super::registry::{self, CitusFunction};
use crate::error::{Result, SchedulerError};

/// A recognised call of a Citus function.
#[derive(Debug)]
pub struct FunctionCall {
    /// The function called.
    pub function: &'static CitusFunction,
    /// The name it was called by (`citus_add_node` or `master_add_node`).
    pub name: String,
    positional: Vec<ScalarValue>,
    named: HashMap<String, ScalarValue>,
    /// The session's `citus.shard_count`, for functions creating shards without a count.
    pub default_shard_count: Option<usize>,
}

/// If `query` is `SELECT <Citus function>(...)` with nothing else, the call.
pub fn function_call(query: &Query) -> Result<Option<FunctionCall>> {
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
    let Expr::Function(called) = expr else {
        return Ok(None);
    };
    let name = called
        .name
        .0
        .last()
        .map(|p| p.to_string().to_ascii_lowercase())
        .unwrap_or_default();
    let Some(function) = registry::lookup(&name) else {
        return Ok(None);
    };
    let mut call = FunctionCall {
        function,
        name: name.clone(),
        positional: Vec::new(),
        named: HashMap::new(),
        default_shard_count: None,
    };
    let args = match &called.args {
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

impl FunctionCall {
    /// A call of `function` (by `name`) with positional `arguments`, as a table function in
    /// `FROM` receives them.
    pub fn with_arguments(
        function: &'static CitusFunction,
        name: &str,
        arguments: Vec<ScalarValue>,
    ) -> Self {
        Self {
            function,
            name: name.to_string(),
            positional: arguments,
            named: HashMap::new(),
            default_shard_count: None,
        }
    }

    pub(super) fn arg(&self, position: usize, name: &str) -> Option<&ScalarValue> {
        self.named
            .get(name)
            .or_else(|| self.positional.get(position))
            .filter(|v| !v.is_null())
    }

    pub(super) fn text(&self, position: usize, name: &str) -> Result<Option<String>> {
        match self.arg(position, name) {
            None => Ok(None),
            Some(ScalarValue::Utf8(Some(s))) => Ok(Some(s.clone())),
            Some(other) => Ok(Some(other.to_string())),
        }
    }

    pub(super) fn required_text(&self, position: usize, name: &str) -> Result<String> {
        self.text(position, name)?.ok_or_else(|| {
            SchedulerError::invalid(format!("{} needs the argument {name}", self.name))
        })
    }

    pub(super) fn integer(&self, position: usize, name: &str) -> Result<Option<i64>> {
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

    pub(super) fn boolean(&self, position: usize, name: &str) -> Result<Option<bool>> {
        match self.arg(position, name) {
            None => Ok(None),
            Some(ScalarValue::Boolean(Some(b))) => Ok(Some(*b)),
            Some(ScalarValue::Utf8(Some(s))) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "on" | "yes" | "1" => Ok(Some(true)),
                "false" | "f" | "off" | "no" | "0" => Ok(Some(false)),
                _ => Err(SchedulerError::invalid(format!(
                    "{name} must be a boolean, got '{s}'"
                ))),
            },
            Some(other) => Err(SchedulerError::invalid(format!(
                "{name} must be a boolean, got {other}"
            ))),
        }
    }

    /// The `nodename`, `nodeport` arguments of the node functions.
    pub(super) fn node_address(&self) -> Result<(String, u16)> {
        let host = self.required_text(0, "nodename")?;
        let port = self.integer(1, "nodeport")?.ok_or_else(|| {
            SchedulerError::invalid(format!("{} needs the argument nodeport", self.name))
        })?;
        let port = u16::try_from(port)
            .map_err(|_| SchedulerError::invalid(format!("nodeport {port} is out of range")))?;
        Ok((host, port))
    }

    pub(super) fn check_arity(&self, max: usize) -> Result<()> {
        if self.positional.len() > max {
            return Err(SchedulerError::invalid(format!(
                "{} takes at most {max} arguments, got {}",
                self.name,
                self.positional.len()
            )));
        }
        Ok(())
    }
}

/// Postgres folds an unquoted regclass name to lower case.
pub(super) fn relation_name(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"') {
        trimmed[1..trimmed.len() - 1].to_string()
    } else {
        let unqualified = trimmed.strip_prefix("public.").unwrap_or(trimmed);
        unqualified.to_ascii_lowercase()
    }
}
