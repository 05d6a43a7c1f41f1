//! The rows and queries of `shuffled_aggregates`: `events` and `users` with many values in
//! non-distribution columns, NULLs included, and the statements compared with DataFusion.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};

pub const EVENTS: i64 = 60_000;
pub const USERS: i64 = 4_000;

/// `events` is distributed by `id`; `user_id` (about 3,000 values and NULLs), `name` (about
/// 2,000 values and NULLs), `day` (365 values), `score` and `amount` are not distribution
/// columns. `users` is distributed by `uid` (some users have no events, some events name no
/// user); `age` has NULLs.
pub fn data() -> Vec<(&'static str, &'static str, &'static str, RecordBatch)> {
    let events = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("user_id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
            Field::new("score", DataType::Int32, true),
            Field::new("amount", DataType::Decimal128(12, 2), true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(1..=EVENTS)) as ArrayRef,
            Arc::new(Int32Array::from_iter(
                (1..=EVENTS).map(|i| (i % 53 != 0).then_some(((i * 7_919) % 3_000) as i32)),
            )),
            Arc::new(StringArray::from_iter((1..=EVENTS).map(|i| {
                (i % 47 != 0).then(|| format!("name{}", (i * 31) % 2_000))
            }))),
            Arc::new(Date32Array::from_iter(
                (1..=EVENTS).map(|i| (i % 101 != 0).then_some(19_000 + (i % 365) as i32)),
            )),
            Arc::new(Int32Array::from_iter(
                (1..=EVENTS).map(|i| (i % 13 != 0).then_some((i % 1_000) as i32 - 300)),
            )),
            Arc::new(
                Decimal128Array::from_iter(
                    (1..=EVENTS)
                        .map(|i| (i % 17 != 0).then_some(((i * 37) % 100_000) as i128 - 20_000)),
                )
                .with_precision_and_scale(12, 2)
                .expect("decimal"),
            ),
        ],
    )
    .expect("events");
    let users = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("uid", DataType::Int32, false),
            Field::new("region", DataType::Utf8, true),
            Field::new("age", DataType::Int32, true),
            Field::new("uname", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int32Array::from_iter_values(0..USERS as i32)) as ArrayRef,
            Arc::new(StringArray::from_iter(
                (0..USERS).map(|i| (i % 11 != 0).then(|| format!("region{}", i % 150))),
            )),
            Arc::new(Int32Array::from_iter(
                (0..USERS).map(|i| (i % 9 != 0).then_some((i % 90) as i32 - 300)),
            )),
            Arc::new(StringArray::from_iter((0..USERS).map(|i| {
                (i % 7 != 0).then(|| format!("name{}", (i * 3) % 2_500))
            }))),
        ],
    )
    .expect("users");
    vec![
        (
            "events",
            "CREATE TABLE events (id BIGINT NOT NULL, user_id INT, name TEXT, day DATE, \
             score INT, amount DECIMAL(12, 2))",
            "id",
            events,
        ),
        (
            "users",
            "CREATE TABLE users (uid INT NOT NULL, region TEXT, age INT, uname TEXT)",
            "uid",
            users,
        ),
    ]
}

