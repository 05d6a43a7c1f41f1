//! What the catalog's unit tests share: a catalog on two nodes with distributed tables in it,
//! and committed files in their shards.

use std::collections::BTreeSet;

use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::error::CatalogError;
use crate::layout::{ColocateWith, DistributionRequest};
use crate::model::FileMeta;
use crate::store::Catalog;

type Result<T> = std::result::Result<T, CatalogError>;

/// A committed file of 3 rows.
pub(crate) fn file(path: &str) -> FileMeta {
    FileMeta {
        path: path.into(),
        row_count: 3,
        byte_size: 30,
        stats: None,
    }
}

/// The tables' one column, `id BIGINT NOT NULL`.
pub(crate) fn id_schema() -> Schema {
    Schema::new(vec![Field::new("id", DataType::Int64, false)])
}

/// A catalog on nodes `h:1` and `h:2` with `tables`, each distributed by `id` in 2 shards,
/// co-located.
pub(crate) fn distributed(tables: &[&str]) -> Result<Catalog> {
    let catalog = Catalog::open_in_memory()?;
    catalog.add_node("h", 1, None)?;
    catalog.add_node("h", 2, None)?;
    for name in tables {
        catalog.create_table(name, &id_schema())?;
        let request = DistributionRequest::Distributed {
            column: "id".into(),
            shard_count: Some(2),
            colocate_with: ColocateWith::Default,
        };
        let plan = catalog.plan_distribution(name, &request)?;
        catalog.commit_distribution(&plan, &Default::default(), &[])?;
    }
    Ok(catalog)
}

/// Commits file `path` into the first placement of shard `index` of `table`.
pub(crate) fn add_file(catalog: &Catalog, table: &str, index: usize, path: &str) -> Result<()> {
    let placement = &catalog.table(table)?.shards[index].placements[0];
    let target = (placement.placement_id, placement.group_id, file(path));
    catalog.commit_files(table, &id_schema(), &[target])
}

/// A set of paths.
pub(crate) fn paths(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}
