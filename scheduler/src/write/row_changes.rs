//! `UPDATE t SET c = e, ... [WHERE p]` and `DELETE FROM t [WHERE p]` on distributed, reference
//! and local tables, copy-on-write.
//!
//! 1. The filter prunes the shards as a query's would: `WHERE tenant = 5` on the
//!    distribution column touches one shard group, anything else every shard.
//! 2. Every file of every placement of those shards is rewritten where it lies, all of them at
//!    once (up to [`PARALLEL_REWRITES`]): the coordinator sends the node a plan that reads the
//!    file and outputs each row as the statement leaves it, plus whether it changed it
//!    ([`shardfusion_executor::file_rewrite`]); the node writes the new file itself. No row
//!    passes through the coordinator. A file in which no row changed is left as it is.
//! 3. One catalog transaction swaps every changed file for its new version
//!    ([`Cluster::replace_files`]), so readers see the table before or after the statement,
//!    never between. If another statement replaced or removed one of those files first (a
//!    concurrent `UPDATE`, `DELETE`, `TRUNCATE`, compaction or move), the statement fails
//!    with the retryable serialization failure (40001) and changes nothing; rows inserted
//!    meanwhile are new files, which it neither reads nor replaces.
//!
//! The old files are deleted once no statement that started before the swap still reads them.
//! As in Citus, the distribution column cannot be updated. The filter and the new values are
//! expressions over the table's own row: `UPDATE ... FROM`, `DELETE ... USING`, subqueries,
//! `RETURNING` and parameters are not supported yet.

use std::sync::Arc;

use arrow_flight::Action;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::{Column, DFSchema};
use datafusion::execution::{SessionState, TaskContext};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, cast, col, lit, when};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Delete, Expr as SqlExpr, FromTable, Ident, TableFactor, TableWithJoins,
    Update, UpdateTableFromKind,
};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use shardfusion_catalog::{CatalogSnapshot, FileChange, FileMeta, TableKind, TableMeta};
use shardfusion_common::codec::encode_plan;
use shardfusion_common::ids::{GroupId, PlacementId, ShardId};
use shardfusion_common::shard_scan::{FileRef, ShardFiles, ShardScanExec};
use shardfusion_common::status::with_sqlstate;
use shardfusion_common::storage::shard_file_path;
use shardfusion_common::wire::{
    ACTION_REWRITE_SHARD_FILE, CHANGED_COLUMN, RewriteShardFileRequest, RewriteShardFileResponse,
    WrittenFile,
};
use tonic::Status;

use crate::auth::principal::Access;
use crate::cluster::shared_state::Cluster;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::limits::statement_control::StatementControl;
use crate::session::column_defaults;
use crate::session::sequence_functions;
use crate::session::statement_context::session_for;
use crate::session::table_provider::ShardedTableProvider;
use crate::session::transaction::statement_snapshot;
use crate::statements::ddl::table_name;
use crate::statements::insert_returning::Returning;
use crate::write::matched_rows::{self, MatchedChange, SecondMatch};
use crate::write::table_writer::{WrittenFiles, file_meta};
use crate::write::unique_keys;
use shardfusion_catalog::roles::TablePrivilege;

/// Files rewritten at once, across all nodes.
pub const PARALLEL_REWRITES: usize = 16;

/// What the statement does to the rows its filter selects.
enum Change<E> {
    /// New values: (column index, expression).
    Set(Vec<(usize, E)>),
    Delete,
}

