//! PostgreSQL's JSON operators and common functions over JSON stored as text
//! ([`crate::pg_types`]): `->`, `->>`, `#>`, `#>>`, `@>`, `<@`, `?`, and `jsonb_typeof`,
//! `jsonb_array_length`, `jsonb_extract_path`, `jsonb_extract_path_text` (with their `json_`
//! twins).
//!
//! The operators are planned into these functions by [`JsonOperators`] when their left side
//! is text (DataFusion's own planners keep `@>` on arrays). The functions run wherever the
//! plan runs, so coordinator and workers both register them ([`register`]). Values come
//! out as PostgreSQL's `jsonb` prints them (`{"a": 1, "b": [1, 2]}`); a text that is not JSON
//! fails with 22P02, as a cast to `jsonb` would.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use serde_json::Value;

use crate::status::{from_status, with_sqlstate};

/// What a function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `->`: a field (text key) or element (integer index), as JSON.
    Get,
    /// `->>`: the same, as text.
    GetText,
    /// `#>`: the value at a path (`'{a,0,b}'`), as JSON; `jsonb_extract_path(j, VARIADIC)`.
    Path,
    /// `#>>`, `jsonb_extract_path_text`: the same, as text.
    PathText,
    /// `@>`: whether the left value contains the right one.
    Contains,
    /// `<@`: whether the left value is contained in the right one.
    ContainedIn,
    /// `?`: whether a key (or string element) exists at the top level.
    Exists,
    ArrayLength,
    TypeOf,
}

/// One function: a kind under a name.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFunction {
    name: &'static str,
    kind: Kind,
    /// Whether the path comes as separate arguments (`jsonb_extract_path(j, 'a', 'b')`)
    /// rather than one path text or array (`j #> '{a,b}'`).
    variadic_path: bool,
    signature: Signature,
}

const FUNCTIONS: [(&str, Kind, bool); 17] = [
    ("jsonb_get", Kind::Get, false),
    ("jsonb_get_text", Kind::GetText, false),
    ("jsonb_path", Kind::Path, false),
    ("jsonb_path_text", Kind::PathText, false),
    ("jsonb_contains", Kind::Contains, false),
    ("jsonb_contained", Kind::ContainedIn, false),
    ("jsonb_exists", Kind::Exists, false),
    ("jsonb_extract_path", Kind::Path, true),
    ("json_extract_path", Kind::Path, true),
    ("jsonb_extract_path_text", Kind::PathText, true),
    ("json_extract_path_text", Kind::PathText, true),
    ("jsonb_array_length", Kind::ArrayLength, false),
    ("json_array_length", Kind::ArrayLength, false),
    ("jsonb_typeof", Kind::TypeOf, false),
    ("json_typeof", Kind::TypeOf, false),
    ("jsonb_object_field_text", Kind::GetText, false),
    ("jsonb_object_field", Kind::Get, false),
];

fn function(name: &str) -> Arc<ScalarUDF> {
    let (name, kind, variadic_path) = FUNCTIONS
        .iter()
        .copied()
        .find(|(n, _, _)| *n == name)
        .expect("a JSON function");
    Arc::new(ScalarUDF::from(JsonFunction {
        name,
        kind,
        variadic_path,
        signature: Signature::variadic_any(Volatility::Immutable),
    }))
}

/// Registers the functions and the operators' planner in `registry`.
pub fn register(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for (name, _, _) in FUNCTIONS {
        registry.register_udf(function(name))?;
    }
    registry.register_expr_planner(Arc::new(JsonOperators))?;
    crate::pg_types::register_casts(registry)?;
    Ok(())
}

