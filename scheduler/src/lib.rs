//! The ShardFusion coordinator: the one node applications talk to.
//!
//! Layout:
//! - [`server`]: opening a coordinator on its data directory and serving it on a listener.
//! - [`flight_sql`]: the Flight SQL service (queries, updates, bulk ingest, metadata).
//! - [`coordinator`]: parsing and dispatching statements.
//! - [`ddl`], [`admin`], [`copy`], [`bulk_ingest`]: the statements DataFusion does not run;
//!   [`file_access`]: which host directories server-side `COPY` may use.
//! - [`expression_depth`]: bounding expression depth before planning; [`statement_runtime`]:
//!   the large-stack runtime statements are parsed and planned on.
//! - [`session`], [`schema_provider`], [`table_provider`]: DataFusion set up over one catalog
//!   snapshot.
//! - [`planner`]: the distributed planning passes; [`distributed_exec`]: the node that runs a
//!   fragment on the workers.
//! - [`ingest`], [`conform`]: writing rows into shards, all-or-nothing; [`distribution`]:
//!   moving a table's rows into new shards while it is being written to.
//! - [`cluster`], [`worker_pool`]: shared state and channels to workers.
//! - [`node_membership`]: which hosts become nodes (`citus_add_node`, registration,
//!   `citus_remove_node`), each only after proving it knows the cluster secret.
//! - [`orphan_cleanup`]: deleting garbage and orphaned shard files (`pg_dist_cleanup`,
//!   reconciliation with the workers' disks).
//!
//! The coordinator owns the catalog; workers never see it.

pub mod admin;
pub mod bulk_ingest;
pub mod cluster;
pub mod conform;
pub mod coordinator;
pub mod copy;
pub mod ddl;
pub mod distributed_exec;
pub mod distribution;
pub mod error;
pub mod expression_depth;
pub mod file_access;
pub mod flight_sql;
pub mod ingest;
pub mod node_membership;
pub mod normalized_statement;
pub mod not_null;
pub mod orphan_cleanup;
pub mod planner;
pub mod prepared_statements;
pub mod schema_provider;
pub mod server;
pub mod session;
pub mod sql_rewrite;
pub mod statement_activity;
pub mod statement_runtime;
pub mod statement_stats;
pub mod table_provider;
pub mod worker_pool;

pub use coordinator::{Coordinator, StatementOutput};
pub use error::SchedulerError;
