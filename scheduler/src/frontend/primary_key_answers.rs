//! The answer to Flight SQL's `GetPrimaryKeys`: the primary key the catalog records for a
//! table ([`shardfusion_catalog::unique_key_store`]), one row per column, if the caller holds
//! a privilege on the table (as `information_schema` shows it).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_catalog::roles::TablePrivilege;

use crate::auth::Access;
use crate::frontend::metadata_answers::primary_keys_schema;
use crate::session::statement_context::{DEFAULT_CATALOG, DEFAULT_SCHEMA};

/// The primary key columns of `table`, in key order (none if it has no primary key or the
/// caller may not see it).
pub fn primary_keys_batch(
    snapshot: &CatalogSnapshot,
    access: &Access<'_>,
    table: &str,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let visible = TablePrivilege::ALL
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
