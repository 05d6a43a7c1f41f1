//! Statements, one family per module, and what every statement passes first.
//!
//! - [`expression_depth`]: bounding expression nesting before anything recurses over it;
//!   [`runtime`]: the large-stack runtime statements are parsed and planned on;
//!   [`sql_rewrite`]: PostgreSQL spellings DataFusion does not parse;
//!   [`question_placeholders`]: JDBC's `?` placeholders as `$1`, `$2`, ....
//! - [`ddl`]: `CREATE TABLE`, `DROP`, `TRUNCATE`, `ALTER TABLE` (its column changes that
//!   rewrite the rows in [`column_changes`]); [`sequences`]:
//!   `CREATE SEQUENCE`, `DROP SEQUENCE`; [`indexes`]: `CREATE INDEX` (bloom filters in the
//!   files written), `DROP INDEX`; [`views`]: `CREATE VIEW`, `DROP VIEW`.
//! - [`analyze`]: `ANALYZE`, recomputing the column statistics of committed files.
//! - [`copy`]: `COPY ... FROM/TO`, with [`file_access`] deciding which host paths it may use.
//! - [`bulk_ingest`]: Flight SQL `CommandStatementIngest`.
//! - [`functions`]: the Citus functions (`create_distributed_table`, `citus_add_node`, ...).
//! - [`roles`]: users, roles, `GRANT` and `REVOKE`; [`role_syntax`]: parsing them as
//!   PostgreSQL spells them.
//! - [`table_references`]: a statement's tables must exist (a typed `NotFound`).
//! - [`settings`]: `SET`, `SHOW`, `RESET` of a session's settings (`statement_timeout`, ...).
//! - [`statement_text`]: a text's statements run in order, each bounded, in their session's
//!   settings and transaction.
//!
//! - [`query`]: queries, `INSERT` and `COPY (query) TO`, planned by DataFusion in the shared
//!   session, with the plan cache and router recognition; [`insert_returning`]: `INSERT ...
//!   RETURNING`; [`insert_rewrite`]: an `INSERT` made ready for planning; [`on_conflict`]: `INSERT ... ON CONFLICT DO NOTHING` as an `INSERT` of the
//!   rows without a stored key, `DO UPDATE` as an update joined to the proposed rows first.

pub mod analyze;
pub mod bulk_ingest;
pub mod column_changes;
pub mod copy;
pub mod ddl;
pub mod expression_depth;
pub mod file_access;
pub mod functions;
pub mod indexes;
pub mod insert_returning;
pub mod insert_rewrite;
pub mod on_conflict;
pub mod query;
pub mod question_placeholders;
pub mod role_syntax;
pub mod roles;
pub mod runtime;
pub mod sequences;
pub mod settings;
pub mod sql_rewrite;
pub mod statement_text;
pub mod table_references;
pub mod views;
