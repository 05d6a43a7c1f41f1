//! DataFusion set up for a statement, and what a client keeps between statements.
//!
//! - [`statement_context`]: a DataFusion session over one catalog snapshot.
//! - [`session_cache`]: the session statements share until the catalog changes.
//! - [`schema_provider`], [`table_provider`]: the snapshot's tables as DataFusion sees them
//!   (sharded scans and sinks).
//! - [`statement_shape`], [`plan_cache`]: queries that differ only in compared values share
//!   one optimized plan per session.
//! - [`prepared_statements`]: Flight SQL prepared statements, bounded per client.
//! - [`client_sessions`], [`session_settings`]: client sessions and the settings they keep.
//! - [`citus_table_functions`]: Citus's read-only set-returning functions in `FROM`.
//! - [`statement_call`]: who runs a statement text, in which session, with which bounds.
//! - [`sequence_functions`]: `nextval`, `currval`, `setval`, `lastval`, values in blocks.
//! - [`column_defaults`]: `serial` columns and `DEFAULT`s: recorded at `CREATE TABLE`, planned
//!   for the columns a write leaves out; [`column_types`]: `jsonb`, `uuid`, `inet`,
//!   `varchar(n)`, ... declared as text columns that check their values; [`foreign_keys`]:
//!   `REFERENCES`, recorded and reported (not enforced); [`key_constraints`]: `PRIMARY KEY`
//!   and `UNIQUE`, recorded and enforced by the writers; [`check_constraints`]: `CHECK`,
//!   recorded and evaluated on every row written.
//! - [`transaction`], [`transaction_block`]: multi-statement transactions (their snapshot,
//!   uncommitted writes and one commit) and which statements of a text run in one;
//!   [`transaction_branch`]: the catalog branch a transaction's DDL changes.

pub mod check_constraints;
pub mod citus_table_functions;
pub mod client_sessions;
pub mod column_defaults;
pub mod column_types;
pub mod foreign_keys;
pub mod key_constraints;
pub mod plan_cache;
pub mod prepared_statements;
pub mod schema_provider;
pub mod sequence_functions;
pub mod session_cache;
pub mod session_settings;
pub mod statement_call;
pub mod statement_context;
pub mod statement_shape;
pub mod table_provider;
pub mod transaction;
pub mod transaction_block;
pub mod transaction_branch;
