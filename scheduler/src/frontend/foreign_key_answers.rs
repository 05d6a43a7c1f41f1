//! The answers to Flight SQL's `GetImportedKeys`, `GetExportedKeys` and `GetCrossReference`:
//! the foreign keys the catalog records ([`shardfusion_catalog::foreign_key_store`]), one row
//! per column of each key, among the tables the caller holds a privilege on (as
//! `information_schema` shows them).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, UInt8Array};
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_catalog::foreign_key_store::ForeignKey;
use shardfusion_catalog::roles::TablePrivilege;

use crate::auth::Access;
use crate::frontend::metadata_answers::foreign_keys_schema;
use crate::session::statement_context::{DEFAULT_CATALOG, DEFAULT_SCHEMA};

/// Which keys a command asks for.
pub enum KeysOf<'a> {
    /// The keys `table` declares (`GetImportedKeys`).
    Imported(&'a str),
    /// The keys that reference `table` (`GetExportedKeys`).
    Exported(&'a str),
    /// The keys of `fk_table` that reference `pk_table` (`GetCrossReference`).
    Between {
        pk_table: &'a str,
        fk_table: &'a str,
    },
}

/// The answer's rows, ordered as Flight SQL asks: by the referenced (imported) or referencing
/// (exported) table, then key and position.
pub fn foreign_keys_batch(
    snapshot: &CatalogSnapshot,
    access: &Access<'_>,
    asked: KeysOf<'_>,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let visible = |table: &str| {
        TablePrivilege::ALL
            .into_iter()
            .any(|p| access.has_table_privilege(table, p))
    };
    let mut keys: Vec<(&str, &ForeignKey)> = snapshot
        .tables
        .values()
        .flat_map(|t| t.foreign_keys.iter().map(move |k| (t.name.as_str(), k)))
        .filter(|(fk_table, key)| match asked {
            KeysOf::Imported(table) => *fk_table == table,
            KeysOf::Exported(table) => key.referenced_table == table,
            KeysOf::Between {
                pk_table,
                fk_table: wanted,
            } => *fk_table == wanted && key.referenced_table == pk_table,
        })
        .filter(|(fk_table, key)| visible(fk_table) && visible(&key.referenced_table))
        .collect();
    match asked {
        KeysOf::Imported(_) => keys.sort_by(|a, b| a.1.referenced_table.cmp(&b.1.referenced_table)),
        _ => keys.sort_by(|a, b| a.0.cmp(b.0)),
    }
    let mut rows: Vec<(&str, &ForeignKey, usize)> = Vec::new();
    for (fk_table, key) in keys {
        for position in 0..key.columns.len() {
            rows.push((fk_table, key, position));
        }
    }
    let text = |value: &dyn Fn(&(&str, &ForeignKey, usize)) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(value)))
    };
    let rule = |value: &dyn Fn(&ForeignKey) -> &str| -> ArrayRef {
        Arc::new(UInt8Array::from_iter_values(
            rows.iter().map(|(_, key, _)| rule_code(value(key))),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|_| DEFAULT_CATALOG.to_string()),
        text(&|_| DEFAULT_SCHEMA.to_string()),
        text(&|(_, key, _)| key.referenced_table.clone()),
        text(&|(_, key, i)| key.referenced_columns[*i].clone()),
        text(&|_| DEFAULT_CATALOG.to_string()),
        text(&|_| DEFAULT_SCHEMA.to_string()),
        text(&|(table, _, _)| table.to_string()),
        text(&|(_, key, i)| key.columns[*i].clone()),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|(_, _, i)| *i as i32 + 1),
        )),
        text(&|(_, key, _)| key.name.clone()),
        Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
        rule(&|key| &key.on_update),
        rule(&|key| &key.on_delete),
    ];
    RecordBatch::try_new(foreign_keys_schema(), columns)
}

/// Flight SQL's `UpdateDeleteRules` code of a referential action.
fn rule_code(action: &str) -> u8 {
    match action.to_ascii_uppercase().as_str() {
        "CASCADE" => 0,
        "RESTRICT" => 1,
        "SET NULL" => 2,
        "SET DEFAULT" => 4,
        _ => 3,
    }
}
