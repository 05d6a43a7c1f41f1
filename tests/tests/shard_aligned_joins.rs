//! Joins where only one side is keyed by its distribution column: the other side's rows can
//! be sent straight into that side's shards (routed by the shard their key hashes to), which
//! is only right when equal keys hash alike. Answers equal single-node DataFusion's for key
//! types that may be routed (INT with BIGINT or SMALLINT, TEXT with VARCHAR, DATE, DECIMAL of
//! one scale) and for those that must not be (DOUBLE with BIGINT, DECIMAL with BIGINT), with
//! NULL keys in outer joins, semi and anti joins, a staying side pruned to few shards, a
//! reference table, and chains mixing co-located, shard-aligned and hash-shuffled joins.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int16Array, Int32Array, Int64Array,
    RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{SessionConfig, SessionContext};
use shardfusion_tests::compare::{rows, same, single_node_session};
use shardfusion_tests::same_rows::load_table;
use shardfusion_tests::{TestClient, TestCluster};

const FACTS: i64 = 40_000;

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

fn decimals(values: impl Iterator<Item = Option<i128>>, precision: u8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter(values)
            .with_precision_and_scale(precision, 2)
            .expect("decimal"),
    )
}

/// How a table is created and distributed.
enum Kind {
    Distributed(&'static str, Shards),
    Reference,
}

/// Which of the two shard counts of a run a table gets.
#[derive(Clone, Copy)]
enum Shards {
    Facts,
    Dimensions,
}

/// `fact` (distributed by `f_id`) refers to each dimension through a column of a related type;
/// every key column has NULLs and values no dimension holds. `fact2` is co-located with
/// `fact`. Each `dim_*` is distributed by its key; `region` is a reference table.
fn data() -> Vec<(&'static str, &'static str, Kind, RecordBatch)> {
    let n = FACTS;
    let fact = batch(
        vec![
            Field::new("f_id", DataType::Int64, false),
            Field::new("k_big", DataType::Int64, true),
            Field::new("k_int", DataType::Int32, true),
            Field::new("k_small", DataType::Int16, true),
            Field::new("k_text", DataType::Utf8, true),
            Field::new("k_day", DataType::Date32, true),
            Field::new("k_dec", DataType::Decimal128(10, 2), true),
            Field::new("k_double", DataType::Float64, true),
            Field::new("v", DataType::Int32, true),
        ],
        vec![
            Arc::new(Int64Array::from_iter_values(1..=n)),
            Arc::new(Int64Array::from_iter(
                (1..=n).map(|i| (i % 19 != 0).then_some((i * 7) % 7_000)),
            )),
            Arc::new(Int32Array::from_iter(
                (1..=n).map(|i| (i % 23 != 0).then_some(((i * 13) % 7_000) as i32)),
            )),
            Arc::new(Int16Array::from_iter(
                (1..=n).map(|i| (i % 29 != 0).then_some(((i * 11) % 2_000) as i16)),
            )),
            Arc::new(StringArray::from_iter((1..=n).map(|i| {
                (i % 31 != 0).then(|| format!("key{}", (i * 17) % 3_000))
            }))),
            Arc::new(Date32Array::from_iter((1..=n).map(|i| {
                (i % 37 != 0).then_some(19_000 + ((i * 3) % 500) as i32)
            }))),
            decimals(
                (1..=n).map(|i| (i % 41 != 0).then_some(((i * 5) % 60_000) as i128)),
                10,
            ),
            Arc::new(Float64Array::from_iter((1..=n).map(|i| {
                (i % 43 != 0).then(|| match i % 5 {
                    // Halves match no BIGINT; negative zero equals zero.
                    0 => ((i % 4_000) as f64) + 0.5,
                    1 if i % 3 == 0 => -0.0,
                    _ => (i % 4_000) as f64,
                })
            }))),
            Arc::new(Int32Array::from_iter(
                (1..=n).map(|i| (i % 47 != 0).then_some((i % 1_000) as i32)),
            )),
        ],
    );
    let fact2 = batch(
        vec![
            Field::new("f_id", DataType::Int64, false),
            Field::new("g", DataType::Int32, true),
        ],
        vec![
            Arc::new(Int64Array::from_iter_values((1..=n).filter(|i| i % 3 != 0))),
            Arc::new(Int32Array::from_iter(
                (1..=n)
                    .filter(|i| i % 3 != 0)
                    .map(|i| (i % 10 != 0).then_some((i % 100) as i32)),
            )),
        ],
    );
    // Keys 0, 2, 4, ...: odd keys of fact match nothing.
    let dim_int = batch(
        vec![
            Field::new("k", DataType::Int32, false),
            Field::new("label", DataType::Utf8, true),
            Field::new("small", DataType::Int16, true),
            Field::new("region", DataType::Int32, true),
        ],
        vec![
            Arc::new(Int32Array::from_iter_values((0..3_000).map(|i| i * 2))),
            Arc::new(StringArray::from_iter((0..3_000).map(|i| {
                (i % 13 != 0).then(|| format!("key{}", (i * 7) % 3_500))
            }))),
            Arc::new(Int16Array::from_iter_values(
                (0..3_000).map(|i| (i % 100) as i16),
            )),
            Arc::new(Int32Array::from_iter(
                (0..3_000).map(|i| (i % 17 != 0).then_some(i % 12)),
            )),
        ],
    );
    let dim_small = batch(
        vec![
            Field::new("s", DataType::Int16, false),
            Field::new("note", DataType::Utf8, true),
        ],
        vec![
            Arc::new(Int16Array::from_iter_values((0..1_500).map(|i| i * 3))),
            Arc::new(StringArray::from_iter_values(
                (0..1_500).map(|i| format!("note{}", i % 40)),
            )),
        ],
    );
    let dim_text = batch(
        vec![
            Field::new("t", DataType::Utf8, false),
            Field::new("w", DataType::Int32, true),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..2_500).map(|i| format!("key{i}")),
            )),
            Arc::new(Int32Array::from_iter(
                (0..2_500).map(|i| (i % 9 != 0).then_some(i % 50)),
            )),
        ],
    );
    let dim_day = batch(
        vec![
            Field::new("d", DataType::Date32, false),
            Field::new("w", DataType::Int32, true),
        ],
        vec![
            Arc::new(Date32Array::from_iter_values((0..400).map(|i| 19_000 + i))),
            Arc::new(Int32Array::from_iter_values((0..400).map(|i| i % 30))),
        ],
    );
    let dim_dec = batch(
        vec![
            Field::new("m", DataType::Decimal128(12, 2), false),
            Field::new("w", DataType::Int32, true),
        ],
        vec![
            decimals((0..2_000).map(|i| Some(i * 25)), 12),
            Arc::new(Int32Array::from_iter_values((0..2_000).map(|i| i % 70))),
        ],
    );
    let dim_big = batch(
        vec![
            Field::new("b", DataType::Int64, false),
            Field::new("w", DataType::Int32, true),
        ],
        vec![
            Arc::new(Int64Array::from_iter_values(0..3_000)),
            Arc::new(Int32Array::from_iter_values((0..3_000).map(|i| i % 12))),
        ],
    );
    let region = batch(
        vec![
            Field::new("rid", DataType::Int32, false),
            Field::new("rname", DataType::Utf8, true),
        ],
        vec![
            Arc::new(Int32Array::from_iter_values(0..10)),
            Arc::new(StringArray::from_iter_values(
                (0..10).map(|i| format!("region{i}")),
            )),
        ],
    );
    use Kind::{Distributed, Reference};
    use Shards::{Dimensions, Facts};
    vec![
        (
            "fact",
            "CREATE TABLE fact (f_id BIGINT NOT NULL, k_big BIGINT, k_int INT, k_small SMALLINT, \
             k_text VARCHAR, k_day DATE, k_dec DECIMAL(10, 2), k_double DOUBLE, v INT)",
            Distributed("f_id", Facts),
            fact,
        ),
        (
            "fact2",
            "CREATE TABLE fact2 (f_id BIGINT NOT NULL, g INT)",
            Distributed("f_id", Facts),
            fact2,
        ),
        (
            "dim_int",
            "CREATE TABLE dim_int (k INT NOT NULL, label TEXT, small SMALLINT, region INT)",
            Distributed("k", Dimensions),
            dim_int,
        ),
        (
            "dim_small",
            "CREATE TABLE dim_small (s SMALLINT NOT NULL, note TEXT)",
            Distributed("s", Dimensions),
            dim_small,
        ),
        (
            "dim_text",
            "CREATE TABLE dim_text (t TEXT NOT NULL, w INT)",
            Distributed("t", Dimensions),
            dim_text,
        ),
        (
            "dim_day",
            "CREATE TABLE dim_day (d DATE NOT NULL, w INT)",
            Distributed("d", Dimensions),
            dim_day,
        ),
        (
            "dim_dec",
            "CREATE TABLE dim_dec (m DECIMAL(12, 2) NOT NULL, w INT)",
            Distributed("m", Dimensions),
            dim_dec,
        ),
        (
            "dim_big",
            "CREATE TABLE dim_big (b BIGINT NOT NULL, w INT)",
            Distributed("b", Dimensions),
            dim_big,
        ),
        (
            "region",
            "CREATE TABLE region (rid INT NOT NULL, rname TEXT)",
            Reference,
            region,
        ),
    ]
}

