//! [`CatalogBranch`]: a transaction's private copy of the catalog, which its DDL changes, and
//! the one commit that brings those changes into the catalog.
//!
//! DDL inside `BEGIN ... COMMIT` must stay invisible to other sessions and vanish on
//! `ROLLBACK`, yet the catalog's writers are short SQLite transactions that other sessions
//! need all the time, so a transaction cannot keep a write transaction open across its
//! statements. Instead, its first DDL statement copies the catalog into memory twice (one
//! connection: `main`, the working copy, and `base`, the copy as taken). Every catalog
//! change of the transaction's DDL runs against the working copy through the same
//! [`Catalog`] methods as outside a transaction.
//!
//! At `COMMIT`, [`Catalog::commit_branch`] compares the working copy with `base`, row by row
//! and by primary key, and applies the difference to the catalog in one SQLite transaction,
//! together with the transaction's file changes:
//! - a row the transaction inserted must not exist yet;
//! - a row it updated or deleted must still be what `base` had;
//! - a row it deleted must have no dependent rows left (another session's commit into a
//!   table this transaction drops would otherwise vanish with it);
//!
//! otherwise another session changed the same metadata meanwhile (concurrent DDL, a shard
//! move, a commit into a dropped table), and the commit is refused with
//! [`CatalogError::BranchConflict`] (40001). Counters that hand out ids are rows too, so two
//! transactions that both create tables conflict on them, as concurrent DDL does.
//!
//! New ids (tables, shards, placements, colocation groups) are taken from the catalog
//! directly, for good, as PostgreSQL's sequences are: a rolled-back transaction leaves a gap,
//! and transactions creating tables at the same time do not collide.
//!
//! `pg_dist_cleanup` is not copied over: the files whose rows the difference deletes are
//! recorded there at commit (owed deletions), and returned as garbage.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, params_from_iter};
use shardfusion_common::ids::GroupId;

use crate::cleanup::{CleanupPolicy, record_in};
use crate::error::CatalogError;
use crate::file_changes::{FileChange, swap_files_in};
use crate::model::{CatalogSnapshot, FileMeta};
use crate::store::Catalog;

type Result<T> = std::result::Result<T, CatalogError>;

/// Catalog tables whose rows a branch never brings over: the owed deletions (recorded at
/// commit instead) and the id counters (a branch takes its ids from the catalog directly).
const NOT_BRANCHED: &[&str] = &["pg_dist_cleanup", "sequences"];

/// A transaction's working copy of the catalog (see the module docs).
pub struct CatalogBranch {
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for CatalogBranch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogBranch")
            .field("version", &self.catalog.snapshot().version)
            .finish()
    }
}

/// The working copy's state at a savepoint.
pub struct BranchCheckpoint(Vec<u8>);

impl std::fmt::Debug for BranchCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BranchCheckpoint({} bytes)", self.0.len())
    }
}

impl CatalogBranch {
    /// The working copy, to run DDL against as against the catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The working copy's current state.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.catalog.snapshot()
    }

    /// The working copy as it is now, to go back to with [`Self::restore`].
    pub fn checkpoint(&self) -> Result<BranchCheckpoint> {
        let mut conn = self.catalog.conn.lock();
        Ok(BranchCheckpoint(image(&mut conn, "main")?))
    }

    /// Puts the working copy back as it was at `checkpoint` (`ROLLBACK TO SAVEPOINT`).
    pub fn restore(&self, checkpoint: &BranchCheckpoint) -> Result<()> {
        self.catalog.reload_with(|conn| {
            load_image(conn, "main", &checkpoint.0)?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            Ok(())
        })
    }
}

impl Catalog {
    /// A private working copy of the catalog as it is now (see the module docs).
    pub fn branch(&self) -> Result<CatalogBranch> {
        let (bytes, version) = {
            let mut conn = self.conn.lock();
            let version = self.snapshot().version;
            (image(&mut conn, "main")?, version)
        };
        let mut conn = Connection::open_in_memory()?;
        load_image(&mut conn, "main", &bytes)?;
        conn.execute("ATTACH DATABASE ':memory:' AS base", [])?;
        load_image(&mut conn, "base", &bytes)?;
        let mut catalog = Catalog::init_at(conn, version)?;
        catalog.id_source = Some(Arc::clone(&self.conn));
        Ok(CatalogBranch {
            catalog: Arc::new(catalog),
        })
    }

