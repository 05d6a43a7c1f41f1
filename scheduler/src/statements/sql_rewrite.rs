//! Small rewrites that let PostgreSQL/Citus-flavoured SQL reach DataFusion.
//!
//! Citus users cast to Postgres types DataFusion does not know, e.g. `'primary'::noderole`
//! (from the Citus docs) or `'orders'::regclass`. Those types are all shown as text here, so
//! such casts become casts to `TEXT`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{DataType, Expr, Statement, visit_expressions_mut};

/// Type names that are text in ShardFusion's metadata.
const TEXT_LIKE_TYPES: [&str; 8] = [
    "inet",
    "cidr",
    "noderole",
    "regclass",
    "regtype",
    "name",
    "citus.distribution_type",
    "distribution_type",
];

/// Rewrites casts to Postgres text-like types into casts to `TEXT`.
pub fn rewrite_statement(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Cast { data_type, .. } = expr {
            let text_like = match data_type {
                DataType::Regclass => true,
                // Stored as text (`session::column_types`); the value is checked where it is
                // written into a column of that type.
                DataType::JSON | DataType::JSONB | DataType::Uuid => true,
                DataType::Custom(name, _) => {
                    TEXT_LIKE_TYPES.contains(&name.to_string().to_ascii_lowercase().as_str())
                }
                _ => false,
            };
            if text_like {
                *data_type = DataType::Text;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}
