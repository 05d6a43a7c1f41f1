//! Column defaults: what `CREATE TABLE` records for `DEFAULT expr` and `serial` columns, and
//! the expressions a write plans for the columns it leaves out.
//!
//! `smallserial`, `serial` and `bigserial` (and `serial2/4/8`) become `smallint`, `integer`
//! and `bigint` `NOT NULL` columns defaulting to `nextval('<table>_<column>_seq')`, a
//! sequence the column owns and that is dropped with the table, as in PostgreSQL. Identity
//! columns (`GENERATED ... AS IDENTITY [(options)]`) become the same, with their options.
//!
//! Defaults are kept as SQL text and planned into DataFusion expressions by
//! [`DefaultExpressions`], once per text; `INSERT` takes them through the table provider's
//! `get_column_default`, so DataFusion fills every column an `INSERT` leaves out; `COPY` and
//! bulk ingest evaluate them per batch ([`DefaultExpressions::physical`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{
    self, ColumnOption, ColumnOptionDef, CreateTable, DataType as SqlType, FunctionArg,
    FunctionArgExpr, FunctionArguments, ObjectNamePart, SequenceOptions, Value, ValueWithSpan,
};
use parking_lot::Mutex;
use shardfusion_catalog::column_default_store::ColumnDefault;
use shardfusion_catalog::sequence_store::{SequenceMeta, SequenceType};
use shardfusion_catalog::{CatalogSnapshot, TableMeta};
use shardfusion_common::ids::TableId;

use crate::error::{Result, SchedulerError};
use crate::session::sequence_functions::{self, SequenceCache};

/// What a `CREATE TABLE` records besides its columns.
#[derive(Debug, Default)]
pub struct TableDefaults {
    /// By column position.
    pub defaults: Vec<(usize, String, Option<String>)>,
    /// The sequences of its `serial` columns, by column position.
    pub sequences: Vec<(usize, SequenceMeta)>,
}

impl TableDefaults {
    /// The defaults and owned sequences, named by `columns` (the planned column names).
    pub fn named(self, columns: &[String]) -> (Vec<ColumnDefault>, Vec<SequenceMeta>) {
        let defaults = self
            .defaults
            .into_iter()
            .map(|(i, expression, sequence)| ColumnDefault {
                column: columns[i].clone(),
                expression,
                sequence,
            })
            .collect();
        let sequences = self
            .sequences
            .into_iter()
            .map(|(i, mut meta)| {
                meta.owned_by = Some((TableId(0), columns[i].clone()));
                meta
            })
            .collect();
        (defaults, sequences)
    }
}

/// Rewrites the `serial` columns of `create` into integer columns with a sequence default,
/// and collects every column's default. Sequence names avoid the relations of `snapshot`.
pub fn prepare_create_table(
    create: &mut CreateTable,
    table: &str,
    snapshot: &CatalogSnapshot,
) -> Result<TableDefaults> {
    let mut out = TableDefaults::default();
    let mut taken: Vec<String> = Vec::new();
    for (i, column) in create.columns.iter_mut().enumerate() {
        let defaults: Vec<ast::Expr> = column
            .options
            .iter()
            .filter_map(|o| match &o.option {
                ColumnOption::Default(expr) => Some(expr.clone()),
                _ => None,
            })
            .collect();
        if defaults.len() > 1 {
            return Err(SchedulerError::invalid(format!(
                "multiple default values specified for column \"{}\" of table \"{table}\"",
                column.name.value
            )));
        }
        if let Some(expr) = defaults.first() {
            let sequence = nextval_sequence(expr);
            out.defaults.push((i, expr.to_string(), sequence));
        }
        let identity = identity_options(column, table)?;
        let serial = match &identity {
            Some(_) => integer_type(&column.data_type).ok_or_else(|| {
                SchedulerError::invalid(format!(
                    "identity column type must be smallint, integer, or bigint, not {}",
                    column.data_type
                ))
            })?,
            None => match serial_type(&column.data_type) {
                Some(serial) => serial,
                None => continue,
            },
        };
        if !defaults.is_empty() {
            return Err(SchedulerError::invalid(format!(
                "multiple default values specified for column \"{}\" of table \"{table}\"",
                column.name.value
            )));
        }
        let column_name = match column.name.quote_style {
            Some(_) => column.name.value.clone(),
            None => column.name.value.to_lowercase(),
        };
        let name = free_sequence_name(&format!("{table}_{column_name}_seq"), snapshot, &taken);
        taken.push(name.clone());
        column.data_type = match serial {
            SequenceType::SmallInt => SqlType::SmallInt(None),
            SequenceType::Integer => SqlType::Integer(None),
            SequenceType::BigInt => SqlType::BigInt(None),
        };
        let has_not_null = column
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::NotNull));
        if !has_not_null {
            column.options.push(ColumnOptionDef {
                name: None,
                option: ColumnOption::NotNull,
            });
        }
        out.defaults.push((
            i,
            format!("nextval('{}')", regclass_text(&name)),
            Some(name.clone()),
        ));
        let options = identity.unwrap_or_default();
        let meta = crate::statements::sequences::sequence_meta(&name, serial, &options)?;
        out.sequences.push((i, meta));
    }
    Ok(out)
}