/// Plans PostgreSQL's JSON operators on text into the functions above.
#[derive(Debug)]
pub struct JsonOperators;

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let name = match expr.op {
            BinaryOperator::Arrow => "jsonb_get",
            BinaryOperator::LongArrow => "jsonb_get_text",
            BinaryOperator::HashArrow => "jsonb_path",
            BinaryOperator::HashLongArrow => "jsonb_path_text",
            BinaryOperator::AtArrow => "jsonb_contains",
            BinaryOperator::ArrowAt => "jsonb_contained",
            BinaryOperator::Question => "jsonb_exists",
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let is_text = |e: &Expr| {
            e.get_type(schema).is_ok_and(|t| {
                matches!(
                    t,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
                )
            })
        };
        if !is_text(&expr.left) {
            return Ok(PlannerResult::Original(expr));
        }
        let call = ScalarFunction::new_udf(function(name), vec![expr.left, expr.right]);
        Ok(PlannerResult::Planned(Expr::ScalarFunction(call)))
    }
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Contains | Kind::ContainedIn | Kind::Exists => DataType::Boolean,
            Kind::ArrayLength => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let wanted = match self.kind {
            Kind::ArrayLength | Kind::TypeOf => 1,
            _ if self.variadic_path => 1,
            _ => 2,
        };
        if args.args.len() < wanted || (!self.variadic_path && args.args.len() != wanted) {
            return Err(DataFusionError::Plan(format!(
                "{} takes {wanted} argument(s), not {}",
                self.name,
                args.args.len()
            )));
        }
        // Text arguments as Utf8 once, so that each row reads its value without a cast.
        let arrays = ColumnarValue::values_to_arrays(&args.args)?
            .into_iter()
            .map(|array| match array.data_type() {
                DataType::LargeUtf8 | DataType::Utf8View => {
                    arrow::compute::cast(&array, &DataType::Utf8)
                }
                _ => Ok(array),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rows = args.number_rows;
        let out: ArrayRef = match self.kind {
            Kind::Contains | Kind::ContainedIn | Kind::Exists => {
                let mut values = Vec::with_capacity(rows);
                for row in 0..rows {
                    values.push(self.boolean_at(&arrays, row)?);
                }
                Arc::new(BooleanArray::from(values))
            }
            Kind::ArrayLength => {
                let mut values = Vec::with_capacity(rows);
                for row in 0..rows {
                    let length = match json_at(&arrays[0], row)? {
                        Some(Value::Array(items)) => Some(items.len() as i32),
                        Some(Value::Null) | None => None,
                        Some(_) => return Err(bad_call("cannot get array length of a non-array")),
                    };
                    values.push(length);
                }
                Arc::new(Int32Array::from(values))
            }
            _ => {
                let mut values = Vec::with_capacity(rows);
                for row in 0..rows {
                    values.push(self.text_at(&arrays, row)?);
                }
                Arc::new(StringArray::from(values))
            }
        };
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            let scalar = datafusion::common::ScalarValue::try_from_array(&out, 0)?;
            return Ok(ColumnarValue::Scalar(scalar));
        }
        Ok(ColumnarValue::Array(out))
    }
}

impl JsonFunction {
    fn boolean_at(&self, arrays: &[ArrayRef], row: usize) -> Result<Option<bool>> {
        let Some(left) = json_at(&arrays[0], row)? else {
            return Ok(None);
        };
        Ok(match self.kind {
            Kind::Exists => text_at(&arrays[1], row)?.map(|key| match &left {
                Value::Object(fields) => fields.contains_key(&key),
                Value::Array(items) => items.iter().any(|i| i.as_str() == Some(key.as_str())),
                _ => false,
            }),
            _ => {
                let Some(right) = json_at(&arrays[1], row)? else {
                    return Ok(None);
                };
                Some(match self.kind {
                    Kind::Contains => contains(&left, &right, true),
                    _ => contains(&right, &left, true),
                })
            }
        })
    }

    fn text_at(&self, arrays: &[ArrayRef], row: usize) -> Result<Option<String>> {
        let Some(value) = json_at(&arrays[0], row)? else {
            return Ok(None);
        };
        if self.kind == Kind::TypeOf {
            return Ok(Some(type_name(&value).to_string()));
        }
        let steps = match self.kind {
            Kind::Get | Kind::GetText => match step_at(&arrays[1], row)? {
                Some(step) => vec![step],
                None => return Ok(None),
            },
            _ if self.variadic_path => {
                let mut steps = Vec::with_capacity(arrays.len() - 1);
                for array in &arrays[1..] {
                    match text_at(array, row)? {
                        Some(step) => steps.push(Step::Text(step)),
                        None => return Ok(None),
                    }
                }
                steps
            }
            _ => match path_at(&arrays[1], row)? {
                Some(steps) => steps,
                None => return Ok(None),
            },
        };
        let mut at = &value;
        for step in &steps {
            match step.apply(at) {
                Some(next) => at = next,
                None => return Ok(None),
            }
        }
        Ok(match self.kind {
            Kind::GetText | Kind::PathText => match at {
                Value::Null => None,
                Value::String(text) => Some(text.clone()),
                other => Some(jsonb_text(other)),
            },
            _ => Some(jsonb_text(at)),
        })
    }
}

