//! The answer to Flight SQL's `GetPrimaryKeys`: the primary key the catalog records for a
//! table ([`shardfusion_catalog::unique_key_store`]), one row per column, if the caller holds
//! a privilege on the table (as `information_schema` shows it).

use std::sync::Arc;

use arrow_flight::sql::CommandGetPrimaryKeys;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_catalog::roles::TablePrivilege;

use crate::auth::Access;
use crate::frontend::metadata_answers::primary_keys_schema;
use crate::session::statement_context::{DEFAULT_CATALOG, DEFAULT_SCHEMA};

/// The primary key columns of the table `asked` names, in key order (none if it has no
/// primary key, the caller may not see it, or the command names another catalog or schema).
pub fn primary_keys_batch(
    snapshot: &CatalogSnapshot,
    access: &Access<'_>,
    asked: &CommandGetPrimaryKeys,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let ours = asked
        .catalog
        .as_deref()
        .is_none_or(|c| c == DEFAULT_CATALOG)
        && asked
            .db_schema
            .as_deref()
            .is_none_or(|s| s == DEFAULT_SCHEMA);
    let table = asked.table.as_str();
    let visible = ours
        && TablePrivilege::ALL
            .into_iter()
            .any(|p| access.has_table_privilege(table, p));
    let key = snapshot
        .table(table)
        .filter(|_| visible)
        .and_then(|t| t.unique_keys.iter().find(|k| k.primary));
    let columns = key.map_or(&[][..], |k| k.columns.as_slice());
    let repeated = |value: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(columns.iter().map(|_| value)))
    };
    let arrays: Vec<ArrayRef> = vec![
        repeated(DEFAULT_CATALOG),
        repeated(DEFAULT_SCHEMA),
        repeated(table),
        Arc::new(StringArray::from_iter_values(columns.iter())),
        repeated(key.map_or("", |k| k.name.as_str())),
        Arc::new(Int32Array::from_iter_values(1..=columns.len() as i32)),
    ];
    RecordBatch::try_new(primary_keys_schema(), arrays)
}