    /// Brings `branch`'s changes into the catalog and applies `changes` (the transaction's
    /// file changes, checked as [`Catalog::commit_file_changes`] checks them), all in one
    /// SQLite transaction. Returns the files taken out, now garbage.
    pub fn commit_branch(
        &self,
        branch: &CatalogBranch,
        changes: &[FileChange],
    ) -> Result<Vec<(GroupId, FileMeta)>> {
        let (diff, reshaped) = {
            let conn = branch.catalog.conn.lock();
            let diff = Diff::of(&conn)?;
            let reshaped = diff.reshaped_files(&conn)?;
            (diff, reshaped)
        };
        self.write(|tx| {
            // A table whose columns the branch changed had its files rewritten into them (or
            // has none): a file another session committed to it since would keep the old ones.
            for (table_id, files) in &reshaped {
                for path in table_files(tx, "main", *table_id)? {
                    if !files.contains(&path) {
                        return Err(CatalogError::Conflict {
                            table: format!("table {table_id}"),
                            change: crate::error::ConcurrentChange::ColumnsChanged,
                        });
                    }
                }
            }
            let mut old = diff.apply(tx)?;
            record_in(tx, &old, CleanupPolicy::DeferredOnSuccess)?;
            for change in changes {
                old.extend(swap_files_in(tx, &self.fences, change)?);
            }
            Ok(old)
        })
    }
}

/// The database `name` of `conn` as bytes.
fn image(conn: &mut Connection, name: &str) -> Result<Vec<u8>> {
    let data = conn.serialize(name)?;
    let mut bytes = data.to_vec();
    // Bytes 18 and 19 say "WAL" for a catalog file; a copy in memory keeps a rollback journal.
    if bytes.len() > 19 {
        bytes[18] = 1;
        bytes[19] = 1;
    }
    Ok(bytes)
}

/// Replaces database `name` of `conn` with `bytes` (writable: a write transaction locks every
/// attached database).
fn load_image(conn: &mut Connection, name: &str, bytes: &[u8]) -> Result<()> {
    conn.deserialize_read_exact(name, bytes, bytes.len(), false)?;
    Ok(())
}

/// One catalog table's columns and primary key.
struct TableShape {
    name: String,
    columns: Vec<String>,
    /// Positions of the primary key's columns in `columns`.
    key: Vec<usize>,
    /// Tables with a foreign key to this one: (table, its columns, this table's columns).
    dependents: Vec<(String, Vec<String>, Vec<String>)>,
}

/// One foreign key as SQLite lists it: the parent table, the referencing columns, and the
/// parent's columns (none: its primary key).
type ForeignKey = (String, Vec<String>, Vec<Option<String>>);

/// The rows a branch inserted, updated and deleted, per table, parents before children.
struct Diff {
    tables: Vec<(TableShape, TableRows)>,
}

#[derive(Default)]
struct TableRows {
    /// Rows the branch added (no row with their key in `base`).
    inserted: Vec<Vec<Value>>,
    /// (base row, branch row) of rows whose key both have.
    updated: Vec<(Vec<Value>, Vec<Value>)>,
    /// Base rows the branch removed.
    deleted: Vec<Vec<Value>>,
}

/// The paths of the files of table `table_id` in database `db` (`main`, `base`) of `conn`.
fn table_files(conn: &Connection, db: &str, table_id: i64) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT f.path FROM {db}.shard_files f JOIN {db}.placements p USING (placementid) \
         JOIN {db}.shards s USING (shardid) WHERE s.table_id = ?1"
    );
    let paths = conn
        .prepare(&sql)?
        .query_map(rusqlite::params![table_id], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    Ok(paths)
}

