//! Writing rows into shards, all-or-nothing.
//!
//! - [`table_writer`]: [`TableWriter`](table_writer::TableWriter) splits rows by shard and
//!   streams them to the placements' workers; [`written_files`]: the files it wrote, which
//!   the statement commits in one catalog transaction (checked by [`unique_keys`]).
//! - [`conform`]: converting incoming batches to a table's schema; [`not_null`]: NOT NULL
//!   checks that name the table and column.
//! - [`placement_follow`]: a write that raced a shard move commits to the shards' new
//!   placements.
//! - [`distribution`]: moving a table's rows into new shards while it is being written to
//!   (`create_distributed_table` on a table with rows).
//! - [`reshard`]: rewriting distributed tables into a new shard count online
//!   (`alter_distributed_table`), or one shard group into three (`isolate_tenant_to_new_shard`).
//! - [`row_changes`]: `UPDATE` and `DELETE`, rewriting the changed files copy-on-write on the
//!   nodes that hold them; [`matched_rows`]: those whose rows are found by a query first
//!   (`UPDATE ... FROM`, `DELETE ... USING`, `RETURNING`, upserts); [`column_rewrite`]: every
//!   file of a table rewritten into new columns (`ALTER TABLE` column changes);
//!   [`dml_parameters`]: the placeholders of `UPDATE` and `DELETE`.

pub mod column_rewrite;
pub mod conform;
pub mod distribution;
pub mod dml_parameters;
pub mod matched_rows;
pub mod not_null;
pub mod placement_follow;
pub mod reshard;
pub mod row_changes;
pub mod table_writer;
pub mod unique_keys;
pub mod written_files;