/// Whether `expr` is the `DEFAULT` keyword (a `VALUES` item, an `UPDATE ... SET` value).
pub fn is_default_keyword(expr: &ast::Expr) -> bool {
    matches!(expr, ast::Expr::Identifier(i)
        if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// The expression `DEFAULT` stands for in `column` of `table`: its default, else NULL.
pub fn default_of(table: &TableMeta, column: &str) -> Result<ast::Expr> {
    let Some(default) = table.defaults.iter().find(|d| d.column == column) else {
        return Ok(ast::Expr::Value(Value::Null.into()));
    };
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(&default.expression)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| {
            SchedulerError::invalid(format!(
                "the recorded default of column \"{column}\" of \"{}\" does not parse: {e}",
                table.name
            ))
        })
}

/// Replaces each `DEFAULT` item of `insert`'s `VALUES` rows with its column's default (or
/// NULL), as PostgreSQL does; DataFusion plans the rest.
pub fn fill_default_keywords(insert: &mut ast::Insert, snapshot: &CatalogSnapshot) -> Result<()> {
    let ast::TableObject::TableName(name) = &insert.table else {
        return Ok(());
    };
    let Some(query) = insert.source.as_mut() else {
        return Ok(());
    };
    let ast::SetExpr::Values(values) = query.body.as_mut() else {
        return Ok(());
    };
    let has_default = values
        .rows
        .iter()
        .any(|row| row.content.iter().any(is_default_keyword));
    if !has_default {
        return Ok(());
    }
    let table_name = crate::statements::ddl::table_name(name)?;
    let Some(table) = snapshot.table(&table_name) else {
        return Ok(());
    };
    let columns: Vec<String> = if insert.columns.is_empty() {
        table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        insert
            .columns
            .iter()
            .map(|c| {
                let ident = c.0.last().and_then(|part| part.as_ident());
                match ident {
                    Some(i) if i.quote_style.is_some() => i.value.clone(),
                    Some(i) => i.value.to_lowercase(),
                    None => c.to_string(),
                }
            })
            .collect()
    };
    for row in &mut values.rows {
        for (item, column) in row.content.iter_mut().zip(&columns) {
            if is_default_keyword(item) {
                *item = default_of(table, column)?;
            }
        }
    }
    Ok(())
}

/// `name` as the text of a `regclass` literal: quoted unless it reads back as itself.
fn regclass_text(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    let ident = if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    };
    ident.replace('\'', "''")
}

/// The sequence options of an identity column (`GENERATED {ALWAYS | BY DEFAULT} AS
/// IDENTITY [(options)]`), removing the clause from `column`; `None` if it is none. A
/// generated expression column is refused.
fn identity_options(
    column: &mut ast::ColumnDef,
    table: &str,
) -> Result<Option<Vec<SequenceOptions>>> {
    let Some(at) = column
        .options
        .iter()
        .position(|o| matches!(o.option, ColumnOption::Generated { .. }))
    else {
        return Ok(None);
    };
    let ColumnOption::Generated {
        sequence_options,
        generation_expr,
        ..
    } = column.options.remove(at).option
    else {
        return Ok(None);
    };
    if generation_expr.is_some() {
        return Err(SchedulerError::unsupported(format!(
            "generated column \"{}\" of table \"{table}\" (GENERATED ALWAYS AS (expr) STORED)",
            column.name.value
        )));
    }
    Ok(Some(sequence_options.unwrap_or_default()))
}

/// The sequence type of an integer column type.
fn integer_type(data_type: &SqlType) -> Option<SequenceType> {
    match data_type {
        SqlType::SmallInt(_) | SqlType::Int2(_) => Some(SequenceType::SmallInt),
        SqlType::Integer(_) | SqlType::Int(_) | SqlType::Int4(_) => Some(SequenceType::Integer),
        SqlType::BigInt(_) | SqlType::Int8(_) => Some(SequenceType::BigInt),
        _ => None,
    }
}