impl Diff {
    /// The tables whose columns the branch changed, each with the files `base` lists for it.
    fn reshaped_files(
        &self,
        conn: &Connection,
    ) -> Result<Vec<(i64, std::collections::BTreeSet<String>)>> {
        let mut reshaped = Vec::new();
        for (shape, rows) in &self.tables {
            if shape.name != "tables" {
                continue;
            }
            let column = |name: &str| shape.columns.iter().position(|c| c == name);
            let (Some(id), Some(schema)) = (column("table_id"), column("schema")) else {
                continue;
            };
            for (before, after) in &rows.updated {
                if before[schema] != after[schema]
                    && let Value::Integer(table_id) = before[id]
                {
                    let files = table_files(conn, "base", table_id)?.into_iter().collect();
                    reshaped.push((table_id, files));
                }
            }
        }
        Ok(reshaped)
    }

    /// Compares `main` (the working copy) with `base` on `conn`.
    fn of(conn: &Connection) -> Result<Self> {
        let shapes = table_shapes(conn)?;
        let mut tables = Vec::with_capacity(shapes.len());
        for shape in shapes {
            let rows = table_rows(conn, &shape)?;
            tables.push((shape, rows));
        }
        Ok(Self { tables })
    }

    /// Applies the difference inside `tx`, checking every row it touches; returns the files
    /// whose rows it deleted.
    fn apply(&self, tx: &Transaction<'_>) -> Result<Vec<(GroupId, FileMeta)>> {
        // Deletes first (a table dropped and created again under its name, in one
        // transaction), with references checked at commit rather than row by row.
        tx.pragma_update(None, "defer_foreign_keys", "ON")?;
        let garbage = self.apply_deletes(tx)?;
        for (shape, rows) in &self.tables {
            for row in &rows.inserted {
                if current_row(tx, shape, row)?.is_some() {
                    return Err(conflict(shape, row, "was created by another session"));
                }
                let columns = shape.columns.join(", ");
                let marks = vec!["?"; shape.columns.len()].join(", ");
                let sql = format!("INSERT INTO {} ({columns}) VALUES ({marks})", shape.name);
                tx.execute(&sql, params_from_iter(row.iter()))
                    .map_err(|e| constraint_conflict(shape, row, e))?;
            }
        }
        for (shape, rows) in &self.tables {
            for (before, after) in &rows.updated {
                expect_unchanged(tx, shape, before)?;
                let sets: Vec<String> = (shape.columns.iter().enumerate())
                    .map(|(i, c)| format!("{c} = ?{}", i + 1))
                    .collect();
                let sql = format!(
                    "UPDATE {} SET {} WHERE {}",
                    shape.name,
                    sets.join(", "),
                    key_predicate(shape, shape.columns.len())
                );
                let values = after.iter().chain(shape.key.iter().map(|&k| &after[k]));
                tx.execute(&sql, params_from_iter(values))
                    .map_err(|e| constraint_conflict(shape, after, e))?;
            }
        }
        Ok(garbage)
    }

    /// The deletes, children first; returns the files whose rows they deleted.
    fn apply_deletes(&self, tx: &Transaction<'_>) -> Result<Vec<(GroupId, FileMeta)>> {
        let mut garbage = Vec::new();
        for (shape, rows) in self.tables.iter().rev() {
            for row in &rows.deleted {
                expect_unchanged(tx, shape, row)?;
                // Its own dependents went first; any left are another session's.
                expect_no_dependents(tx, shape, row)?;
                if shape.name == "shard_files" {
                    garbage.push(deleted_file(tx, shape, row)?);
                }
                let sql = format!(
                    "DELETE FROM {} WHERE {}",
                    shape.name,
                    key_predicate(shape, 0)
                );
                tx.execute(&sql, params_from_iter(shape.key.iter().map(|&k| &row[k])))?;
            }
        }
        Ok(garbage)
    }
}

