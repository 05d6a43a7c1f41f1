//! TPC-H: data, schema, distribution scheme and queries.
//!
//! Data comes from the `tpchgen` generators at any scale factor and is written as one Parquet
//! file per table, with text as `Utf8` (what ShardFusion stores). The distribution scheme is the
//! one Citus users would pick: `lineitem` and `orders` by order key (co-located), `customer` by
//! customer key, `part` and `partsupp` by part key (co-located), `supplier` by supplier key,
//! and `nation` and `region` as reference tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// Why generating data failed.
#[derive(Debug, thiserror::Error)]
pub enum TpchError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate {table}: {source}")]
    Arrow { table: String, source: ArrowError },
    #[error("cannot write Parquet for {table}: {source}")]
    Parquet {
        table: String,
        source: parquet::errors::ParquetError,
    },
}

/// One TPC-H table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub ddl: &'static str,
    /// The distribution column, or `None` for a reference table.
    pub distribution_column: Option<&'static str>,
}

pub const TABLES: [Table; 8] = [
    Table {
        name: "region",
        ddl: "CREATE TABLE region (r_regionkey BIGINT NOT NULL, r_name TEXT NOT NULL, r_comment TEXT NOT NULL)",
        distribution_column: None,
    },
    Table {
        name: "nation",
        ddl: "CREATE TABLE nation (n_nationkey BIGINT NOT NULL, n_name TEXT NOT NULL, n_regionkey BIGINT NOT NULL, n_comment TEXT NOT NULL)",
        distribution_column: None,
    },
    Table {
        name: "supplier",
        ddl: "CREATE TABLE supplier (s_suppkey BIGINT NOT NULL, s_name TEXT NOT NULL, s_address TEXT NOT NULL, s_nationkey BIGINT NOT NULL, s_phone TEXT NOT NULL, s_acctbal DECIMAL(15, 2) NOT NULL, s_comment TEXT NOT NULL)",
        distribution_column: Some("s_suppkey"),
    },
    Table {
        name: "customer",
        ddl: "CREATE TABLE customer (c_custkey BIGINT NOT NULL, c_name TEXT NOT NULL, c_address TEXT NOT NULL, c_nationkey BIGINT NOT NULL, c_phone TEXT NOT NULL, c_acctbal DECIMAL(15, 2) NOT NULL, c_mktsegment TEXT NOT NULL, c_comment TEXT NOT NULL)",
        distribution_column: Some("c_custkey"),
    },
    Table {
        name: "part",
        ddl: "CREATE TABLE part (p_partkey BIGINT NOT NULL, p_name TEXT NOT NULL, p_mfgr TEXT NOT NULL, p_brand TEXT NOT NULL, p_type TEXT NOT NULL, p_size INT NOT NULL, p_container TEXT NOT NULL, p_retailprice DECIMAL(15, 2) NOT NULL, p_comment TEXT NOT NULL)",
        distribution_column: Some("p_partkey"),
    },
    Table {
        name: "partsupp",
        ddl: "CREATE TABLE partsupp (ps_partkey BIGINT NOT NULL, ps_suppkey BIGINT NOT NULL, ps_availqty INT NOT NULL, ps_supplycost DECIMAL(15, 2) NOT NULL, ps_comment TEXT NOT NULL)",
        distribution_column: Some("ps_partkey"),
    },
    Table {
        name: "orders",
        ddl: "CREATE TABLE orders (o_orderkey BIGINT NOT NULL, o_custkey BIGINT NOT NULL, o_orderstatus TEXT NOT NULL, o_totalprice DECIMAL(15, 2) NOT NULL, o_orderdate DATE NOT NULL, o_orderpriority TEXT NOT NULL, o_clerk TEXT NOT NULL, o_shippriority INT NOT NULL, o_comment TEXT NOT NULL)",
        distribution_column: Some("o_orderkey"),
    },
    Table {
        name: "lineitem",
        ddl: "CREATE TABLE lineitem (l_orderkey BIGINT NOT NULL, l_partkey BIGINT NOT NULL, l_suppkey BIGINT NOT NULL, l_linenumber INT NOT NULL, l_quantity DECIMAL(15, 2) NOT NULL, l_extendedprice DECIMAL(15, 2) NOT NULL, l_discount DECIMAL(15, 2) NOT NULL, l_tax DECIMAL(15, 2) NOT NULL, l_returnflag TEXT NOT NULL, l_linestatus TEXT NOT NULL, l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL, l_shipinstruct TEXT NOT NULL, l_shipmode TEXT NOT NULL, l_comment TEXT NOT NULL)",
        distribution_column: Some("l_orderkey"),
    },
];