/// `(sql, ordered)`.
const QUERIES: &[(&str, bool)] = &[
    // Key types: the distribution column paired with a column of the same or a related type.
    (
        "SELECT d.label, count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.k_int = d.k \
         GROUP BY d.label",
        false,
    ),
    (
        "SELECT count(*), sum(f.v), sum(d.region) FROM fact f JOIN dim_int d ON f.k_big = d.k",
        false,
    ),
    (
        "SELECT count(*), sum(f.v), sum(b.w) FROM fact f JOIN dim_big b ON f.k_int = b.b",
        false,
    ),
    (
        "SELECT s.note, count(*) FROM fact f JOIN dim_small s ON f.k_int = s.s GROUP BY s.note",
        false,
    ),
    (
        "SELECT count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.k_small = d.k",
        false,
    ),
    (
        "SELECT t.w, count(*), sum(f.v) FROM fact f JOIN dim_text t ON f.k_text = t.t \
         GROUP BY t.w",
        false,
    ),
    (
        "SELECT dd.w, count(*), min(f.f_id) FROM fact f JOIN dim_day dd ON f.k_day = dd.d \
         GROUP BY dd.w",
        false,
    ),
    (
        "SELECT m.w, count(*), sum(f.k_dec) FROM fact f JOIN dim_dec m ON f.k_dec = m.m \
         GROUP BY m.w",
        false,
    ),
    // Types whose equal values hash differently: must not be routed by shard.
    (
        "SELECT count(*), sum(b.w), sum(f.v) FROM fact f JOIN dim_big b ON f.k_double = b.b",
        false,
    ),
    (
        "SELECT count(*), sum(b.w) FROM fact f JOIN dim_big b ON f.k_dec = b.b",
        false,
    ),
    (
        "SELECT count(*), sum(m.w) FROM fact f JOIN dim_dec m ON f.k_int = m.m",
        false,
    ),
    // Expression keys on the moved side.
    (
        "SELECT count(*), sum(t.w) FROM fact f JOIN dim_text t ON lower(f.k_text) = t.t",
        false,
    ),
    (
        "SELECT count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.k_int + 2 = d.k",
        false,
    ),
    // Two keys, one of them the distribution column.
    (
        "SELECT count(*) FROM fact f JOIN dim_int d ON f.k_int = d.k AND f.k_small = d.small",
        false,
    ),
    // NULL keys in outer joins.
    (
        "SELECT count(*), count(d.k), count(f.f_id), sum(f.v) FROM fact f \
         LEFT JOIN dim_int d ON f.k_int = d.k",
        false,
    ),
    (
        "SELECT count(*), count(d.k), count(f.f_id), sum(f.v) FROM fact f \
         RIGHT JOIN dim_int d ON f.k_int = d.k",
        false,
    ),
    (
        "SELECT count(*), count(d.k), count(f.f_id), sum(f.v) FROM fact f \
         FULL JOIN dim_int d ON f.k_int = d.k",
        false,
    ),
    (
        "SELECT count(*), count(t.t), count(f.f_id) FROM dim_text t FULL JOIN fact f \
         ON f.k_text = t.t",
        false,
    ),
    // Grouped by a key that an outer join null-extends: one NULL group.
    (
        "SELECT f.k_int, count(*), count(d.k) FROM dim_int d LEFT JOIN fact f \
         ON f.k_int = d.k GROUP BY f.k_int",
        false,
    ),
    (
        "SELECT d.k, f.k_int, count(*) FROM fact f FULL JOIN dim_int d ON f.k_int = d.k \
         GROUP BY d.k, f.k_int",
        false,
    ),
    (
        "SELECT g.f_id IS NULL, count(*) FROM fact f LEFT JOIN fact2 g ON f.f_id = g.f_id \
         GROUP BY g.f_id IS NULL",
        false,
    ),
    // Grouped by either key of an inner join.
    (
        "SELECT d.k, count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.k_int = d.k GROUP BY d.k",
        false,
    ),
    (
        "SELECT f.k_int, count(*) FROM fact f JOIN dim_int d ON f.k_int = d.k GROUP BY f.k_int",
        false,
    ),
    // Semi and anti joins.
    (
        "SELECT count(*) FROM fact f WHERE EXISTS (SELECT 1 FROM dim_int d WHERE d.k = f.k_int)",
        false,
    ),
    (
        "SELECT count(*), sum(v) FROM fact f WHERE NOT EXISTS \
         (SELECT 1 FROM dim_int d WHERE d.k = f.k_int)",
        false,
    ),
    (
        "SELECT count(*) FROM dim_int d WHERE d.k IN (SELECT k_int FROM fact)",
        false,
    ),
    (
        "SELECT count(*) FROM dim_int d WHERE NOT EXISTS \
         (SELECT 1 FROM fact f WHERE f.k_int = d.k)",
        false,
    ),
    (
        "SELECT count(*) FROM fact f WHERE f.k_int NOT IN (SELECT k FROM dim_int)",
        false,
    ),
    // fact.k_int holds NULLs: NOT IN is never true.
    (
        "SELECT count(*) FROM dim_int d WHERE d.k NOT IN (SELECT k_int FROM fact)",
        false,
    ),
    (
        "SELECT count(*) FROM dim_int d WHERE d.k NOT IN \
         (SELECT k_int FROM fact WHERE k_int IS NOT NULL)",
        false,
    ),
    (
        "SELECT count(*) FROM fact f WHERE f.k_text NOT IN (SELECT t FROM dim_text)",
        false,
    ),
    // The staying side pruned to few shards.
    (
        "SELECT count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.k_int = d.k WHERE d.k = 84",
        false,
    ),
    (
        "SELECT count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.k_int = d.k \
         WHERE d.k IN (4, 84, 1000)",
        false,
    ),
    (
        "SELECT count(*), sum(f.v) FROM fact f JOIN dim_text t ON f.k_text = t.t \
         WHERE t.t = 'key7'",
        false,
    ),
    // Both sides keyed by their distribution columns, with different shard counts or types.
    (
        "SELECT count(*), sum(b.w), sum(f.v) FROM fact f JOIN dim_big b ON f.f_id = b.b",
        false,
    ),
    (
        "SELECT count(*), count(b.b), count(f.f_id) FROM fact f FULL JOIN dim_big b \
         ON f.f_id = b.b",
        false,
    ),
    (
        "SELECT b.b % 10, count(*), count(f.f_id) FROM fact f RIGHT JOIN dim_big b \
         ON f.f_id = b.b GROUP BY b.b % 10",
        false,
    ),
    (
        "SELECT b.b, count(*), count(f.f_id) FROM fact f RIGHT JOIN dim_big b \
         ON f.f_id = b.b WHERE b.b < 300 GROUP BY b.b",
        false,
    ),
    (
        "SELECT f.f_id, count(b.b) FROM fact f LEFT JOIN dim_big b ON f.f_id = b.b \
         WHERE f.f_id < 100 GROUP BY f.f_id",
        false,
    ),
    (
        "SELECT count(*), sum(f.v) FROM fact f JOIN dim_big b ON f.f_id = b.b WHERE f.f_id = 42",
        false,
    ),
    (
        "SELECT count(*), sum(b.w) FROM dim_int d JOIN dim_big b ON d.k = b.b",
        false,
    ),
    (
        "SELECT b.b, count(d.k) FROM dim_int d RIGHT JOIN dim_big b ON d.k = b.b GROUP BY b.b",
        false,
    ),
    (
        "SELECT count(*) FROM dim_small s JOIN dim_int d ON s.s = d.k JOIN dim_big b \
         ON d.k = b.b",
        false,
    ),
    // A small side moved into a large side's shards, where it is the join's build side.
    (
        "SELECT count(*), sum(f.v) FROM dim_int d JOIN fact f ON d.region = f.f_id",
        false,
    ),
    (
        "SELECT count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.f_id = d.small",
        false,
    ),
    (
        "SELECT count(*), count(d.k) FROM fact f LEFT JOIN dim_int d ON f.f_id = d.region",
        false,
    ),
    (
        "SELECT count(*), count(f.f_id) FROM dim_int d LEFT JOIN fact f ON f.f_id = d.region",
        false,
    ),
    (
        "SELECT count(*), count(f.f_id), count(d.k) FROM dim_int d FULL JOIN fact f \
         ON f.f_id = d.small",
        false,
    ),
    (
        "SELECT count(*) FROM fact f WHERE f.f_id IN (SELECT region FROM dim_int)",
        false,
    ),
    (
        "SELECT count(*) FROM dim_int d WHERE NOT EXISTS \
         (SELECT 1 FROM fact f WHERE f.f_id = d.small)",
        false,
    ),
    // A reference table on one side.
    (
        "SELECT r.rname, count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.k_int = d.k \
         JOIN region r ON d.region = r.rid GROUP BY r.rname",
        false,
    ),
    (
        "SELECT r.rname, count(f.f_id) FROM region r LEFT JOIN fact f ON r.rid = f.k_int \
         GROUP BY r.rname",
        false,
    ),
    (
        "SELECT r.rname, count(*) FROM fact f JOIN region r ON f.k_small = r.rid \
         JOIN dim_small s ON f.k_small = s.s GROUP BY r.rname",
        false,
    ),
    // Three and four tables: co-located, shard-aligned and hash-shuffled joins together.
    (
        "SELECT d.label, count(*), sum(g.g) FROM fact f JOIN fact2 g ON f.f_id = g.f_id \
         JOIN dim_int d ON f.k_int = d.k GROUP BY d.label",
        false,
    ),
    (
        "SELECT t.w, count(*), sum(f.v) FROM fact f JOIN dim_int d ON f.k_int = d.k \
         JOIN dim_text t ON d.label = t.t GROUP BY t.w",
        false,
    ),
    (
        "SELECT count(*), sum(b.w), sum(f.v) FROM fact f JOIN dim_int d ON f.k_int = d.k \
         JOIN dim_big b ON d.region = b.w",
        false,
    ),
    (
        "SELECT r.rname, dd.w, count(*) FROM fact f JOIN fact2 g ON f.f_id = g.f_id \
         JOIN dim_day dd ON f.k_day = dd.d JOIN dim_text t ON f.k_text = t.t \
         JOIN region r ON t.w % 10 = r.rid GROUP BY r.rname, dd.w",
        false,
    ),
    (
        "SELECT count(*), count(d.k), count(t.t) FROM fact f LEFT JOIN dim_int d \
         ON f.k_int = d.k LEFT JOIN dim_text t ON d.label = t.t",
        false,
    ),
    (
        "SELECT g.g, count(*), count(s.s) FROM fact f JOIN fact2 g ON f.f_id = g.f_id \
         LEFT JOIN dim_small s ON f.k_small = s.s JOIN dim_dec m ON f.k_dec = m.m GROUP BY g.g",
        false,
    ),
    // The staying side is a co-located join; the moved side's key is an INT.
    (
        "SELECT count(*), sum(g.g), sum(b.w) FROM fact f JOIN fact2 g ON f.f_id = g.f_id \
         JOIN dim_big b ON CAST(b.w AS BIGINT) * 10 = f.f_id",
        false,
    ),
    (
        "SELECT count(*), sum(d.region) FROM fact f JOIN fact2 g ON f.f_id = g.f_id \
         JOIN dim_int d ON d.k = f.f_id",
        false,
    ),
    (
        "SELECT f.f_id, f.v, d.label FROM fact f JOIN dim_int d ON f.k_int = d.k \
         ORDER BY f.v DESC NULLS LAST, f.f_id LIMIT 20",
        true,
    ),
];