/// Every branched table of `conn`'s `main`, parents before the tables referencing them.
fn table_shapes(conn: &Connection) -> Result<Vec<TableShape>> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| !NOT_BRANCHED.contains(&n.as_str()))
        .collect();
    let mut shapes = BTreeMap::new();
    // (child, parent) pairs for ordering.
    let mut edges = Vec::new();
    for name in &names {
        let mut columns = Vec::new();
        let mut key = Vec::new();
        let mut info = conn.prepare(&format!("PRAGMA main.table_info({name})"))?;
        let mut rows = info.query([])?;
        while let Some(row) = rows.next()? {
            let column: String = row.get(1)?;
            let pk: i64 = row.get(5)?;
            if pk > 0 {
                key.push((pk, columns.len()));
            }
            columns.push(column);
        }
        key.sort();
        if key.is_empty() {
            return Err(CatalogError::Corrupt {
                table: name.clone(),
                reason: "a catalog table without a primary key cannot be branched".into(),
            });
        }
        shapes.insert(
            name.clone(),
            TableShape {
                name: name.clone(),
                columns,
                key: key.into_iter().map(|(_, i)| i).collect(),
                dependents: Vec::new(),
            },
        );
    }
    for name in &names {
        let mut list = conn.prepare(&format!("PRAGMA main.foreign_key_list({name})"))?;
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        let mut rows = list.query([])?;
        while let Some(row) = rows.next()? {
            let entry = by_id
                .entry(row.get(0)?)
                .or_insert_with(|| (String::new(), Vec::new(), Vec::new()));
            entry.0 = row.get(2)?;
            entry.1.push(row.get(3)?);
            entry.2.push(row.get(4)?);
        }
        for (parent, from, to) in by_id.into_values() {
            let Some(parent_shape) = shapes.get_mut(&parent) else {
                continue;
            };
            let to: Vec<String> = match to.iter().all(Option::is_some) {
                true => to.into_iter().flatten().collect(),
                false => (parent_shape.key.iter())
                    .map(|&k| parent_shape.columns[k].clone())
                    .collect(),
            };
            parent_shape.dependents.push((name.clone(), from, to));
            if parent != *name {
                edges.push((name.clone(), parent));
            }
        }
    }
    // Parents first: repeatedly take a table none of whose parents are left.
    let mut left: Vec<String> = names;
    let mut ordered = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let next = left
            .iter()
            .position(|t| !edges.iter().any(|(c, p)| c == t && left.contains(p)))
            .unwrap_or(0);
        let name = left.remove(next);
        ordered.push(shapes.remove(&name).expect("shape of every name"));
    }
    Ok(ordered)
}

/// The rows of `shape` that differ between `main` and `base`.
fn table_rows(conn: &Connection, shape: &TableShape) -> Result<TableRows> {
    let columns = shape.columns.join(", ");
    let keys: Vec<&str> = shape
        .key
        .iter()
        .map(|&k| shape.columns[k].as_str())
        .collect();
    let keys = keys.join(", ");
    let name = &shape.name;
    let read = |sql: &str| -> Result<Vec<Vec<Value>>> {
        let mut statement = conn.prepare(sql)?;
        let width = statement.column_count();
        let rows = statement.query_map([], |r| {
            (0..width)
                .map(|i| r.get::<_, Value>(i))
                .collect::<std::result::Result<Vec<_>, _>>()
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    };
    let changed = read(&format!(
        "SELECT {columns} FROM main.{name} EXCEPT SELECT {columns} FROM base.{name}"
    ))?;
    let gone = read(&format!(
        "SELECT {columns} FROM base.{name} WHERE ({keys}) IN \
         (SELECT {keys} FROM base.{name} EXCEPT SELECT {keys} FROM main.{name})"
    ))?;
    let mut base_rows = conn.prepare(&format!(
        "SELECT {columns} FROM base.{name} WHERE {}",
        key_predicate(shape, 0)
    ))?;
    let mut rows = TableRows {
        deleted: gone,
        ..TableRows::default()
    };
    for row in changed {
        let key = shape.key.iter().map(|&k| &row[k]);
        let before = base_rows
            .query_map(params_from_iter(key), |r| {
                (0..shape.columns.len())
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })?
            .next()
            .transpose()?;
        match before {
            Some(before) => rows.updated.push((before, row)),
            None => rows.inserted.push(row),
        }
    }
    Ok(rows)
}

/// `k1 = ?n AND k2 = ?n+1 ...` over `shape`'s key, numbered after `offset` parameters.
fn key_predicate(shape: &TableShape, offset: usize) -> String {
    let parts: Vec<String> = (shape.key.iter().enumerate())
        .map(|(i, &k)| format!("{} = ?{}", shape.columns[k], offset + i + 1))
        .collect();
    parts.join(" AND ")
}

/// The catalog's row with `row`'s key, if any.
fn current_row(
    tx: &Transaction<'_>,
    shape: &TableShape,
    row: &[Value],
) -> Result<Option<Vec<Value>>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        shape.columns.join(", "),
        shape.name,
        key_predicate(shape, 0)
    );
    let mut statement = tx.prepare(&sql)?;
    let found = statement
        .query_map(params_from_iter(shape.key.iter().map(|&k| &row[k])), |r| {
            (0..shape.columns.len())
                .map(|i| r.get::<_, Value>(i))
                .collect::<std::result::Result<Vec<_>, _>>()
        })?
        .next()
        .transpose()?;
    Ok(found)
}