impl Table {
    /// The SQL that distributes the table under the standard scheme.
    pub fn distribute_sql(&self, shard_count: usize) -> String {
        match (self.name, self.distribution_column) {
            (_, None) => format!("SELECT create_reference_table('{}')", self.name),
            // Co-located pairs name their partner, as a Citus user would.
            ("lineitem", Some(column)) => format!(
                "SELECT create_distributed_table('lineitem', '{column}', shard_count => {shard_count}, colocate_with => 'orders')"
            ),
            ("partsupp", Some(column)) => format!(
                "SELECT create_distributed_table('partsupp', '{column}', shard_count => {shard_count}, colocate_with => 'part')"
            ),
            (name, Some(column)) => format!(
                "SELECT create_distributed_table('{name}', '{column}', shard_count => {shard_count}, colocate_with => 'none')"
            ),
        }
    }

    /// Where [`generate`] puts this table's Parquet file under `dir`.
    pub fn parquet_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.parquet", self.name))
    }
}

/// Creates, distributes and loads (by `COPY`) each of `tables` from the Parquet files in
/// `dir`, with `shards` shards per distributed table; `on_table` is told each table's name
/// before it loads. Returns the seconds it took.
pub async fn load(
    client: &mut crate::client::TestClient,
    dir: &Path,
    shards: usize,
    tables: &[Table],
    on_table: &dyn Fn(&str),
) -> Result<f64, String> {
    let started = std::time::Instant::now();
    for table in tables {
        on_table(table.name);
        let path = table.parquet_path(dir);
        // A co-located table loaded without its partner gets a colocation group of its own.
        let partner = match table.name {
            "lineitem" => Some("orders"),
            "partsupp" => Some("part"),
            _ => None,
        };
        let distribute = match (partner, table.distribution_column) {
            (Some(partner), Some(column)) if !tables.iter().any(|t| t.name == partner) => {
                format!(
                    "SELECT create_distributed_table('{}', '{column}', shard_count => {shards})",
                    table.name
                )
            }
            _ => table.distribute_sql(shards),
        };
        for sql in [
            table.ddl.to_string(),
            distribute,
            format!(
                "COPY {} FROM '{}' WITH (FORMAT parquet)",
                table.name,
                path.display()
            ),
        ] {
            client
                .query(&sql)
                .await
                .map_err(|s| format!("{sql}: {}", s.message()))?;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Drops whichever of the TPC-H tables exist.
pub async fn drop_tables(client: &mut crate::client::TestClient) -> Result<(), String> {
    for table in TABLES {
        client
            .query(&format!("DROP TABLE IF EXISTS {}", table.name))
            .await
            .map_err(|s| format!("DROP TABLE {}: {}", table.name, s.message()))?;
    }
    Ok(())
}

/// Whether all eight TPC-H tables exist on the cluster (as distributed or reference tables).
pub async fn loaded(client: &mut crate::client::TestClient) -> Result<bool, String> {
    let names: Vec<String> = TABLES.iter().map(|t| format!("'{}'", t.name)).collect();
    let sql = format!(
        "SELECT count(*) FROM citus_tables WHERE table_name IN ({})",
        names.join(", ")
    );
    let batches = client
        .query(&sql)
        .await
        .map_err(|s| s.message().to_string())?;
    let count = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok(count == TABLES.len() as i64)
}

/// The default directory of the generated data at `scale`.
pub fn default_data_dir(scale: f64) -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/shardfusion")
        .join(format!("tpch-sf{scale}"))
}

/// The text of query `number` (1 to 22).
pub fn query(number: usize) -> Option<&'static str> {
    QUERIES.get(number.checked_sub(1)?).copied()
}

const QUERIES: [&str; 22] = [
    include_str!("../queries/q1.sql"),
    include_str!("../queries/q2.sql"),
    include_str!("../queries/q3.sql"),
    include_str!("../queries/q4.sql"),
    include_str!("../queries/q5.sql"),
    include_str!("../queries/q6.sql"),
    include_str!("../queries/q7.sql"),
    include_str!("../queries/q8.sql"),
    include_str!("../queries/q9.sql"),
    include_str!("../queries/q10.sql"),
    include_str!("../queries/q11.sql"),
    include_str!("../queries/q12.sql"),
    include_str!("../queries/q13.sql"),
    include_str!("../queries/q14.sql"),
    include_str!("../queries/q15.sql"),
    include_str!("../queries/q16.sql"),
    include_str!("../queries/q17.sql"),
    include_str!("../queries/q18.sql"),
    include_str!("../queries/q19.sql"),
    include_str!("../queries/q20.sql"),
    include_str!("../queries/q21.sql"),
    include_str!("../queries/q22.sql"),
];

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;

fn generator(table: &str, scale: f64) -> Batches {
    const BATCH: usize = 64 * 1024;
    match table {
        "region" => {
            Box::new(RegionArrow::new(RegionGenerator::new(scale, 1, 1)).with_batch_size(BATCH))
        }
        "nation" => {
            Box::new(NationArrow::new(NationGenerator::new(scale, 1, 1)).with_batch_size(BATCH))
        }
        "supplier" => {
            Box::new(SupplierArrow::new(SupplierGenerator::new(scale, 1, 1)).with_batch_size(BATCH))
        }
        "customer" => {
            Box::new(CustomerArrow::new(CustomerGenerator::new(scale, 1, 1)).with_batch_size(BATCH))
        }
        "part" => Box::new(PartArrow::new(PartGenerator::new(scale, 1, 1)).with_batch_size(BATCH)),
        "partsupp" => {
            Box::new(PartSuppArrow::new(PartSuppGenerator::new(scale, 1, 1)).with_batch_size(BATCH))
        }
        "orders" => {
            Box::new(OrderArrow::new(OrderGenerator::new(scale, 1, 1)).with_batch_size(BATCH))
        }
        _ => {
            Box::new(LineItemArrow::new(LineItemGenerator::new(scale, 1, 1)).with_batch_size(BATCH))
        }
    }
}

/// `Utf8View` columns become `Utf8`.
fn plain_strings(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Field::new(f.name(), DataType::Utf8, f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

/// Writes every table at `scale` as `<dir>/<table>.parquet`, unless already there.
pub fn generate(scale: f64, dir: &Path) -> Result<(), TpchError> {
    std::fs::create_dir_all(dir).map_err(|source| TpchError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for table in TABLES {
        let path = table.parquet_path(dir);
        if path.exists() {
            continue;
        }
        let partial = path.with_extension(format!("parquet.{}.partial", std::process::id()));
        let file = std::fs::File::create(&partial).map_err(|source| TpchError::Io {
            path: partial.clone(),
            source,
        })?;
        let arrow_error = |source| TpchError::Arrow {
            table: table.name.to_string(),
            source,
        };
        let parquet_error = |source| TpchError::Parquet {
            table: table.name.to_string(),
            source,
        };
        let mut writer = None;
        for batch in generator(table.name, scale) {
            let batch = plain_strings(&batch.map_err(arrow_error)?).map_err(arrow_error)?;
            if writer.is_none() {
                writer = Some(
                    parquet::arrow::ArrowWriter::try_new(
                        file.try_clone().map_err(|source| TpchError::Io {
                            path: partial.clone(),
                            source,
                        })?,
                        batch.schema(),
                        None,
                    )
                    .map_err(parquet_error)?,
                );
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch).map_err(parquet_error)?;
            }
        }
        if let Some(w) = writer {
            w.close().map_err(parquet_error)?;
        }
        std::fs::rename(&partial, &path).map_err(|source| TpchError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}
