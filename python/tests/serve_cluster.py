"""Runs a LocalCluster in its own process for tests that measure the client alone.

Loads `rows` rows into a distributed table `big`, prints the URL, and serves until stdin
closes.
"""

import sys

import pyarrow as pa

import shardfusion


def main() -> None:
    rows = int(sys.argv[1])
    with shardfusion.LocalCluster(workers=2) as cluster:
        session = cluster.connect()
        session.sql(
            "CREATE TABLE big (id BIGINT NOT NULL, qty INT, price DOUBLE, comment TEXT)"
        ).to_arrow()
        session.create_distributed_table("big", "id", shard_count=8)
        step = 200_000
        for start in range(0, rows, step):
            ids = pa.array(range(start, min(rows, start + step)), pa.int64())
            session.ingest(
                "big",
                pa.table(
                    {
                        "id": ids,
                        "qty": pa.compute.cast(pa.compute.divide(ids, 7), pa.int32()),
                        "price": pa.compute.multiply(ids.cast(pa.float64()), 1.5),
                        "comment": pa.array([f"comment {i % 1000}" for i in ids.to_pylist()]),
                    }
                ),
            )
        print(cluster.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