/// The sequence type of a `serial` column type.
fn serial_type(data_type: &SqlType) -> Option<SequenceType> {
    let SqlType::Custom(name, modifiers) = data_type else {
        return None;
    };
    let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
        return None;
    };
    if !modifiers.is_empty() {
        return None;
    }
    match ident.value.to_lowercase().as_str() {
        "smallserial" | "serial2" => Some(SequenceType::SmallInt),
        "serial" | "serial4" => Some(SequenceType::Integer),
        "bigserial" | "serial8" => Some(SequenceType::BigInt),
        _ => None,
    }
}

/// `wanted`, or `wanted` with the first number that makes it a free relation name (as
/// PostgreSQL names a `serial` column's sequence).
fn free_sequence_name(wanted: &str, snapshot: &CatalogSnapshot, taken: &[String]) -> String {
    let free = |name: &str| {
        snapshot.table(name).is_none()
            && !snapshot.sequences.contains_key(name)
            && !taken.iter().any(|t| t == name)
    };
    if free(wanted) {
        return wanted.to_string();
    }
    (1..)
        .map(|n| format!("{wanted}{n}"))
        .find(|name| free(name))
        .unwrap_or_else(|| wanted.to_string())
}

/// The sequence a default takes values from: the constant argument of a `nextval` call.
pub fn nextval_sequence(expr: &ast::Expr) -> Option<String> {
    let mut found = None;
    let _ = ast::visit_expressions(expr, |e| {
        if let ast::Expr::Function(function) = e
            && function.name.to_string().eq_ignore_ascii_case("nextval")
            && let FunctionArguments::List(list) = &function.args
            && let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice()
            && let Some(name) = string_literal(arg)
        {
            found = Some(sequence_functions::sequence_name(&name));
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

/// The text of a string literal, also under a cast (`'s'::regclass`).
fn string_literal(expr: &ast::Expr) -> Option<String> {
    match expr {
        ast::Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s),
            ..
        }) => Some(s.clone()),
        ast::Expr::Cast { expr, .. } => string_literal(expr),
        _ => None,
    }
}

fn bad_default(column: &str, sql: &str, error: &SchedulerError) -> SchedulerError {
    SchedulerError::invalid(format!(
        "invalid DEFAULT for column \"{column}\": {sql}: {error}"
    ))
}

/// Default expressions planned from their SQL text, once per text, with the functions every
/// session has (sequence functions included; a statement binds them to its session).
pub struct DefaultExpressions {
    sequences: Arc<SequenceCache>,
    state: OnceLock<SessionState>,
    planned: Mutex<HashMap<String, Expr>>,
}

impl std::fmt::Debug for DefaultExpressions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultExpressions").finish_non_exhaustive()
    }
}

impl DefaultExpressions {
    pub fn new(sequences: Arc<SequenceCache>) -> Self {
        Self {
            sequences,
            state: OnceLock::new(),
            planned: Mutex::default(),
        }
    }

    /// `table`'s defaults as physical expressions over no input columns, by column name,
    /// for a write that leaves columns out of its rows (`COPY`, bulk ingest): cast to their
    /// column's type, with `now()` the statement's start and sequence functions bound to the
    /// session the statement runs in.
    pub fn physical(&self, table: &TableMeta) -> Result<Vec<(String, Arc<dyn PhysicalExpr>)>> {
        if table.defaults.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(table.defaults.len());
        for default in &table.defaults {
            let Ok(field) = table.schema.field_with_name(&default.column) else {
                continue;
            };
            out.push((
                default.column.clone(),
                self.physical_default(&default.expression, field.data_type())?,
            ));
        }
        Ok(out)
    }