/// One step into a JSON value.
enum Step {
    /// An object key, or (on an array) an index written as text, as in a path.
    Text(String),
    Index(i64),
}

impl Step {
    fn apply<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        match (self, value) {
            (Step::Text(key), Value::Object(fields)) => fields.get(key),
            (Step::Text(index), Value::Array(_)) => Step::Index(index.parse().ok()?).apply(value),
            (Step::Index(index), Value::Array(items)) => {
                let position = if *index < 0 {
                    items.len().checked_sub(index.unsigned_abs() as usize)?
                } else {
                    *index as usize
                };
                items.get(position)
            }
            _ => None,
        }
    }
}

fn bad_call(message: &str) -> DataFusionError {
    from_status(with_sqlstate(
        tonic::Status::invalid_argument(message.to_string()),
        "22023",
    ))
}

fn text_at(array: &ArrayRef, row: usize) -> Result<Option<String>> {
    if array.is_null(row) || array.data_type().is_null() {
        return Ok(None);
    }
    if let Some(text) = array.as_string_opt::<i32>() {
        return Ok(Some(text.value(row).to_string()));
    }
    // A number given as a key or path element (`'{a,0}'` elements are text already).
    let text = arrow::compute::cast(&array.slice(row, 1), &DataType::Utf8)?;
    Ok(Some(text.as_string::<i32>().value(0).to_string()))
}

fn json_at(array: &ArrayRef, row: usize) -> Result<Option<Value>> {
    let Some(text) = text_at(array, row)? else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|_| {
        let shown: String = text.chars().take(60).collect();
        from_status(with_sqlstate(
            tonic::Status::invalid_argument(format!(
                "invalid input syntax for type json: \"{shown}\""
            )),
            "22P02",
        ))
    })
}

fn step_at(array: &ArrayRef, row: usize) -> Result<Option<Step>> {
    if array.is_null(row) {
        return Ok(None);
    }
    if array.data_type().is_integer() {
        let index = arrow::compute::cast(&array.slice(row, 1), &DataType::Int64)?;
        let index = index.as_primitive::<arrow::datatypes::Int64Type>().value(0);
        return Ok(Some(Step::Index(index)));
    }
    Ok(text_at(array, row)?.map(Step::Text))
}

/// A path: a PostgreSQL array literal (`'{a,0,b}'`) or an array of text.
fn path_at(array: &ArrayRef, row: usize) -> Result<Option<Vec<Step>>> {
    if array.is_null(row) {
        return Ok(None);
    }
    if let DataType::List(_) | DataType::LargeList(_) = array.data_type() {
        let items = arrow::compute::cast(
            &array.slice(row, 1),
            &DataType::new_list(DataType::Utf8, true),
        )?;
        let list = items.as_list::<i32>().value(0);
        let mut steps = Vec::with_capacity(list.len());
        for i in 0..list.len() {
            match text_at(&list, i)? {
                Some(step) => steps.push(Step::Text(step)),
                None => return Ok(None),
            }
        }
        return Ok(Some(steps));
    }
    let Some(text) = text_at(array, row)? else {
        return Ok(None);
    };
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| {
            from_status(with_sqlstate(
                tonic::Status::invalid_argument(format!(
                    "malformed array literal: \"{text}\": a path is written '{{key,0,key}}'"
                )),
                "22P02",
            ))
        })?;
    if inner.trim().is_empty() {
        return Ok(Some(Vec::new()));
    }
    Ok(Some(
        inner
            .split(',')
            .map(|s| Step::Text(s.trim().trim_matches('"').to_string()))
            .collect(),
    ))
}

