//! `CREATE INDEX` and `DROP INDEX`, so that a PostgreSQL schema's indexes run unchanged.
//!
//! ShardFusion keeps no B-trees: an index is recorded ([`shardfusion_catalog::index_store`]) and
//! makes every file written for its table from then on keep a Parquet bloom filter for each
//! indexed column, which DataFusion's reader uses to skip row groups on `=` and `IN` lookups
//! (every column already has page-level min/max statistics). Files written before keep their
//! layout until they are rewritten (`UPDATE`, compaction: `SELECT shardfusion_compact_table(..)`).
//! `CONCURRENTLY`, `USING <method>`, `INCLUDE`, `WITH (...)` and a partial index's `WHERE` are
//! accepted. Index names are unique in the database; an unnamed index is named as PostgreSQL
//! names it (`<table>_<columns>_idx`).
//!
//! `CREATE UNIQUE INDEX` adds a unique constraint (enforced as `UNIQUE` in `CREATE TABLE` is),
//! once no two stored rows share the key: on a distributed table it must include the
//! distribution column, as in Citus.

use datafusion::sql::sqlparser::ast::{CreateIndex, Expr, ObjectName};
use shardfusion_catalog::index_store::TableIndex;
use shardfusion_catalog::unique_key_store::UniqueKey;
use shardfusion_common::status::with_sqlstate;

use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::session::foreign_keys::normalized;
use crate::session::transaction_branch::ddl_catalog;
use crate::statements::ddl::table_name;

/// Runs `CREATE [UNIQUE] INDEX`.
pub async fn create_index(
    coordinator: &Coordinator,
    create: &CreateIndex,
) -> Result<StatementOutput> {
    let cluster = coordinator.cluster();
    let catalog = ddl_catalog(cluster)?;
    let table = table_name(&create.table_name)?;
    let meta = catalog.snapshot().table(&table).cloned().ok_or_else(|| {
        shardfusion_catalog::CatalogError::TableNotFound {
            name: table.clone(),
        }
    })?;
    let columns = create
        .columns
        .iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(ident) => Ok(normalized(ident)),
            other => Err(SchedulerError::unsupported(format!(
                "an index on the expression {other}; index columns, as in (a, b)"
            ))),
        })
        .collect::<Result<Vec<String>>>()?;
    for column in &columns {
        if meta.schema.column_with_name(column).is_none() {
            return Err(shardfusion_catalog::CatalogError::ColumnNotFound {
                table: table.clone(),
                column: column.clone(),
            }
            .into());
        }
    }
    let name = match &create.name {
        Some(name) => object_name(name)?,
        None => catalog.free_index_name(&format!("{table}_{}_idx", columns.join("_")))?,
    };
    if create.unique {
        if create.predicate.is_some() {
            return Err(SchedulerError::unsupported(
                "a partial UNIQUE index (unique constraints cover every row)",
            ));
        }
        add_unique_key(coordinator, &catalog, &meta, &name, &columns).await?;
    }
    let method = create
        .using
        .as_ref()
        .map_or_else(|| "btree".to_string(), |m| m.to_string().to_lowercase());
    let index = TableIndex {
        name,
        columns,
        method,
    };
    catalog.create_index(&table, &index, create.if_not_exists)?;
    Ok(StatementOutput::empty())
}

/// Runs `DROP INDEX [IF EXISTS] name, ...`.
pub fn drop_indexes(
    coordinator: &Coordinator,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<StatementOutput> {
    let catalog = ddl_catalog(coordinator.cluster())?;
    drop_each(names, if_exists, "index", |name| {
        Ok(catalog.drop_index(name)?)
    })
}

/// Drops each of `names` (objects of kind `what`) with `drop`, which says whether one of that
/// name was there; a missing one is an error (42704) unless `if_exists`.
pub fn drop_each(
    names: &[ObjectName],
    if_exists: bool,
    what: &str,
    drop: impl Fn(&str) -> Result<bool>,
) -> Result<StatementOutput> {
    for name in names {
        let name = object_name(name)?;
        if !drop(&name)? && !if_exists {
            return Err(SchedulerError::unknown(format!(
                "{what} \"{name}\" does not exist"
            )));
        }
    }
    Ok(StatementOutput::empty())
}

/// An index's name (its schema, if any, must be the default one).
fn object_name(name: &ObjectName) -> Result<String> {
    table_name(name)
}

/// Records `columns` of `meta` as unique key `name`, once no two stored rows share it.
async fn add_unique_key(
    coordinator: &Coordinator,
    catalog: &shardfusion_catalog::Catalog,
    meta: &shardfusion_catalog::TableMeta,
    name: &str,
    columns: &[String],
) -> Result<()> {
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect();
    let sql = format!(
        "SELECT 1 FROM \"{}\" WHERE {} GROUP BY {} HAVING count(*) > 1 LIMIT 1",
        meta.name.replace('"', "\"\""),
        (quoted.iter())
            .map(|c| format!("{c} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND "),
        quoted.join(", ")
    );
    let ctx = coordinator.session()?;
    let repeated = ctx.sql(&sql).await?.collect().await?;
    if repeated.iter().any(|b| b.num_rows() > 0) {
        return Err(SchedulerError::BadValue(with_sqlstate(
            tonic::Status::already_exists(format!(
                "could not create unique index \"{name}\": table \"{}\" has rows with the same \
                 ({})",
                meta.name,
                columns.join(", ")
            )),
            "23505",
        )));
    }
    let key = UniqueKey {
        name: name.to_string(),
        columns: columns.to_vec(),
        primary: false,
    };
    catalog.add_unique_key(&meta.name, key)?;
    Ok(())
}