/// `UPDATE`; its result is the number of rows updated.
pub async fn update(
    coordinator: &Coordinator,
    access: &Access<'_>,
    control: &StatementControl,
    params: &[ScalarValue],
    update: &Update,
) -> Result<StatementOutput> {
    if update.output.is_some() {
        return Err(SchedulerError::unsupported("UPDATE ... OUTPUT"));
    }
    if update.or.is_some() || !update.order_by.is_empty() || update.limit.is_some() {
        return Err(SchedulerError::unsupported(
            "UPDATE OR ..., ORDER BY or LIMIT in UPDATE",
        ));
    }
    let (name, alias) = target(&update.table)?;
    access.require_table(&name, TablePrivilege::Update)?;
    if update.selection.is_some() {
        access.require_table(&name, TablePrivilege::Select)?;
    }
    let snapshot = statement_snapshot(coordinator.cluster())?;
    let table = existing(&snapshot, &name)?;
    let set = assignments(&table, &update.assignments)?;
    let from = match &update.from {
        Some(UpdateTableFromKind::AfterSet(from) | UpdateTableFromKind::BeforeSet(from)) => {
            from.iter().map(ToString::to_string).collect()
        }
        None => Vec::new(),
    };
    // New rows the table's checks must see are computed on the coordinator.
    if !from.is_empty() || update.returning.is_some() || !table.checks.is_empty() {
        let qualifier = alias.unwrap_or_else(|| table.name.clone());
        let change = MatchedChange {
            returning: returning_of(&table, &qualifier, &update.returning),
            qualifier,
            table,
            from,
            selection: update.selection.as_ref().map(ToString::to_string),
            set: (set.into_iter())
                .map(|(i, value)| (i, value.to_string()))
                .collect(),
            delete: false,
            second_match: SecondMatch::TakeOne,
            params: params.to_vec(),
        };
        return matched_rows::run(coordinator, access, control, change).await;
    }
    let changed = change_rows(
        coordinator,
        snapshot,
        &table,
        alias,
        update.selection.as_ref(),
        Change::Set(set),
        params,
    )
    .await?;
    Ok(StatementOutput::count(changed))
}

/// `DELETE`; its result is the number of rows deleted.
pub async fn delete(
    coordinator: &Coordinator,
    access: &Access<'_>,
    control: &StatementControl,
    params: &[ScalarValue],
    delete: &Delete,
) -> Result<StatementOutput> {
    if !delete.tables.is_empty() {
        return Err(SchedulerError::unsupported(
            "DELETE t1, t2 FROM ...; write DELETE FROM t USING other WHERE ...",
        ));
    }
    if delete.output.is_some() {
        return Err(SchedulerError::unsupported("DELETE ... OUTPUT"));
    }
    if !delete.order_by.is_empty() || delete.limit.is_some() {
        return Err(SchedulerError::unsupported("ORDER BY or LIMIT in DELETE"));
    }
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
    let [from] = from.as_slice() else {
        return Err(SchedulerError::unsupported("DELETE from several tables"));
    };
    let (name, alias) = target(from)?;
    access.require_table(&name, TablePrivilege::Delete)?;
    if delete.selection.is_some() {
        access.require_table(&name, TablePrivilege::Select)?;
    }
    let snapshot = statement_snapshot(coordinator.cluster())?;
    let table = existing(&snapshot, &name)?;
    let using: Vec<String> = (delete.using.iter().flatten())
        .map(ToString::to_string)
        .collect();
    if !using.is_empty() || delete.returning.is_some() {
        let qualifier = alias.unwrap_or_else(|| table.name.clone());
        let change = MatchedChange {
            returning: returning_of(&table, &qualifier, &delete.returning),
            qualifier,
            table,
            from: using,
            selection: delete.selection.as_ref().map(ToString::to_string),
            set: Vec::new(),
            delete: true,
            second_match: SecondMatch::TakeOne,
            params: params.to_vec(),
        };
        return matched_rows::run(coordinator, access, control, change).await;
    }
    let changed = change_rows(
        coordinator,
        snapshot,
        &table,
        alias,
        delete.selection.as_ref(),
        Change::Delete,
        params,
    )
    .await?;
    Ok(StatementOutput::count(changed))
}

/// The columns `SET` assigns (index in `table`) and their values (`DEFAULT` replaced by the
/// column's default), as PostgreSQL checks them: each column of the table at most once, and,
/// as in Citus, never the distribution column.
pub(crate) fn assignments(
    table: &TableMeta,
    assignments: &[datafusion::sql::sqlparser::ast::Assignment],
) -> Result<Vec<(usize, SqlExpr)>> {
    let name = &table.name;
    let mut set: Vec<(usize, SqlExpr)> = Vec::with_capacity(assignments.len());
    for assignment in assignments {
        let AssignmentTarget::ColumnName(column) = &assignment.target else {
            return Err(SchedulerError::unsupported("SET (a, b) = (...)"));
        };
        let column = (column.0.last())
            .and_then(|part| part.as_ident())
            .map(normalized)
            .unwrap_or_default();
        let (index, _) = table.schema.column_with_name(&column).ok_or_else(|| {
            SchedulerError::invalid(format!(
                "column \"{column}\" of relation \"{name}\" does not exist"
            ))
        })?;
        if matches!(&table.kind, TableKind::Distributed { column: d, .. } if *d == column) {
            // feature_not_supported, as Citus reports it.
            return Err(SchedulerError::BadValue(with_sqlstate(
                Status::invalid_argument(format!(
                    "modifying the partition value of rows is not allowed: \"{column}\" is the \
                     distribution column of {name}"
                )),
                "0A000",
            )));
        }
        if set.iter().any(|(i, _)| *i == index) {
            return Err(SchedulerError::invalid(format!(
                "multiple assignments to same column \"{column}\""
            )));
        }
        let value = if column_defaults::is_default_keyword(&assignment.value) {
            column_defaults::default_of(table, &column)?
        } else {
            assignment.value.clone()
        };
        set.push((index, value));
    }
    Ok(set)
}