/// PostgreSQL's `jsonb` containment: objects contain the keys (recursively), arrays contain
/// each element of the other in some element, a top-level array contains a scalar it holds.
fn contains(outer: &Value, inner: &Value, top: bool) -> bool {
    match (outer, inner) {
        (Value::Object(o), Value::Object(i)) => i
            .iter()
            .all(|(k, v)| o.get(k).is_some_and(|ov| contains(ov, v, false))),
        (Value::Array(o), Value::Array(i)) => {
            i.iter().all(|v| o.iter().any(|ov| contains(ov, v, false)))
        }
        (Value::Array(o), scalar) if top && !scalar.is_object() => {
            o.iter().any(|ov| same_scalar(ov, scalar))
        }
        (o, i) => same_scalar(o, i),
    }
}

fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => a == b,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `value` as PostgreSQL prints a `jsonb`: `{"a": 1, "b": [1, 2]}`, keys shorter first, then
/// in byte order, as `jsonb` keeps them.
pub fn jsonb_text(value: &Value) -> String {
    let mut out = String::new();
    write_jsonb(value, &mut out);
    out
}

fn write_jsonb(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            let mut fields: Vec<(&String, &Value)> = fields.iter().collect();
            fields.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(b.0)));
            for (i, (key, item)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_jsonb(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn answer(sql: &str) -> String {
        let config = datafusion::prelude::SessionConfig::new()
            .set_str("datafusion.sql_parser.dialect", "postgresql");
        let ctx = SessionContext::new_with_config(config);
        let mut state = ctx.state();
        register(&mut state).expect("registered");
        let ctx = SessionContext::new_with_state(state);
        let batches = ctx
            .sql(sql)
            .await
            .expect("planned")
            .collect()
            .await
            .expect("ran");
        arrow::util::display::array_value_to_string(batches[0].column(0), 0).expect("shown")
    }

    #[tokio::test]
    async fn operators_answer_as_postgresql() {
        let doc = r#"'{"a": {"b": [10, 20, {"c": "x"}]}, "n": null, "s": "t"}'"#;
        assert_eq!(
            answer(&format!("SELECT {doc} -> 'a'")).await,
            r#"{"b": [10, 20, {"c": "x"}]}"#
        );
        assert_eq!(
            answer(&format!("SELECT {doc} -> 'a' -> 'b' -> 1")).await,
            "20"
        );
        assert_eq!(
            answer(&format!("SELECT {doc} -> 'a' -> 'b' ->> -1")).await,
            r#"{"c": "x"}"#
        );
        assert_eq!(answer(&format!("SELECT {doc} ->> 's'")).await, "t");
        assert_eq!(
            answer(&format!("SELECT {doc} #>> '{{a,b,2,c}}'")).await,
            "x"
        );
        assert_eq!(
            answer(&format!(
                "SELECT jsonb_extract_path_text({doc}, 'a', 'b', '0')"
            ))
            .await,
            "10"
        );
        assert_eq!(
            answer(&format!("SELECT ({doc} ->> 'n') IS NULL")).await,
            "true"
        );
        assert_eq!(
            answer(&format!("SELECT {doc} @> '{{\"a\": {{\"b\": [20]}}}}'")).await,
            "true"
        );
        assert_eq!(
            answer(&format!("SELECT {doc} @> '{{\"s\": \"u\"}}'")).await,
            "false"
        );
        assert_eq!(answer("SELECT '[1, 2, 3]' @> '2'").await, "true");
        assert_eq!(answer("SELECT ('[1]' @> NULL) IS NULL").await, "true");
        assert_eq!(answer(&format!("SELECT {doc} ? 's'")).await, "true");
        assert_eq!(answer("SELECT '[\"a\", \"b\"]' ? 'b'").await, "true");
        assert_eq!(
            answer("SELECT jsonb_array_length('[1, [2, 3]]')").await,
            "2"
        );
        assert_eq!(
            answer(&format!("SELECT jsonb_typeof({doc} -> 'a' -> 'b')")).await,
            "array"
        );
        // Arrays keep DataFusion's own @>.
        assert_eq!(
            answer("SELECT make_array(1, 2, 3) @> make_array(2)").await,
            "true"
        );
    }
}
