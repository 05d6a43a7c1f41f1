//! The ShardFusion coordinator: the one node applications talk to.
//!
//! Rooms, from the client inwards:
//! - [`server`]: opening a coordinator on its data directory and serving it on a listener.
//! - [`frontend`]: protocol adapters (Flight SQL) — decode a request, call the coordinator,
//!   encode the answer.
//! - [`auth`]: who a client is (users, passwords, session tokens) and what it may do
//!   (privileges checked on every statement).
//! - [`coordinator`]: the [`Coordinator`], which parses a statement and dispatches it.
//! - [`statements`]: the statements DataFusion does not run by itself (DDL, `COPY`, bulk
//!   ingest, the Citus functions), the bounds every statement passes first, and the runtime
//!   statements run on.
//! - [`session`]: DataFusion set up over one catalog snapshot (schemas, sharded tables) and the
//!   state kept between a client's statements (prepared statements).
//! - [`planner`]: the distributed planning passes; [`exec`]: the operators that run parts of a
//!   plan on the workers.
//! - [`write`]: writing rows into shards, all-or-nothing, and moving a table's rows into new
//!   shards.
//! - [`cluster`]: the live cluster — shared state, channels to the workers, which hosts become
//!   nodes, and garbage and orphan files.
//! - [`limits`]: what a statement may take — a slot among those running, time
//!   (`statement_timeout`), memory — and how it is cancelled.
//! - [`monitoring`]: what the coordinator tells about its statements
//!   (`shardfusion_stat_statements`, `shardfusion_stat_activity`).
//!
//! The coordinator owns the catalog; workers never see it.

pub mod auth;
pub mod cluster;
pub mod coordinator;
pub mod error;
pub mod exec;
pub mod frontend;
pub mod limits;
pub mod monitoring;
pub mod planner;
pub mod server;
pub mod session;
pub mod statements;
pub mod write;

pub use coordinator::{Coordinator, StatementOutput};
pub use error::SchedulerError;