/// A `RETURNING` list over the rows of `table`, named as the statement names them.
fn returning_of(
    table: &TableMeta,
    named: &str,
    items: &Option<Vec<datafusion::sql::sqlparser::ast::SelectItem>>,
) -> Option<Returning> {
    items.as_ref().map(|items| {
        Returning::new(
            named.to_string(),
            items.clone(),
            crate::write::not_null::nullable(&table.schema),
        )
    })
}

/// The table a statement changes and the alias it names it by.
pub(crate) fn target(from: &TableWithJoins) -> Result<(String, Option<String>)> {
    if !from.joins.is_empty() {
        return Err(SchedulerError::unsupported("joins in UPDATE or DELETE"));
    }
    let TableFactor::Table { name, alias, .. } = &from.relation else {
        return Err(SchedulerError::unsupported(
            "UPDATE or DELETE of anything but a table",
        ));
    };
    Ok((
        table_name(name)?,
        alias.as_ref().map(|a| normalized(&a.name)),
    ))
}

fn normalized(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn existing(snapshot: &CatalogSnapshot, name: &str) -> Result<Arc<TableMeta>> {
    snapshot.table(name).cloned().ok_or_else(|| {
        shardfusion_catalog::CatalogError::TableNotFound {
            name: name.to_string(),
        }
        .into()
    })
}

/// One file to rewrite, on one placement.
struct Rewrite {
    shard: ShardId,
    shard_index: usize,
    placement: PlacementId,
    group: GroupId,
    file: FileMeta,
}

/// What rewriting one file did.
struct Rewritten {
    rewrite: Rewrite,
    changed: u64,
    /// The new file, if one was kept: owed a commit or a deletion, so a statement stopped
    /// before its commit (an error elsewhere, a cancel, a timeout) deletes it.
    written: WrittenFiles,
}

/// Steps 1 to 3 of the module docs for a statement whose filter and new values are
/// expressions over the table's own row; returns the rows changed.
async fn change_rows(
    coordinator: &Coordinator,
    snapshot: Arc<CatalogSnapshot>,
    table: &Arc<TableMeta>,
    alias: Option<String>,
    selection: Option<&SqlExpr>,
    change: Change<SqlExpr>,
    params: &[ScalarValue],
) -> Result<u64> {
    let cluster = coordinator.cluster();
    let session = session_for(cluster, Arc::clone(&snapshot))?;
    let state = session.state();
    let qualifier = alias.unwrap_or_else(|| table.name.clone());
    let row = DFSchema::try_from_qualified_schema(qualifier.as_str(), &table.schema)?;
    let logical = |sql: &SqlExpr| -> Result<Expr> {
        crate::write::dml_parameters::bind_placeholders(
            state.create_logical_expr(&sql.to_string(), &row)?,
            params,
        )
    };
    let filter = selection.map(logical).transpose()?;
    let delete = matches!(change, Change::Delete);
    let change = match change {
        Change::Set(set) => Change::Set(
            (set.into_iter())
                .map(|(i, value)| Ok((i, logical(&value)?)))
                .collect::<Result<_>>()?,
        ),
        Change::Delete => Change::Delete,
    };
    let projections = projections(&state, table, &qualifier, &row, filter.as_ref(), change)?;
    // Step 1: the shards the filter can touch.
    let provider = ShardedTableProvider::new(
        Arc::clone(cluster),
        Arc::clone(&snapshot),
        Arc::clone(table),
    );
    let keep = filter
        .as_ref()
        .and_then(|f| provider.prune(std::slice::from_ref(f)));
    let plan = RowsThroughProjections(projections);
    rewrite_rows(
        coordinator,
        snapshot,
        session.task_ctx(),
        table,
        keep,
        &plan,
        delete,
    )
    .await
}

/// How each row of a file is rewritten: the plan that reads the file (`scan`, of shard
/// `shard_index`) and outputs each row as the statement leaves it, then [`CHANGED_COLUMN`].
pub(crate) trait RowRewrite: Send + Sync {
    fn over(
        &self,
        shard_index: usize,
        scan: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>>;

    /// The columns the new files have, when they differ from the table's (a column change).
    fn target_schema(&self) -> Option<SchemaRef> {
        None
    }
}

/// The rewrite of a statement whose filter and new values are expressions over the row
/// (see [`projections`]).
struct RowsThroughProjections([Vec<ProjectionExpr>; 2]);

impl RowRewrite for RowsThroughProjections {
    fn over(&self, _: usize, scan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let [flagged, changed] = &self.0;
        let flagged = ProjectionExec::try_new(flagged.clone(), scan)?;
        Ok(Arc::new(ProjectionExec::try_new(
            changed.clone(),
            Arc::new(flagged),
        )?))
    }
}

/// Steps 1 (given the shards to touch: `keep`, all when `None`) to 3 of the module docs:
/// every file of those shards' placements rewritten with `rows`, then one swap; returns the
/// rows changed.
pub(crate) async fn rewrite_rows(
    coordinator: &Coordinator,
    snapshot: Arc<CatalogSnapshot>,
    task_ctx: Arc<TaskContext>,
    table: &Arc<TableMeta>,
    keep: Option<std::collections::BTreeSet<usize>>,
    rows: &dyn RowRewrite,
    delete: bool,
) -> Result<u64> {
    let cluster = coordinator.cluster();
    let mut rewrites = Vec::new();
    for shard in &table.shards {
        if keep.as_ref().is_some_and(|k| !k.contains(&shard.index)) {
            continue;
        }
        for placement in &shard.placements {
            for file in &placement.files {
                rewrites.push(Rewrite {
                    shard: shard.shard_id,
                    shard_index: shard.index,
                    placement: placement.placement_id,
                    group: placement.group_id,
                    file: file.clone(),
                });
            }
        }
    }

    // Step 2: every file rewritten where it lies.
    let sort_column = match &table.kind {
        TableKind::Distributed { column, .. } => column.clone(),
        _ => String::new(),
    };
    let how = HowToRewrite {
        cluster,
        snapshot: &snapshot,
        task_ctx,
        table,
        rows,
        sort_column: &sort_column,
        delete,
    };
    // The first failure stops the others; what they wrote is deleted as they are dropped.
    let done: Vec<Rewritten> = futures::stream::iter(rewrites)
        .map(|rewrite| how.rewrite(rewrite))
        .buffer_unordered(PARALLEL_REWRITES)
        .try_collect()
        .await?;
    let (changed, unchanged): (Vec<Rewritten>, Vec<Rewritten>) =
        done.into_iter().partition(|r| r.changed > 0);
    drop(unchanged);
    if changed.is_empty() {
        return Ok(0);
    }
    // Every placement of a shard holds the same rows: count each shard's changes once.
    let first_placement = |r: &Rewritten| {
        table
            .shards
            .iter()
            .find(|s| s.shard_id == r.rewrite.shard)
            .and_then(|s| s.placements.first())
            .is_some_and(|p| p.placement_id == r.rewrite.placement)
    };
    let count: u64 = changed
        .iter()
        .filter(|r| first_placement(r))
        .map(|r| r.changed)
        .sum();

    // Step 3: one swap of every changed file.
    let replaced: Vec<(PlacementId, GroupId, String)> = changed
        .iter()
        .map(|r| {
            let rewrite = &r.rewrite;
            (rewrite.placement, rewrite.group, rewrite.file.path.clone())
        })
        .collect();
    let new_files: Vec<(PlacementId, GroupId, FileMeta)> = changed
        .iter()
        .flat_map(|r| r.written.for_commit())
        .collect();
    let written_schema = rows
        .target_schema()
        .unwrap_or_else(|| Arc::clone(&table.schema));
    // In a multi-statement transaction the swap waits for its COMMIT.
    if let Some(transaction) = crate::session::transaction::current() {
        let mut written = WrittenFiles::empty(written_schema);
        for rewritten in changed {
            written.absorb(rewritten.written);
        }
        transaction
            .record(cluster, &table.name, replaced, written)
            .await?;
        return Ok(count);
    }
    let change = FileChange {
        table: table.name.clone(),
        written: written_schema.as_ref().clone(),
        removed: replaced.clone(),
        added: new_files.clone(),
    };
    let key_lock = unique_keys::lock_and_check(cluster, &table.name, &change).await;
    let committed = match key_lock {
        Ok(_key_lock) => cluster
            .replace_files(table, &replaced, &new_files)
            .map_err(SchedulerError::from),
        Err(e) => Err(e),
    };
    match committed {
        Ok(_) => {
            for rewritten in changed {
                rewritten.written.committed();
            }
            Ok(count)
        }
        Err(e) => {
            for rewritten in changed {
                rewritten.written.discard(cluster, &snapshot).await;
            }
            Err(e)
        }
    }
}

/// The two projections a file's rows go through: the first keeps the columns and adds
/// [`CHANGED_COLUMN`] (the filter, evaluated once per row, so a volatile filter changes a
/// row in every column set or in none); the second gives each set column its new value where
/// the row changed. Expressions are coerced and simplified once for the statement, as a
/// query's are: `now()` is the statement's start time on every node.
fn projections(
    state: &SessionState,
    table: &TableMeta,
    qualifier: &str,
    row: &DFSchema,
    filter: Option<&Expr>,
    change: Change<Expr>,
) -> Result<[Vec<ProjectionExpr>; 2]> {
    let started = SimplifyContext::builder()
        .with_current_time()
        .build()
        .query_execution_start_time();
    let physical = |expr: Expr, schema: &DFSchema| -> Result<Arc<dyn PhysicalExpr>> {
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .with_config_options(Arc::clone(state.config_options()))
            .with_query_execution_start_time(started)
            .build();
        let simplifier = ExprSimplifier::new(context);
        let expr = simplifier.simplify(simplifier.coerce(expr, schema)?)?;
        Ok(state.create_physical_expr(expr, schema)?)
    };
    let columns: Vec<(Expr, String)> = table
        .schema
        .fields()
        .iter()
        .map(|f| {
            (
                col(Column::new(Some(qualifier), f.name())),
                f.name().clone(),
            )
        })
        .collect();
    let changed = match filter {
        Some(filter) => filter.clone().is_true(),
        None => lit(true),
    };
    let mut first = Vec::with_capacity(columns.len() + 1);
    for (expr, name) in &columns {
        first.push(ProjectionExpr::new(
            physical(expr.clone(), row)?,
            name.clone(),
        ));
    }
    first.push(ProjectionExpr::new(
        physical(changed, row)?,
        CHANGED_COLUMN.to_string(),
    ));
    let flag = Field::new(CHANGED_COLUMN, DataType::Boolean, false);
    let flagged = row.join(&DFSchema::from_unqualified_fields(
        vec![flag].into(),
        Default::default(),
    )?)?;
    // Each copy of a replicated shard is rewritten on its own: a volatile function would
    // leave them different (Citus refuses them too).
    let replicated = table.shards.iter().any(|s| s.placements.len() > 1);
    let refuse_volatile = |expr: &Expr| {
        // Files are rewritten on the workers; sequence values come from the coordinator.
        if sequence_functions::calls_sequence_function_in(expr) {
            return Err(SchedulerError::unsupported(format!(
                "sequence functions in UPDATE or DELETE ({expr}): their values are handed \
                 out on the coordinator, and rows are rewritten on the workers"
            )));
        }
        if replicated && expr.is_volatile() {
            return Err(SchedulerError::invalid(format!(
                "functions used in UPDATE or DELETE on {}, which has a copy on several \
                 nodes, must not be VOLATILE: {expr}",
                table.name
            )));
        }
        Ok(())
    };
    if let Some(filter) = filter {
        refuse_volatile(filter)?;
    }
    let mut outputs: Vec<Expr> = columns.iter().map(|(expr, _)| expr.clone()).collect();
    if let Change::Set(set) = change {
        for (index, value) in set {
            refuse_volatile(&value)?;
            let data_type = table.schema.field(index).data_type().clone();
            outputs[index] = when(col(CHANGED_COLUMN), cast(value, data_type))
                .otherwise(outputs[index].clone())?;
        }
    }
    outputs.push(col(CHANGED_COLUMN));
    let mut second = Vec::with_capacity(outputs.len());
    for (i, expr) in outputs.into_iter().enumerate() {
        let name = columns
            .get(i)
            .map_or(CHANGED_COLUMN.to_string(), |(_, name)| name.clone());
        second.push(ProjectionExpr::new(physical(expr, &flagged)?, name));
    }
    Ok([first, second])
}

/// What every file of one statement is rewritten with.
struct HowToRewrite<'a> {
    cluster: &'a Arc<Cluster>,
    snapshot: &'a CatalogSnapshot,
    task_ctx: Arc<TaskContext>,
    table: &'a TableMeta,
    rows: &'a dyn RowRewrite,
    sort_column: &'a str,
    delete: bool,
}

impl HowToRewrite<'_> {
    /// Rewrites one file on the node holding it (the coordinator's own for a local table).
    async fn rewrite(&self, rewrite: Rewrite) -> Result<Rewritten> {
        let Self {
            cluster,
            snapshot,
            task_ctx,
            table,
            rows,
            sort_column,
            delete,
        } = self;
        let (sort_column, delete) = (*sort_column, *delete);
        let node_id = snapshot
            .node_of_group(rewrite.group)
            .map_or(shardfusion_common::ids::NodeId(0), |n| n.node_id);
        let files = file_refs_of(&rewrite.file);
        let scan = ShardScanExec::try_new(
            table.name.clone(),
            Arc::clone(&table.schema),
            None,
            None,
            None,
            vec![ShardFiles {
                shard_id: rewrite.shard,
                node_id,
                files,
            }],
        )?;
        let plan = rows.over(rewrite.shard_index, Arc::new(scan))?;
        let target = rows.target_schema();
        let write_id = uuid::Uuid::new_v4().to_string();
        let path = shard_file_path(table.table_id, rewrite.shard, &write_id);
        // Registered before the node can create the file, so reconciliation never sees it
        // unregistered.
        let in_flight = cluster.orphans.in_flight().begin(rewrite.group, &path);
        let (changed, written) = if rewrite.group == GroupId::COORDINATOR {
            let ctx = Arc::clone(task_ctx);
            let bloom_filter_columns = table.indexed_columns();
            let layout = shardfusion_executor::shard_writer::FileLayout {
                sort_by: (!sort_column.is_empty()).then_some(sort_column),
                bloom_filter_columns: &bloom_filter_columns,
            };
            shardfusion_executor::file_rewrite::rewrite_shard_file(
                &cluster.root,
                plan,
                ctx,
                &path,
                layout,
                target.clone(),
                delete,
            )
            .await
            .map_err(|e| SchedulerError::Worker {
                node: "coordinator".into(),
                status: e.into(),
            })?
        } else {
            let node = snapshot.node_of_group(rewrite.group).ok_or_else(|| {
                SchedulerError::invalid(format!("no node holds placement group {}", rewrite.group))
            })?;
            let label = format!("{}:{}", node.node_name, node.node_port);
            let request = RewriteShardFileRequest {
                plan: encode_plan(plan)?,
                table_id: table.table_id.0,
                shard_id: rewrite.shard.0,
                write_id,
                sort_column: sort_column.to_string(),
                delete,
                bloom_filter_columns: table.indexed_columns(),
                target_schema: match &target {
                    Some(schema) => shardfusion_common::codec::encode_schema(schema)?,
                    None => Vec::new(),
                },
            };
            let results = cluster
                .workers
                .do_action(
                    &node.url(),
                    Action::new(ACTION_REWRITE_SHARD_FILE, request.encode_to_vec()),
                )
                .await
                .map_err(|status| SchedulerError::Worker {
                    node: label.clone(),
                    status,
                })?;
            let answer = results
                .into_iter()
                .next()
                .map(|r| RewriteShardFileResponse::decode(r.body))
                .transpose()
                .map_err(|e| SchedulerError::Worker {
                    node: label.clone(),
                    status: Status::internal(format!("bad rewrite_shard_file answer: {e}")),
                })?
                .ok_or_else(|| SchedulerError::Worker {
                    node: label,
                    status: Status::internal("rewrite_shard_file answered nothing"),
                })?;
            (answer.changed_rows, answer.written)
        };
        let files = written
            .map(|w: WrittenFile| (rewrite.placement, rewrite.group, file_meta(w)))
            .into_iter()
            .collect();
        let schema = target.unwrap_or_else(|| Arc::clone(&table.schema));
        let written = WrittenFiles::owned(cluster, schema, files, vec![in_flight]);
        Ok(Rewritten {
            rewrite,
            changed,
            written,
        })
    }
}

/// The scan's reference to one committed file.
fn file_refs_of(file: &FileMeta) -> Vec<FileRef> {
    vec![FileRef {
        path: file.path.clone(),
        byte_size: file.byte_size,
        row_count: file.row_count,
        stats: file.stats.clone(),
    }]
}
