//! `COPY ... FROM` with Parquet, CSV (header, delimiter, column list, NULLs) and TPC-H-style
//! `|`-separated files with a trailing delimiter; bad files fail cleanly.

use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_reads_csv_and_tbl_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, "id,name,score\n1,ann,1.5\n2,,2.5\n3,\"c, d\",\n").expect("write");
    let tbl = dir.path().join("nation.tbl");
    std::fs::write(
        &tbl,
        "0|ALGERIA|0|haggle carefully|\n1|ARGENTINA|1|al foxes promise|\n",
    )
    .expect("write");
    let partial = dir.path().join("partial.csv");
    std::fs::write(&partial, "x;10\ny;11\n").expect("write");
    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, "id,name,score\n5,eve,1.0\nsix,frank,2.0\n").expect("write");

    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    c.run("CREATE TABLE people (id BIGINT NOT NULL, name TEXT, score DOUBLE)")
        .await;
    c.run("SELECT create_distributed_table('people', 'id', shard_count => 3)")
        .await;
    let loaded = c
        .scalar(&format!(
            "COPY people FROM '{}' WITH (FORMAT csv, HEADER true)",
            csv.display()
        ))
        .await;
    assert_eq!(loaded, "3");
    assert_eq!(
        rows(
            &c.run("SELECT id, name, score FROM people ORDER BY id")
                .await
        ),
        [
            "1 | ann | 1.500000000e0",
            "2 | NULL | 2.500000000e0",
            "3 | c, d | NULL"
        ]
    );
    c.run(&format!(
        "COPY people (name, id) FROM '{}' WITH (FORMAT csv, DELIMITER ';')",
        partial.display()
    ))
    .await;
    assert_eq!(
        rows(
            &c.run("SELECT id, name, score FROM people WHERE id >= 10 ORDER BY id")
                .await
        ),
        ["10 | x | NULL", "11 | y | NULL"]
    );
    // A bad value fails the whole COPY; nothing of it is visible.
    c.expect_error(
        &format!(
            "COPY people FROM '{}' WITH (FORMAT csv, HEADER true)",
            broken.display()
        ),
        Code::InvalidArgument,
    )
    .await;
    assert_eq!(c.scalar("SELECT count(*) FROM people").await, "5");
    c.expect_error("COPY people FROM 'relative.csv'", Code::InvalidArgument)
        .await;
    c.expect_error(
        "COPY people FROM '/no/such/file.csv' WITH (FORMAT csv)",
        Code::InvalidArgument,
    )
    .await;
    c.expect_error(
        &format!("COPY nobody FROM '{}'", csv.display()),
        Code::NotFound,
    )
    .await;

    c.run("CREATE TABLE nation (n_nationkey INT NOT NULL, n_name TEXT, n_regionkey INT, n_comment TEXT)")
        .await;
    c.run("SELECT create_reference_table('nation')").await;
    c.run(&format!(
        "COPY nation FROM '{}' WITH (FORMAT csv, DELIMITER '|')",
        tbl.display()
    ))
    .await;
    assert_eq!(
        rows(&c.run("SELECT * FROM nation ORDER BY n_nationkey").await),
        [
            "0 | ALGERIA | 0 | haggle carefully",
            "1 | ARGENTINA | 1 | al foxes promise"
        ]
    );
    cluster.shutdown().await;
}