/// Refuses the commit unless the catalog still has `before` as the branch found it.
fn expect_unchanged(tx: &Transaction<'_>, shape: &TableShape, before: &[Value]) -> Result<()> {
    match current_row(tx, shape, before)? {
        Some(now) if now == before => Ok(()),
        Some(_) => Err(conflict(shape, before, "was changed by another session")),
        None => Err(conflict(shape, before, "was removed by another session")),
    }
}

/// Refuses the commit if rows still depend on the deleted `row` (rows another session added,
/// which a cascade would silently take with it).
fn expect_no_dependents(tx: &Transaction<'_>, shape: &TableShape, row: &[Value]) -> Result<()> {
    for (child, from, to) in &shape.dependents {
        let values: Vec<&Value> = to
            .iter()
            .filter_map(|c| shape.columns.iter().position(|x| x == c))
            .map(|i| &row[i])
            .collect();
        let predicate: Vec<String> = (from.iter().enumerate())
            .map(|(i, c)| format!("{c} = ?{}", i + 1))
            .collect();
        let sql = format!(
            "SELECT count(*) FROM {child} WHERE {}",
            predicate.join(" AND ")
        );
        let count: i64 = tx.query_row(&sql, params_from_iter(values), |r| r.get(0))?;
        if count > 0 {
            return Err(conflict(
                shape,
                row,
                &format!("gained rows in {child} from another session"),
            ));
        }
    }
    Ok(())
}

/// The node group and file of a deleted `shard_files` row (read before it is deleted).
fn deleted_file(
    tx: &Transaction<'_>,
    shape: &TableShape,
    row: &[Value],
) -> Result<(GroupId, FileMeta)> {
    let column = |name: &str| {
        let i = shape.columns.iter().position(|c| c == name);
        i.map(|i| &row[i])
    };
    let (Some(Value::Integer(placement)), Some(Value::Text(path))) =
        (column("placementid"), column("path"))
    else {
        return Err(CatalogError::Corrupt {
            table: "shard_files".into(),
            reason: "a row without placement or path".into(),
        });
    };
    let as_u64 = |v: Option<&Value>| match v {
        Some(Value::Integer(n)) => *n as u64,
        _ => 0,
    };
    let group: i32 = tx.query_row(
        "SELECT groupid FROM placements WHERE placementid = ?1",
        [placement],
        |r| r.get(0),
    )?;
    Ok((
        GroupId(group),
        FileMeta {
            path: path.clone(),
            row_count: as_u64(column("row_count")),
            byte_size: as_u64(column("byte_size")),
            stats: None,
        },
    ))
}

/// A row the branch changed as another session changed it too.
fn conflict(shape: &TableShape, row: &[Value], what: &str) -> CatalogError {
    let key: Vec<String> = shape.key.iter().map(|&k| show(&row[k])).collect();
    CatalogError::BranchConflict {
        what: format!("{} row ({}) {what}", shape.name, key.join(", ")),
    }
}

/// A constraint of the catalog refused a row (another session took a name the branch uses).
fn constraint_conflict(shape: &TableShape, row: &[Value], error: rusqlite::Error) -> CatalogError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => conflict(
            shape,
            row,
            &format!("conflicts with another session's change: {error}"),
        ),
        _ => error.into(),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("{} bytes", b.len()),
    }
}

