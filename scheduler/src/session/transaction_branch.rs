//! [`DdlBranch`]: what a transaction's DDL changed, kept private until `COMMIT`.
//!
//! A transaction's first DDL statement (`CREATE TABLE`, `DROP TABLE`, `ALTER TABLE`, `CREATE
//! SEQUENCE`, `create_distributed_table`, ...) branches the catalog
//! ([`shardfusion_catalog::CatalogBranch`]); that and every later DDL statement of the
//! transaction run against the branch ([`ddl_catalog`]), and its statements read it. Files a
//! DDL statement writes (the rows `create_distributed_table` moves into shards) are kept here,
//! owed a deletion until `COMMIT` brings the branch in; files a DDL statement takes out (a
//! dropped table's) are not deleted before then either ([`retire_unless_branched`]): the
//! commit finds them as the rows the branch deleted.

use std::sync::Arc;

use shardfusion_catalog::{BranchCheckpoint, Catalog, CatalogBranch, CatalogSnapshot, FileMeta};
use shardfusion_common::ids::GroupId;

use crate::cluster::shared_state::Cluster;
use crate::error::Result;
use crate::session::transaction;
use crate::write::table_writer::WrittenFiles;

/// A transaction's catalog branch and the files its DDL wrote.
pub struct DdlBranch {
    pub branch: CatalogBranch,
    /// Files DDL statements wrote into the branch's tables, owed a deletion until `COMMIT`.
    pub written: Vec<WrittenFiles>,
}

/// How far a transaction's DDL had gone at a savepoint.
pub enum BranchMark {
    /// No DDL yet: rolling back to it drops the branch.
    Unbranched,
    At {
        checkpoint: BranchCheckpoint,
        written: usize,
    },
}

impl DdlBranch {
    pub fn new(cluster: &Cluster) -> Result<Self> {
        Ok(Self {
            branch: cluster.catalog.branch()?,
            written: Vec::new(),
        })
    }

    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.branch.snapshot()
    }

    /// Where the branch is now, for a savepoint.
    pub fn mark(&self) -> Result<BranchMark> {
        Ok(BranchMark::At {
            checkpoint: self.branch.checkpoint()?,
            written: self.written.len(),
        })
    }

    /// Back to `checkpoint`; the files written since are dropped (deleted).
    pub fn restore(&mut self, checkpoint: &BranchCheckpoint, written: usize) -> Result<()> {
        self.branch.restore(checkpoint)?;
        self.written.truncate(written);
        Ok(())
    }

    /// After the branch was committed (`garbage`: the files the commit took out, retired by
    /// the caller): files the catalog lists are its own now, and files in `garbage` (a later
    /// statement of the transaction rewrote them) are retired; only the others (written and
    /// then dropped again within the branch, never committed) are deleted here.
    pub fn committed(self, now: &CatalogSnapshot, garbage: &[(GroupId, FileMeta)]) {
        let mut accounted: std::collections::HashSet<&str> = (now.tables.values())
            .flat_map(|t| t.shards.iter())
            .flat_map(|s| s.placements.iter())
            .flat_map(|p| p.files.iter().map(|f| f.path.as_str()))
            .collect();
        accounted.extend(garbage.iter().map(|(_, f)| f.path.as_str()));
        for mut written in self.written {
            (written.files).retain(|(_, _, f)| !accounted.contains(f.path.as_str()));
            // Dropping it deletes what is left.
            drop(written);
        }
    }
}

/// The catalog a DDL statement changes: its transaction's branch (begun by the first DDL
/// statement of the transaction), or the catalog itself outside a transaction.
pub fn ddl_catalog(cluster: &Arc<Cluster>) -> Result<Arc<Catalog>> {
    match transaction::current() {
        Some(transaction) => transaction.ddl_catalog(),
        None => Ok(Arc::clone(&cluster.catalog)),
    }
}

/// Whether the running statement's DDL goes to a transaction's branch.
pub fn in_branch() -> bool {
    transaction::current().is_some_and(|t| t.is_branched())
}

/// Retires files a DDL statement took out, unless they were taken out of a transaction's
/// branch: those stay until the branch commits (and are found there).
pub fn retire_unless_branched(cluster: &Arc<Cluster>, files: Vec<(GroupId, FileMeta)>) {
    if !in_branch() {
        cluster.retire_files(files);
    }
}

/// Keeps `written` (files a DDL statement wrote into the branch) for the transaction's
/// `COMMIT`, or commits it if the statement runs on its own.
pub fn keep_written(written: WrittenFiles) {
    match transaction::current().filter(|t| t.is_branched()) {
        Some(transaction) => transaction.keep_written(written),
        None => written.committed(),
    }
}