/// Joins that pair a distribution column with a column whose equal values hash alike, and
/// which therefore move the other side into its shards: `(sql, what EXPLAIN shows)`.
const ALIGNED: &[(&str, &str)] = &[
    (
        "SELECT count(*) FROM fact f JOIN dim_int d ON f.k_int = d.k",
        "into shards by k_int",
    ),
    (
        "SELECT count(*) FROM fact f JOIN dim_text t ON f.k_text = t.t",
        "into shards by k_text",
    ),
    (
        "SELECT count(*) FROM fact f JOIN dim_day dd ON f.k_day = dd.d",
        "into shards by k_day",
    ),
    (
        "SELECT count(*) FROM fact f LEFT JOIN dim_int d ON f.k_int = d.k",
        "into shards by k_int",
    ),
];

/// Joins whose key types hash differently: no shard-aligned move may appear in their plans.
const NOT_ALIGNED: &[&str] = &[
    "SELECT count(*) FROM fact f JOIN dim_big b ON f.k_double = b.b",
    "SELECT count(*) FROM fact f JOIN dim_big b ON f.k_dec = b.b",
];

async fn load(
    client: &mut TestClient,
    dir: &Path,
    fact_shards: usize,
    dim_shards: usize,
) -> SessionContext {
    let single = single_node_session();
    for (name, ddl, kind, batch) in data() {
        let distribute = match kind {
            Kind::Distributed(column, shards) => {
                let shards = match shards {
                    Shards::Facts => fact_shards,
                    Shards::Dimensions => dim_shards,
                };
                format!(
                    "SELECT create_distributed_table('{name}', '{column}', \
                     shard_count => {shards})"
                )
            }
            Kind::Reference => format!("SELECT create_reference_table('{name}')"),
        };
        load_table(client, &single, dir, (name, ddl, Some(&distribute)), &batch).await;
    }
    single
}

