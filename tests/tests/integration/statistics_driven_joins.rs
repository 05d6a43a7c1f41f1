//! The planner chooses how to run a join that is not co-located (move one side into the other's
//! shards, or broadcast the smaller side) from estimates that use the column statistics: a
//! filter keeps the share DataFusion derives from min/max (ranges) and distinct counts
//! (equalities), not a flat fifth, and a move is chosen only when it sends fewer rows than a
//! broadcast. Checked on TPC-H (Q14's choice flips with a flat estimate; Q8's with a planner
//! that always prefers moves), and the answers equal single-node DataFusion's. A star join
//! builds its hash tables on the dimensions.

use std::path::PathBuf;
use std::time::Duration;

use shardfusion_benchmarks::tpch;
use shardfusion_benchmarks::tpch_run::single_node_tpch;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::{assert_same, rows, single_node_answer};

const SCALE: f64 = 0.01;
const SHARDS: usize = 8;

/// `(query, what its EXPLAIN shows, what it must not show, why)`.
const CHOICES: &[(usize, &str, &str, &str)] = &[
    // One month of lineitem (~1.2% by its l_shipdate range) is fewer rows than two copies of
    // part: the filtered lineitem rows move into part's shards.
    (
        14,
        "into shards by l_partkey",
        "BroadcastExec",
        "one month of lineitem moves to part",
    ),
    // One p_type of 150 (by its distinct count) leaves part tiny: it is broadcast, and
    // lineitem is not moved into part's shards.
    (
        8,
        "BroadcastExec",
        "into shards by l_partkey",
        "a filtered part is broadcast",
    ),
];

/// A star join over `lineitem`, aggregated so that its order is total.
const STAR: &str = "SELECT p_brand, s_name, n_name, count(*) AS n, \
                    sum(l_quantity * ps_supplycost) AS cost \
                    FROM lineitem \
                    JOIN partsupp ON l_partkey = ps_partkey AND l_suppkey = ps_suppkey \
                    JOIN part ON p_partkey = l_partkey \
                    JOIN supplier ON s_suppkey = l_suppkey \
                    JOIN nation ON n_nationkey = s_nationkey \
                    WHERE p_size < 10 \
                    GROUP BY p_brand, s_name, n_name \
                    ORDER BY cost DESC, p_brand, s_name, n_name LIMIT 20";

/// The first line of the build (left) input of every `CollectLeft` hash join in an `EXPLAIN`
/// plan (the next line, one level deeper).
fn build_sides(plan: &str) -> Vec<String> {
    let lines: Vec<&str> = plan.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains("HashJoinExec: mode=CollectLeft"))
        .filter_map(|(i, line)| {
            lines
                .get(i + 1)
                .filter(|next| indent(next) > indent(line))
                .map(|next| next.trim().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_follow_the_filtered_row_estimates() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tpch-sf{SCALE}"));
        tpch::generate(SCALE, &dir).expect("generate TPC-H data");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        tpch::load(&mut client, &dir, SHARDS, &tpch::TABLES, &|_| {})
            .await
            .expect("TPC-H loads");
        let single = single_node_tpch(&dir).await.expect("single-node session");
        let mut wrong = Vec::new();
        for (number, shown, absent, why) in CHOICES {
            let sql = tpch::query(*number).expect("query");
            let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
            let below = plan.split_once("DistributedExec").map_or("", |(_, b)| b);
            if !below.contains(shown) || below.contains(absent) {
                wrong.push(format!(
                    "Q{number}: {why}, so EXPLAIN shows {shown:?} and not {absent:?}:\n{plan}"
                ));
            }
            let expected = single_node_answer(&single, sql).await;
            let actual = client
                .query(sql)
                .await
                .unwrap_or_else(|e| panic!("Q{number} failed: {e}"));
            assert_same(&format!("Q{number}"), &actual, &expected, true);
        }
        // A star join (lineitem with partsupp, part, supplier, nation) builds every hash table
        // on a dimension, never on the fact table or a join over it (which, with long strings,
        // is what once gathered more than 2 GiB into one array).
        let plan = rows(&client.run(&format!("EXPLAIN {STAR}")).await).join("\n");
        let sides = build_sides(&plan);
        assert!(
            sides.len() >= 3,
            "the star join's hash joins collect their build sides:\n{plan}"
        );
        for side in sides {
            if side.contains("HashJoinExec") || side.contains("table=lineitem") {
                wrong.push(format!("the star join builds on {side}:\n{plan}"));
            }
        }
        let expected = single_node_answer(&single, STAR).await;
        let actual = client.query(STAR).await.expect("the star join runs");
        assert_same("star join", &actual, &expected, true);
        assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
        cluster.shutdown().await;
    })
    .await
    .expect("the test finishes within 300 s");
}