    /// Refuses a default `CREATE TABLE` cannot record for a column of `data_type`: one that
    /// does not plan, reads a subquery or a column, or whose value does not convert (a
    /// constant is converted now, as PostgreSQL does).
    pub fn check(&self, column: &str, sql: &str, data_type: &DataType) -> Result<()> {
        let expr = self.plan(sql).map_err(|e| bad_default(column, sql, &e))?;
        let reads_rows = expr
            .exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_)
                        | Expr::Exists(_)
                        | Expr::InSubquery(_)
                        | Expr::Column(_)
                ))
            })
            .unwrap_or(true);
        if reads_rows {
            return Err(SchedulerError::invalid(format!(
                "cannot use a subquery or a column in the DEFAULT of column \"{column}\": {sql}"
            )));
        }
        self.physical_default(sql, data_type)
            .map(|_| ())
            .map_err(|e| bad_default(column, sql, &e))
    }

    /// The default `sql` as a physical expression over no columns, cast to `data_type`.
    fn physical_default(&self, sql: &str, data_type: &DataType) -> Result<Arc<dyn PhysicalExpr>> {
        let state = self.state();
        let schema = Arc::new(DFSchema::empty());
        let context = SimplifyContext::builder()
            .with_schema(Arc::clone(&schema))
            .with_config_options(Arc::clone(state.config_options()))
            .with_current_time()
            .build();
        let simplifier = ExprSimplifier::new(context);
        let expr = sequence_functions::bind_expr(self.plan(sql)?)?.cast_to(data_type, &schema)?;
        let expr = simplifier.simplify(simplifier.coerce(expr, &schema)?)?;
        Ok(state.create_physical_expr(expr, &schema)?)
    }

    fn state(&self) -> &SessionState {
        self.state.get_or_init(|| {
            let mut config = datafusion::prelude::SessionConfig::new();
            config.options_mut().sql_parser.dialect =
                datafusion::common::config::Dialect::PostgreSQL;
            config.options_mut().sql_parser.map_string_types_to_utf8view = false;
            let mut state = SessionStateBuilder::new()
                .with_config(config)
                .with_default_features()
                .build();
            // Registering functions into a fresh state cannot clash.
            let _ = sequence_functions::register(&mut state, &self.sequences);
            let _ = shardfusion_common::json_functions::register(&mut state);
            state
        })
    }

    /// The expression of the default `sql`.
    pub fn plan(&self, sql: &str) -> Result<Expr> {
        if let Some(expr) = self.planned.lock().get(sql) {
            return Ok(expr.clone());
        }
        let expr = self.state().create_logical_expr(sql, &DFSchema::empty())?;
        self.planned.lock().insert(sql.to_string(), expr.clone());
        Ok(expr)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::{DFParser, Statement as DFStatement};
    use datafusion::sql::sqlparser::ast::Statement;

    use super::*;

    fn create(sql: &str) -> CreateTable {
        let mut statements = DFParser::parse_sql(sql).expect("parses");
        match statements.pop_front() {
            Some(DFStatement::Statement(s)) => match *s {
                Statement::CreateTable(create) => create,
                other => panic!("not a CREATE TABLE: {other}"),
            },
            _ => panic!("no statement"),
        }
    }

    #[test]
    fn sequence_names_read_back_as_themselves() {
        for name in ["orders_id_seq", "Orders_id_seq", "a\"b", "it's", "1st_seq"] {
            let text = regclass_text(name);
            let literal = text.replace("''", "'");
            assert_eq!(sequence_functions::sequence_name(&literal), name, "{text}");
        }
    }

    #[test]
    fn serial_columns_become_integers_with_an_owned_sequence() {
        let catalog = shardfusion_catalog::Catalog::open_in_memory().expect("catalog");
        let schema = datafusion::arrow::datatypes::Schema::empty();
        catalog
            .create_table("ads_id_seq", &schema)
            .expect("a table");
        let mut ct = create(
            "CREATE TABLE ads (id bigserial, company_id BIGINT NOT NULL, n serial4, \
             created_at timestamp DEFAULT now(), other BIGINT DEFAULT nextval('s'::regclass))",
        );
        let out = prepare_create_table(&mut ct, "ads", &catalog.snapshot()).expect("prepared");
        assert_eq!(ct.columns[0].data_type, SqlType::BigInt(None));
        assert_eq!(ct.columns[2].data_type, SqlType::Integer(None));
        assert!(
            ct.columns[0]
                .options
                .iter()
                .any(|o| o.option == ColumnOption::NotNull)
        );
        let names: Vec<String> = ["id", "company_id", "n", "created_at", "other"]
            .map(String::from)
            .to_vec();
        let (defaults, sequences) = out.named(&names);
        let by_column: Vec<(&str, &str, Option<&str>)> = defaults
            .iter()
            .map(|d| {
                (
                    d.column.as_str(),
                    d.expression.as_str(),
                    d.sequence.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            by_column,
            [
                ("id", "nextval('ads_id_seq1')", Some("ads_id_seq1")),
                ("n", "nextval('ads_n_seq')", Some("ads_n_seq")),
                ("created_at", "now()", None),
                ("other", "nextval('s'::REGCLASS)", Some("s")),
            ]
        );
        assert_eq!(sequences[0].data_type, SequenceType::BigInt);
        assert_eq!(sequences[1].max, i64::from(i32::MAX));
        assert_eq!(
            sequences[1].owned_by.as_ref().map(|o| o.1.as_str()),
            Some("n")
        );
    }
}