/// `(sql, ordered)`: nothing here groups or partitions by a distribution column alone.
pub const QUERIES: &[(&str, bool)] = &[
    // Many groups of one key: ints (with a NULL group), text, dates.
    (
        "SELECT user_id, count(*), sum(amount), min(day), max(name), sum(score) FROM events \
         GROUP BY user_id",
        false,
    ),
    (
        "SELECT name, count(*), avg(amount), min(score), max(amount) FROM events GROUP BY name",
        false,
    ),
    (
        "SELECT day, count(*), count(name), sum(score) FROM events GROUP BY day",
        false,
    ),
    // Several keys, NULLs in each, and an expression key.
    (
        "SELECT user_id, day, count(*), sum(amount) FROM events GROUP BY user_id, day",
        false,
    ),
    (
        "SELECT name, score % 7, count(*) FROM events GROUP BY name, score % 7",
        false,
    ),
    (
        "SELECT user_id % 500 AS bucket, count(*), max(amount) FROM events \
         GROUP BY user_id % 500",
        false,
    ),
    // HAVING, and ORDER BY + LIMIT above the groups.
    (
        "SELECT user_id, count(*), sum(score) FROM events GROUP BY user_id \
         HAVING count(*) > 20 AND sum(score) > 1000",
        false,
    ),
    (
        "SELECT user_id, sum(score) AS s FROM events GROUP BY user_id \
         ORDER BY s DESC NULLS LAST, user_id NULLS FIRST LIMIT 15",
        true,
    ),
    (
        "SELECT name, count(*) AS c FROM events GROUP BY name ORDER BY c DESC, name LIMIT 7 OFFSET 3",
        true,
    ),
    // Whole results ordered above shuffled groups, windows and joins (no LIMIT).
    (
        "SELECT user_id, count(*), sum(score) FROM events GROUP BY user_id ORDER BY user_id",
        true,
    ),
    (
        "SELECT name, day, count(*) FROM events GROUP BY name, day ORDER BY day DESC, name",
        true,
    ),
    (
        "SELECT DISTINCT name FROM events ORDER BY name NULLS FIRST",
        true,
    ),
    (
        "SELECT id, rank() OVER (PARTITION BY user_id ORDER BY id) AS r FROM events \
         ORDER BY r DESC, id",
        true,
    ),
    (
        "SELECT a.amount, a.id, b.id FROM events a JOIN events b ON a.amount = b.amount \
         ORDER BY a.amount, a.id, b.id",
        true,
    ),
    // Distinct aggregates and DISTINCT.
    (
        "SELECT user_id, count(DISTINCT name), count(DISTINCT day) FROM events GROUP BY user_id",
        false,
    ),
    (
        "SELECT day, count(DISTINCT user_id), sum(DISTINCT score) FROM events GROUP BY day",
        false,
    ),
    (
        "SELECT count(DISTINCT user_id), count(DISTINCT name), count(DISTINCT day) FROM events",
        false,
    ),
    ("SELECT DISTINCT name FROM events", false),
    ("SELECT DISTINCT user_id, day FROM events", false),
    (
        "SELECT count(*) FROM (SELECT DISTINCT user_id, name FROM events) d",
        false,
    ),
    (
        "SELECT day, approx_distinct(user_id), approx_distinct(name) FROM events GROUP BY day",
        false,
    ),
    (
        "SELECT user_id, array_agg(id ORDER BY id DESC) FROM events WHERE id % 7 = 0 \
         GROUP BY user_id",
        false,
    ),
    (
        "SELECT name, array_agg(DISTINCT score ORDER BY score) FROM events WHERE id % 5 = 0 \
         GROUP BY name",
        false,
    ),
    // Statistics of decimals.
    (
        "SELECT name, stddev(amount), var_samp(amount), var_pop(amount), avg(amount) \
         FROM events GROUP BY name",
        false,
    ),
    (
        "SELECT day, stddev_pop(amount), avg(amount), sum(amount) FROM events GROUP BY day",
        false,
    ),
    // Grouping sets, rollup, cube: right whether or not they are repartitioned.
    (
        "SELECT user_id, day, count(*), sum(amount) FROM events \
         GROUP BY ROLLUP (user_id, day)",
        false,
    ),
    (
        "SELECT name, score % 3 AS m, count(*) FROM events GROUP BY CUBE (name, score % 3)",
        false,
    ),
    (
        "SELECT user_id, day, name, count(*), grouping(user_id), grouping(day) FROM events \
         GROUP BY GROUPING SETS ((user_id), (day), (name, day), ())",
        false,
    ),
    // Window functions partitioned by a column that is not the distribution column.
    (
        "SELECT id, user_id, rank() OVER (PARTITION BY user_id ORDER BY amount DESC NULLS LAST, id), \
         row_number() OVER (PARTITION BY user_id ORDER BY id) FROM events",
        false,
    ),
    (
        "SELECT id, day, sum(score) OVER (PARTITION BY day), \
         sum(amount) OVER (PARTITION BY day ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) \
         FROM events",
        false,
    ),
    (
        "SELECT name, total, dense_rank() OVER (ORDER BY total DESC) FROM \
         (SELECT name, sum(score) AS total FROM events GROUP BY name) g",
        false,
    ),
    (
        "SELECT user_id, c FROM (SELECT user_id, count(*) AS c, \
         row_number() OVER (PARTITION BY user_id % 10 ORDER BY count(*) DESC, user_id) AS r \
         FROM events GROUP BY user_id) g WHERE r <= 3",
        false,
    ),
    // More windows: several partition keys in one query, NULL and expression keys, few
    // partitions, no partition at all, frames, offsets, windows over joins and aggregates.
    (
        "SELECT id, rank() OVER (PARTITION BY user_id ORDER BY id), \
         count(*) OVER (PARTITION BY day), max(score) OVER (PARTITION BY name, day) FROM events",
        false,
    ),
    (
        "SELECT id, lag(score, 2) OVER (PARTITION BY name ORDER BY id), \
         lead(amount) OVER (PARTITION BY name ORDER BY id), \
         first_value(id) OVER (PARTITION BY name ORDER BY score NULLS FIRST, id), \
         nth_value(id, 3) OVER (PARTITION BY name ORDER BY id) FROM events",
        false,
    ),
    (
        "SELECT id, ntile(4) OVER (PARTITION BY score % 3 ORDER BY id), \
         percent_rank() OVER (PARTITION BY score % 3 ORDER BY amount, id), \
         cume_dist() OVER (PARTITION BY score % 3 ORDER BY day, id) FROM events",
        false,
    ),
    (
        "SELECT id, sum(score) OVER (PARTITION BY user_id % 7, day ORDER BY id \
         RANGE BETWEEN 1000 PRECEDING AND CURRENT ROW) FROM events",
        false,
    ),
    (
        "SELECT id, row_number() OVER (ORDER BY amount DESC NULLS LAST, id) FROM events \
         WHERE id % 10 = 0",
        false,
    ),
    (
        "SELECT id, user_id, row_number() OVER (PARTITION BY id ORDER BY user_id), \
         sum(score) OVER (PARTITION BY user_id) FROM events",
        false,
    ),
    (
        "SELECT day, c, rank() OVER (PARTITION BY c ORDER BY day) FROM \
         (SELECT day, count(*) AS c FROM events GROUP BY day) g",
        false,
    ),
    (
        "SELECT name, score, r FROM (SELECT name, score, \
         dense_rank() OVER (PARTITION BY name ORDER BY score DESC NULLS LAST) AS r FROM events) x \
         WHERE r <= 2 AND name IS NOT NULL",
        false,
    ),
    // UNION ALL of shuffled queries.
    (
        "SELECT user_id AS k, count(*) FROM events GROUP BY user_id \
         UNION ALL SELECT score, count(*) FROM events GROUP BY score \
         UNION ALL SELECT age, count(*) FROM users GROUP BY age",
        false,
    ),
    (
        "SELECT k, sum(c) FROM (SELECT user_id AS k, count(*) AS c FROM events GROUP BY user_id \
         UNION ALL SELECT uid, 1 FROM users) u GROUP BY k",
        false,
    ),
    (
        "SELECT name FROM events UNION SELECT uname FROM users",
        false,
    ),
    // Joins on non-distribution columns, then grouped by other columns again.
    (
        "SELECT u.region, count(*), sum(e.amount) FROM events e JOIN users u \
         ON e.user_id = u.uid GROUP BY u.region",
        false,
    ),
    (
        "SELECT e.day, u.region, count(*) FROM events e JOIN users u ON e.name = u.uname \
         GROUP BY e.day, u.region",
        false,
    ),
    (
        "SELECT u.age, count(DISTINCT e.user_id) FROM events e JOIN users u ON e.score = u.age \
         GROUP BY u.age",
        false,
    ),
    // Subqueries: IN / EXISTS / NOT EXISTS, and NOT IN, which is null-aware.
    (
        "SELECT count(*), sum(score) FROM events WHERE user_id IN \
         (SELECT uid FROM users WHERE region LIKE 'region1%')",
        false,
    ),
    (
        "SELECT count(*) FROM events e WHERE EXISTS \
         (SELECT 1 FROM users u WHERE u.uname = e.name AND u.age > -250)",
        false,
    ),
    (
        "SELECT count(*) FROM users u WHERE NOT EXISTS \
         (SELECT 1 FROM events e WHERE e.user_id = u.uid)",
        false,
    ),
    // events.user_id holds NULLs: NOT IN is never true.
    (
        "SELECT count(*) FROM users WHERE uid NOT IN (SELECT user_id FROM events)",
        false,
    ),
    (
        "SELECT count(*) FROM users WHERE uid NOT IN \
         (SELECT user_id FROM events WHERE user_id IS NOT NULL)",
        false,
    ),
    // users.age holds NULLs; neither side is a distribution column.
    (
        "SELECT count(*) FROM events WHERE score NOT IN (SELECT age FROM users)",
        false,
    ),
    (
        "SELECT count(*), count(score) FROM events WHERE score NOT IN \
         (SELECT age FROM users WHERE age IS NOT NULL)",
        false,
    ),
    (
        "SELECT name, count(*) FROM events WHERE name NOT IN \
         (SELECT uname FROM users WHERE uname IS NOT NULL) GROUP BY name",
        false,
    ),
    // Scalar subqueries in the WHERE of a join of two distributed tables.
    (
        "SELECT count(*), sum(e.amount) FROM events e JOIN users u ON e.name = u.uname \
         WHERE e.amount > (SELECT avg(amount) FROM events)",
        false,
    ),
    (
        "SELECT u.region, count(*) FROM events e JOIN users u ON e.user_id = u.uid \
         WHERE e.score > (SELECT avg(age) FROM users) \
         AND e.day < (SELECT max(day) - 100 FROM events) GROUP BY u.region",
        false,
    ),
    // A correlated scalar subquery: decorrelated into a join with an aggregate by user_id.
    (
        "SELECT count(*) FROM events e WHERE e.score > \
         (SELECT avg(e2.score) FROM events e2 WHERE e2.user_id = e.user_id)",
        false,
    ),
    // Shuffled aggregates feeding joins and other aggregates.
    (
        "SELECT u.region, sum(g.c), count(*) FROM (SELECT user_id, count(*) AS c FROM events \
         GROUP BY user_id) g JOIN users u ON g.user_id = u.uid GROUP BY u.region",
        false,
    ),
    (
        "SELECT count(*), sum(a.c * b.c) FROM (SELECT user_id, count(*) AS c FROM events \
         GROUP BY user_id) a JOIN (SELECT age, count(*) AS c FROM users GROUP BY age) b \
         ON a.user_id = b.age",
        false,
    ),
    (
        "SELECT c, count(*) FROM (SELECT user_id, count(*) AS c FROM events GROUP BY user_id) g \
         GROUP BY c",
        false,
    ),
    (
        "SELECT user_id, count(*), count(name) FROM (SELECT user_id, name FROM events \
         GROUP BY user_id, name) x GROUP BY user_id",
        false,
    ),
    (
        "SELECT g.user_id, g.c, u.region FROM (SELECT user_id, count(*) AS c FROM events \
         GROUP BY user_id) g LEFT JOIN users u ON g.user_id = u.uid",
        false,
    ),
    (
        "SELECT g.name, g.c, x.c FROM (SELECT name, count(*) AS c FROM events GROUP BY name) g \
         FULL JOIN (SELECT uname, count(*) AS c FROM users GROUP BY uname) x ON g.name = x.uname",
        false,
    ),
    // Outer shuffle joins grouped by a key they null-extend.
    (
        "SELECT u.uname, count(*) FROM events e LEFT JOIN users u ON e.name = u.uname \
         GROUP BY u.uname",
        false,
    ),
    (
        "SELECT e.name, count(*), count(u.uid) FROM events e RIGHT JOIN users u \
         ON e.name = u.uname GROUP BY e.name",
        false,
    ),
    (
        "SELECT e.score, u.age, count(*) FROM events e FULL JOIN users u ON e.score = u.age \
         GROUP BY e.score, u.age",
        false,
    ),
    // Self joins, non-equi conditions, expression keys.
    (
        "SELECT count(*), sum(a.score) FROM events a JOIN events b ON a.name = b.name \
         AND a.id < b.id WHERE a.id % 10 = 0",
        false,
    ),
    (
        "SELECT count(*) FROM events e JOIN users u ON e.name = u.uname AND e.score > u.age",
        false,
    ),
    (
        "SELECT count(*), sum(e.score) FROM events e JOIN users u \
         ON CAST(e.score AS BIGINT) = CAST(u.age AS BIGINT) + 1",
        false,
    ),
    // Empty input, and a GROUP BY whose every key is NULL.
    (
        "SELECT user_id, count(*) FROM events WHERE score > 100000 GROUP BY user_id",
        false,
    ),
    (
        "SELECT count(*), count(DISTINCT name) FROM events e JOIN users u \
         ON e.name = u.uname WHERE u.age > 100000",
        false,
    ),
    (
        "SELECT name, count(*) FROM events WHERE name IS NULL GROUP BY name",
        false,
    ),
    // More aggregate functions over shuffled groups.
    (
        "SELECT user_id, first_value(id ORDER BY id), last_value(score ORDER BY id), \
         count(*) FILTER (WHERE score > 0) FROM events GROUP BY user_id",
        false,
    ),
    (
        "SELECT day, median(score), bool_or(score > 600), bit_xor(score) FROM events GROUP BY day",
        false,
    ),
    (
        "SELECT day, string_agg(name, ',' ORDER BY id) FROM events WHERE id % 50 = 0 \
         GROUP BY day",
        false,
    ),
    (
        "SELECT DISTINCT ON (user_id) user_id, id, score FROM events ORDER BY user_id, id",
        true,
    ),
    // A window over a shuffle join, and NOT IN over a join.
    (
        "SELECT e.id, u.region, rank() OVER (PARTITION BY u.region ORDER BY e.score DESC NULLS LAST, e.id) \
         FROM events e JOIN users u ON e.name = u.uname WHERE e.id % 20 = 0",
        false,
    ),
    (
        "SELECT count(*) FROM users u WHERE u.uname NOT IN \
         (SELECT e.name FROM events e JOIN users u2 ON e.user_id = u2.uid WHERE u2.age > 0)",
        false,
    ),
];