/// Names of the tables a branch's difference would touch (for tests and messages).
#[cfg(test)]
fn touched(conn: &Connection) -> Result<std::collections::HashSet<String>> {
    let diff = Diff::of(conn)?;
    Ok(diff
        .tables
        .into_iter()
        .filter(|(_, r)| !(r.inserted.is_empty() && r.updated.is_empty() && r.deleted.is_empty()))
        .map(|(s, _)| s.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{add_file, distributed, id_schema};

    #[test]
    fn a_branch_commits_its_ddl_or_nothing_and_conflicts_with_concurrent_ddl() {
        let catalog = distributed(&["kept"]).expect("catalog call");
        add_file(&catalog, "kept", 0, "k0").expect("catalog call");
        let branch = catalog.branch().expect("catalog call");
        branch
            .catalog()
            .create_table("made", &id_schema())
            .expect("catalog call");
        branch
            .catalog()
            .drop_table("kept", false)
            .expect("catalog call");
        // Invisible until committed.
        assert!(catalog.snapshot().table("made").is_none());
        assert!(branch.snapshot().table("kept").is_none());
        let touched = touched(&branch.catalog().conn.lock()).expect("catalog call");
        assert!(touched.contains("tables"), "{touched:?}");
        assert!(!touched.contains("pg_dist_cleanup"), "{touched:?}");
        let garbage = catalog.commit_branch(&branch, &[]).expect("catalog call");
        let after = catalog.snapshot();
        assert!(after.table("made").is_some());
        assert!(after.table("kept").is_none());
        let paths: Vec<_> = garbage.iter().map(|(_, f)| f.path.as_str()).collect();
        assert_eq!(paths, ["k0"]);

        // Two branches creating tables at once both commit (their ids come from the
        // catalog); two creating the same name: the second to commit conflicts.
        let first = catalog.branch().expect("catalog call");
        let second = catalog.branch().expect("catalog call");
        first
            .catalog()
            .create_table("a", &id_schema())
            .expect("catalog call");
        second
            .catalog()
            .create_table("b", &id_schema())
            .expect("catalog call");
        second
            .catalog()
            .create_table("a", &id_schema())
            .expect("catalog call");
        catalog
            .create_table("c", &id_schema())
            .expect("catalog call");
        catalog.commit_branch(&first, &[]).expect("catalog call");
        let refused = catalog.commit_branch(&second, &[]).expect_err("a conflict");
        assert!(
            matches!(refused, CatalogError::BranchConflict { .. }),
            "{refused}"
        );
        assert!(catalog.snapshot().table("b").is_none());
        let third = catalog.branch().expect("catalog call");
        third
            .catalog()
            .create_table("b", &id_schema())
            .expect("catalog call");
        catalog
            .create_table("d", &id_schema())
            .expect("catalog call");
        catalog.commit_branch(&third, &[]).expect("catalog call");
        let ids: std::collections::BTreeSet<_> = (catalog.snapshot().tables.values())
            .map(|t| t.table_id)
            .collect();
        assert_eq!(ids.len(), catalog.snapshot().tables.len());
    }

    #[test]
    fn rows_committed_into_a_table_the_branch_drops_refuse_its_commit() {
        let catalog = distributed(&["t"]).expect("catalog call");
        add_file(&catalog, "t", 0, "old").expect("catalog call");
        let branch = catalog.branch().expect("catalog call");
        branch
            .catalog()
            .drop_table("t", false)
            .expect("catalog call");
        add_file(&catalog, "t", 1, "new").expect("catalog call");
        let refused = catalog.commit_branch(&branch, &[]).expect_err("a conflict");
        assert!(
            matches!(refused, CatalogError::BranchConflict { .. }),
            "{refused}"
        );
        let t = catalog.table("t").expect("catalog call");
        let files: usize = t.shards.iter().map(|s| s.placements[0].files.len()).sum();
        assert_eq!(files, 2);
    }

    #[test]
    fn a_checkpoint_restores_the_working_copy() {
        let catalog = distributed(&[]).expect("catalog call");
        let branch = catalog.branch().expect("catalog call");
        let before = branch.checkpoint().expect("catalog call");
        branch
            .catalog()
            .create_table("t", &id_schema())
            .expect("catalog call");
        assert!(branch.snapshot().table("t").is_some());
        branch.restore(&before).expect("catalog call");
        assert!(branch.snapshot().table("t").is_none());
        branch
            .catalog()
            .create_table("u", &id_schema())
            .expect("catalog call");
        catalog.commit_branch(&branch, &[]).expect("catalog call");
        assert!(catalog.snapshot().table("u").is_some());
        assert!(catalog.snapshot().table("t").is_none());
    }
}
