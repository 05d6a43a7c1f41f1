//! The rows and queries of `shard_aligned_joins`: a fact table and dimension tables of many key
//! types and shard counts, and the statements compared with DataFusion (and whether each
//! must be shard-aligned).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int16Array, Int32Array, Int64Array,
    RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};

pub const FACTS: i64 = 40_000;

pub fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

pub fn decimals(values: impl Iterator<Item = Option<i128>>, precision: u8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter(values)
            .with_precision_and_scale(precision, 2)
            .expect("decimal"),
    )
}

/// How a table is created and distributed.
pub enum Kind {
    Distributed(&'static str, Shards),
    Reference,
}

/// Which of the two shard counts of a run a table gets.
#[derive(Clone, Copy)]
pub enum Shards {
    Facts,
    Dimensions,
}

/// `fact` (distributed by `f_id`) refers to each dimension through a column of a related type;
/// every key column has NULLs and values no dimension holds. `fact2` is co-located with
/// `fact`. Each `dim_*` is distributed by its key; `region` is a reference table.
pub fn data() -> Vec<(&'static str, &'static str, Kind, RecordBatch)> {
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
pub const QUERIES: &[(&str, bool)] = &[
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

/// Joins that pair a distribution column with a column whose equal values hash alike, on a
/// fact table filtered to fewer rows than a broadcast of the dimension would send, so the fact
/// rows move into the dimension's shards: `(sql, what EXPLAIN shows)`.
pub const ALIGNED: &[(&str, &str)] = &[
    (
        "SELECT count(*) FROM fact f JOIN dim_int d ON f.k_int = d.k WHERE f.f_id <= 300",
        "into shards by k_int",
    ),
    (
        "SELECT count(*) FROM fact f JOIN dim_text t ON f.k_text = t.t WHERE f.f_id <= 300",
        "into shards by k_text",
    ),
    (
        "SELECT count(*) FROM fact f JOIN dim_day dd ON f.k_day = dd.d WHERE f.f_id <= 300",
        "into shards by k_day",
    ),
    (
        "SELECT count(*) FROM fact f LEFT JOIN dim_int d ON f.k_int = d.k WHERE f.f_id <= 300",
        "into shards by k_int",
    ),
];

/// The same joins on the whole fact table: a copy of the dimension on every worker sends
/// fewer rows than moving the facts, so the dimension is broadcast, unless broadcasts are off
/// (then the facts move: `(sql, what EXPLAIN shows then)`).
pub const BROADCAST: &[(&str, &str)] = &[
    (
        "SELECT count(*) FROM fact f JOIN dim_int d ON f.k_int = d.k",
        "into shards by k_int",
    ),
    (
        "SELECT count(*) FROM fact f JOIN dim_text t ON f.k_text = t.t",
        "into shards by k_text",
    ),
    (
        "SELECT count(*) FROM fact f LEFT JOIN dim_int d ON f.k_int = d.k",
        "into shards by k_int",
    ),
];

/// Joins whose key types hash differently: no shard-aligned move may appear in their plans.
pub const NOT_ALIGNED: &[&str] = &[
    "SELECT count(*) FROM fact f JOIN dim_big b ON f.k_double = b.b",
    "SELECT count(*) FROM fact f JOIN dim_big b ON f.k_dec = b.b",
];