async fn run_at(fact_shards: usize, dim_shards: usize, workers: usize) {
    run_with(fact_shards, dim_shards, workers, SessionConfig::new()).await;
}

/// [`run_at`] with the coordinator planning with `config`.
async fn run_with(fact_shards: usize, dim_shards: usize, workers: usize, config: SessionConfig) {
    let dir = tempfile::tempdir().expect("temp dir");
    let partitions = config.target_partitions();
    let cluster = TestCluster::start_with_config(workers, config).await;
    let mut client = cluster.client().await;
    let single = load(&mut client, dir.path(), fact_shards, dim_shards).await;
    let mut wrong = Vec::new();
    for (sql, ordered) in QUERIES {
        let want = single
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("single node cannot plan {sql}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("single node failed on {sql}: {e}"));
        match client.query(sql).await {
            Ok(got) => {
                if let Err(difference) = same(&got, &want, *ordered) {
                    let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
                    wrong.push(format!("{sql}\n  => {difference}\n{plan}"));
                }
            }
            Err(status) => wrong.push(format!(
                "{sql}\n  => failed: {:?} {}",
                status.code(),
                status.message()
            )),
        }
    }
    if dim_shards > 1 {
        for (sql, shown) in ALIGNED {
            let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
            if !plan.contains(shown) {
                wrong.push(format!("{sql}\n  => not moved into shards\n{plan}"));
            }
        }
    }
    for sql in NOT_ALIGNED {
        let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
        if plan.contains("into shards by") {
            wrong.push(format!(
                "{sql}\n  => routed by shard although its key types hash differently\n{plan}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "[fact {fact_shards} shards, dimensions {dim_shards} shards, {workers} workers, \
         target_partitions {partitions}] {} problems:\n\n{}",
        wrong.len(),
        wrong.join("\n\n")
    );
    cluster.shutdown().await;
}

async fn bounded(fact_shards: usize, dim_shards: usize, workers: usize) {
    tokio::time::timeout(
        Duration::from_secs(400),
        run_at(fact_shards, dim_shards, workers),
    )
    .await
    .expect("the test finishes within 400 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_1_and_32_shards() {
    bounded(1, 32, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_7_shards() {
    bounded(7, 7, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_32_and_5_shards() {
    bounded(32, 5, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_3_workers() {
    bounded(7, 2, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_1_target_partition() {
    tokio::time::timeout(
        Duration::from_secs(400),
        run_with(7, 5, 2, SessionConfig::new().with_target_partitions(1)),
    )
    .await
    .expect("the test finishes within 400 s");
}

/// One query's answer equals single-node DataFusion's (the plan is shown if not).
async fn one_query(fact_shards: usize, dim_shards: usize, sql: &str) {
    one_query_with(fact_shards, dim_shards, sql, false, SessionConfig::new()).await;
}

/// [`one_query`], its rows' order significant if `ordered`, planned with `config`.
async fn one_query_with(
    fact_shards: usize,
    dim_shards: usize,
    sql: &str,
    ordered: bool,
    config: SessionConfig,
) {
    let test = async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start_with_config(2, config).await;
        let mut client = cluster.client().await;
        let single = load(&mut client, dir.path(), fact_shards, dim_shards).await;
        let want = single
            .sql(sql)
            .await
            .expect("single node plans")
            .collect()
            .await
            .expect("single node runs");
        let got = match client.query(sql).await {
            Ok(got) => got,
            Err(status) => {
                let plan = match client.query(&format!("EXPLAIN {sql}")).await {
                    Ok(plan) => rows(&plan).join("\n"),
                    Err(e) => format!("EXPLAIN fails too: {e}"),
                };
                panic!(
                    "{sql}\n  => failed: {:?} {}\n{plan}",
                    status.code(),
                    status.message()
                );
            }
        };
        if let Err(difference) = same(&got, &want, ordered) {
            let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
            panic!(
                "[fact {fact_shards} shards, dimensions {dim_shards} shards] {sql}\n  => \
                 {difference}\n{plan}"
            );
        }
        cluster.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the test finishes within 120 s");
}

// A LEFT JOIN null-extends the staying side's distribution column for fact rows with no
// match; those rows sit in every shard, so their NULL group must still be merged into one.
// (Before 3a2e7b1 it came back once per worker: 3002 rows for 3001 groups.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_extended_aligned_key_has_one_null_group() {
    one_query(
        7,
        7,
        "SELECT d.k, count(*), sum(f.v) FROM fact f LEFT JOIN dim_int d ON f.k_int = d.k \
         GROUP BY d.k",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_extended_aligned_text_key_has_one_null_group() {
    one_query(
        32,
        5,
        "SELECT t.t, count(*) FROM fact f LEFT JOIN dim_text t ON f.k_text = t.t GROUP BY t.t",
    )
    .await;
}

// The same with a co-located join (both sides distributed by f_id). (Before 3a2e7b1 the NULL
// group came back once per shard: 299 rows at 32 shards for 268 groups.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_extended_colocated_key_has_one_null_group() {
    one_query(
        32,
        5,
        "SELECT g.f_id, count(*) FROM fact f LEFT JOIN fact2 g ON f.f_id = g.f_id \
         WHERE f.f_id % 100 = 0 GROUP BY g.f_id",
    )
    .await;
}

// The staying side (dim_int) is pruned to the shards of k = 84 (or 4 and 84); the moved side
// (fact) is preserved by the join, so every fact row must come out, matched or not. (Before
// 3a2e7b1 its rows routed to the shards nobody read were dropped: 5344 of 40000 at 7 shards.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_staying_side_keeps_left_join_rows() {
    one_query(
        7,
        7,
        "SELECT count(*), count(d.k) FROM fact f LEFT JOIN dim_int d \
         ON f.k_int = d.k AND d.k = 84",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_staying_subquery_keeps_left_join_rows() {
    one_query(
        32,
        5,
        "SELECT count(*), count(d.k) FROM fact f LEFT JOIN \
         (SELECT * FROM dim_int WHERE k IN (4, 84)) d ON f.k_int = d.k",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_staying_side_keeps_anti_join_rows() {
    one_query(
        7,
        7,
        "SELECT count(*) FROM fact f WHERE NOT EXISTS \
         (SELECT 1 FROM dim_int d WHERE d.k = f.k_int AND d.k IN (4, 84))",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_staying_side_keeps_full_join_rows() {
    one_query(
        32,
        5,
        "SELECT count(*), count(f.f_id), count(d.k) FROM (SELECT * FROM dim_int WHERE k = 84) d \
         FULL JOIN fact f ON f.k_int = d.k",
    )
    .await;
}

// No equality filter prunes the staying side's shards here, but its files' min/max may rule
// out some shards for a range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_filtered_staying_side_keeps_left_join_rows() {
    one_query(
        32,
        32,
        "SELECT count(*), count(d.k) FROM fact f LEFT JOIN dim_int d \
         ON f.k_int = d.k AND d.k BETWEEN 80 AND 90",
    )
    .await;
}

// ORDER BY over a shard-aligned join: DataFusion sorts the probe side (fact) below the join,
// which keeps its order, and the coordinator merges the tasks' streams as sorted; but the sort
// runs before the moved side's Range repartition, and each consumer task reads several
// producers and several shards, so its stream is not sorted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_over_an_aligned_join() {
    one_query_with(
        7,
        7,
        "SELECT f.k_int, f.f_id, d.label FROM fact f JOIN dim_int d ON f.k_int = d.k \
         ORDER BY f.k_int, f.f_id",
        true,
        SessionConfig::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_over_an_aligned_join_from_one_shard() {
    one_query_with(
        1,
        32,
        "SELECT f.k_int, f.f_id, d.label FROM fact f JOIN dim_int d ON f.k_int = d.k \
         ORDER BY f.k_int, f.f_id",
        true,
        SessionConfig::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_over_an_aligned_join_with_one_partition() {
    one_query_with(
        7,
        5,
        "SELECT f.f_id, row_number() OVER (PARTITION BY f.k_int ORDER BY f.f_id), \
         sum(f.v) OVER (PARTITION BY d.label ORDER BY f.f_id) \
         FROM fact f JOIN dim_int d ON f.k_int = d.k",
        false,
        SessionConfig::new().with_target_partitions(1),
    )
    .await;
}

// The same shapes at the default partitions pass (the window's sort sits above the join).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_over_an_aligned_join() {
    one_query_with(
        7,
        5,
        "SELECT f.f_id, row_number() OVER (PARTITION BY f.k_int ORDER BY f.f_id), \
         sum(f.v) OVER (PARTITION BY d.label ORDER BY f.f_id) \
         FROM fact f JOIN dim_int d ON f.k_int = d.k",
        false,
        SessionConfig::new(),
    )
    .await;
}

// Both sides keyed by their distribution columns (fact by f_id, 7 shards; dim_big by b,
// 5 shards), the staying side pruned to one shard, the moved side preserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_distribution_key_left_join_with_one_partition() {
    one_query_with(
        7,
        5,
        "SELECT count(*), count(b.b) FROM fact f LEFT JOIN dim_big b ON f.f_id = b.b AND b.b = 42",
        false,
        SessionConfig::new().with_target_partitions(1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_distribution_key_left_join() {
    one_query_with(
        7,
        5,
        "SELECT count(*), count(b.b) FROM fact f LEFT JOIN dim_big b ON f.f_id = b.b AND b.b = 42",
        false,
        SessionConfig::new(),
    )
    .await;
}
