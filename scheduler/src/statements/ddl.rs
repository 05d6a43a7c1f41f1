//! `CREATE TABLE` (with `DEFAULT`s and `serial` columns, see
//! [`crate::session::column_defaults`]), `DROP TABLE`, `TRUNCATE` and `ALTER TABLE`.
//!
//! A new table is local (on the coordinator) until `create_distributed_table` or
//! `create_reference_table` moves it. Dropping or truncating forgets the table's files in one
//! catalog transaction and then deletes them on every node that held a placement.
//!
//! The checks here on a snapshot only give early, friendly errors; each catalog change
//! re-decides inside its own transaction (a table created or a column added meanwhile, rows
//! committed before a NOT NULL column), so concurrent statements cannot slip between.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnOption, ObjectName, RenameTableNameKind, Statement,
    TableConstraint, Truncate,
};

use shardfusion_catalog::TableKeys;
use shardfusion_catalog::roles::TablePrivilege;
use shardfusion_common::ids::TableId;

use crate::auth::Access;
use crate::cluster::shared_state::Cluster;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::session::column_defaults::{self, TableDefaults};
use crate::session::foreign_keys::normalized;
use crate::session::statement_context::DEFAULT_SCHEMA;
use crate::session::transaction_branch::{ddl_catalog, in_branch, retire_unless_branched};
use crate::session::{column_types, foreign_keys, key_constraints, transaction_block};
use crate::statements::column_changes;
use crate::write::table_writer::{TableWriter, WrittenFiles};

/// The table a (possibly qualified) name refers to, normalized as Postgres would.
pub fn table_name(name: &ObjectName) -> Result<String> {
    let reference = object_name_to_table_reference(name.clone(), true)?;
    if let Some(schema) = reference.schema()
        && schema != DEFAULT_SCHEMA
    {
        return Err(SchedulerError::unsupported(format!(
            "schema \"{schema}\" (tables live in \"{DEFAULT_SCHEMA}\")"
        )));
    }
    Ok(reference.table().to_string())
}

pub async fn create_table(
    coordinator: &Coordinator,
    mut statement: DFStatement,
) -> Result<StatementOutput> {
    let ctx = coordinator.session()?;
    // `serial` columns become integers with a sequence default; every default is recorded.
    let (table_defaults, declared, keys) = match &mut statement {
        DFStatement::Statement(inner) => match inner.as_mut() {
            Statement::CreateTable(create) => {
                let name = table_name(&create.name)?;
                let snapshot = ddl_catalog(coordinator.cluster())?.snapshot();
                let defaults = column_defaults::prepare_create_table(create, &name, &snapshot)?;
                let unique = key_constraints::take_unique_keys(create, &name)?;
                let own_key = unique.iter().find(|k| k.primary).map(|k| k.columns.clone());
                let primary_key = |referenced: &str| match referenced == name {
                    true => own_key.clone(),
                    false => (snapshot.table(referenced))
                        .and_then(|t| t.unique_keys.iter().find(|k| k.primary))
                        .map(|k| k.columns.clone()),
                };
                let keys = TableKeys {
                    foreign: foreign_keys::take_foreign_keys(create, &name, &primary_key)?,
                    unique,
                    checks: crate::session::check_constraints::take_checks(create, &name)?,
                };
                let declared = column_types::text_columns(&mut create.columns)?;
                (defaults, declared, keys)
            }
            _ => (TableDefaults::default(), Vec::new(), TableKeys::default()),
        },
        _ => (TableDefaults::default(), Vec::new(), TableKeys::default()),
    };
    let plan = ctx.state().statement_to_plan(statement).await?;
    let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
        return Err(SchedulerError::unsupported("this form of CREATE TABLE"));
    };
    if create.or_replace {
        return Err(SchedulerError::unsupported(
            "CREATE OR REPLACE TABLE; use DROP TABLE first",
        ));
    }
    if create.temporary {
        return Err(SchedulerError::unsupported("temporary tables"));
    }
    if let Some(schema) = create.name.schema()
        && schema != DEFAULT_SCHEMA
    {
        return Err(SchedulerError::unsupported(format!("schema \"{schema}\"")));
    }
    let name = create.name.table().to_string();
    let cluster = coordinator.cluster();
    let catalog = ddl_catalog(cluster)?;
    if catalog.snapshot().table(&name).is_some() && create.if_not_exists {
        return Ok(StatementOutput::empty());
    }
    let fields: Vec<Field> = create
        .input
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut fields = column_types::declare(fields, &declared);
    // A primary key's columns are NOT NULL.
    for key in keys.unique.iter().filter(|k| k.primary) {
        for field in fields.iter_mut().filter(|f| key.columns.contains(f.name())) {
            *field = field.clone().with_nullable(false);
        }
    }
    let columns: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
    let (defaults, sequences) = table_defaults.named(&columns);
    for default in &defaults {
        if let Some(field) = fields.iter().find(|f| *f.name() == default.column) {
            cluster.default_expressions.check(
                &default.column,
                &default.expression,
                field.data_type(),
            )?;
        }
    }
    let schema = Schema::new(fields);
    // A check that is no condition over these columns is refused now, not at every write.
    crate::session::check_constraints::Checks::compile(&name, &schema, &keys.checks)?;
    let table = match catalog.create_table_with(&name, &schema, &defaults, &sequences, &keys) {
        // Created by another statement since the check above.
        Err(shardfusion_catalog::CatalogError::TableExists { .. }) if create.if_not_exists => {
            return Ok(StatementOutput::empty());
        }
        other => other?,
    };
    let is_ctas = !matches!(create.input.as_ref(), LogicalPlan::EmptyRelation(_));
    if !is_ctas {
        return Ok(StatementOutput::empty());
    }
    // CREATE TABLE ... AS: fill it, or remove it again — also when the statement is stopped
    // (timeout, cancel) while it loads. In a transaction, its failure rolls the table back.
    let branched = in_branch();
    let mut unfilled = RemoveUnfilled {
        cluster: Arc::clone(cluster),
        table_id: (!branched).then_some(table.table_id),
    };
    let load = async {
        let frame = ctx
            .execute_logical_plan(create.input.as_ref().clone())
            .await?;
        let stream = frame.execute_stream().await?;
        let snapshot = crate::session::transaction::statement_snapshot(cluster)?;
        let writer = TableWriter::for_table(Arc::clone(cluster), Arc::clone(&snapshot), &table)?;
        let written = writer.write_all(stream, Ok).await?;
        written.commit(cluster, &snapshot, &name).await
    };
    let loaded = load.await;
    unfilled.table_id = None;
    match loaded {
        Ok(rows) => Ok(StatementOutput::count(rows)),
        Err(e) if branched => Err(e),
        Err(e) => {
            // Only the table this statement created: the name may have been reused.
            let _committing = cluster.retirement.committing();
            if let Ok(Some(files)) = cluster.catalog.drop_table_id(table.table_id) {
                cluster.retire_files(files);
            }
            Err(e)
        }
    }
}

/// `names` ordered so that a table whose foreign key references another of them is dropped
/// before it (`DROP TABLE parent, child` drops both, as in PostgreSQL).
fn referencing_first(
    mut names: Vec<String>,
    snapshot: &shardfusion_catalog::CatalogSnapshot,
) -> Vec<String> {
    let mut ordered = Vec::with_capacity(names.len());
    while !names.is_empty() {
        let referenced_by_rest = |name: &String| {
            names.iter().any(|other| {
                other != name
                    && snapshot
                        .table(other)
                        .is_some_and(|t| t.foreign_keys.iter().any(|k| &k.referenced_table == name))
            })
        };
        // A cycle of keys among them: the first in the list goes (and its drop says why).
        let next = names
            .iter()
            .position(|n| !referenced_by_rest(n))
            .unwrap_or(0);
        ordered.push(names.remove(next));
    }
    ordered
}

pub async fn drop_tables(
    coordinator: &Coordinator,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<StatementOutput> {
    let cluster = coordinator.cluster();
    let catalog = ddl_catalog(cluster)?;
    let names = names.iter().map(table_name).collect::<Result<Vec<_>>>()?;
    if !if_exists {
        let snapshot = catalog.snapshot();
        if let Some(missing) = names.iter().find(|n| snapshot.table(n).is_none()) {
            return Err(shardfusion_catalog::CatalogError::TableNotFound {
                name: missing.clone(),
            }
            .into());
        }
    }
    let names = referencing_first(names, &catalog.snapshot());
    for name in names {
        let _committing = cluster.retirement.committing();
        if let Some(files) = catalog.drop_table(&name, if_exists)? {
            crate::limits::commit_point::reached();
            retire_unless_branched(cluster, files);
        }
    }
    Ok(StatementOutput::empty())
}

/// Removes the table a `CREATE TABLE ... AS` created if the statement goes away (stopped by
/// its timeout or a cancel) before the table was filled.
struct RemoveUnfilled {
    cluster: Arc<Cluster>,
    table_id: Option<TableId>,
}

impl Drop for RemoveUnfilled {
    fn drop(&mut self) {
        let Some(table_id) = self.table_id.take() else {
            return;
        };
        let cluster = Arc::clone(&self.cluster);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _committing = cluster.retirement.committing();
                if let Ok(Some(files)) = cluster.catalog.drop_table_id(table_id) {
                    cluster.retire_files(files);
                }
            });
        }
    }
}

/// `TRUNCATE a, b`: all the tables or none; each needs the `TRUNCATE` privilege.
pub async fn truncate(
    coordinator: &Coordinator,
    access: &Access<'_>,
    truncate: &Truncate,
) -> Result<StatementOutput> {
    let cluster = coordinator.cluster();
    let snapshot = crate::session::transaction::statement_snapshot(cluster)?;
    let mut names = Vec::new();
    for target in &truncate.table_names {
        let name = table_name(&target.name)?;
        if snapshot.table(&name).is_none() {
            if truncate.if_exists {
                continue;
            }
            return Err(shardfusion_catalog::CatalogError::TableNotFound { name }.into());
        }
        access.require_table(&name, TablePrivilege::Truncate)?;
        names.push(name);
    }
    let restart = matches!(
        truncate.identity,
        Some(datafusion::sql::sqlparser::ast::TruncateIdentityOption::Restart)
    );
    if let Some(transaction) = crate::session::transaction::current() {
        if restart {
            return Err(SchedulerError::unsupported(
                "TRUNCATE ... RESTART IDENTITY inside a transaction block (sequences are not \
                 transactional)",
            ));
        }
        // The files leave the table at COMMIT.
        for name in names {
            let files = transaction.files_of(&name)?;
            let schema = Arc::clone(&snapshot.tables[&name].schema);
            (transaction.record(cluster, &name, files, WrittenFiles::empty(schema))).await?;
        }
        return Ok(StatementOutput::empty());
    }
    for name in names {
        let _committing = cluster.retirement.committing();
        let files = cluster.catalog.truncate_table(&name)?;
        crate::limits::commit_point::reached();
        cluster.retire_files(files);
        if restart {
            // RESTART IDENTITY: the sequences its columns own start over.
            let snapshot = cluster.catalog.snapshot();
            let Some(table) = snapshot.table(&name) else {
                continue;
            };
            let owned = snapshot.sequences.values().filter(|s| {
                s.owned_by
                    .as_ref()
                    .is_some_and(|(id, _)| *id == table.table_id)
            });
            for sequence in owned {
                cluster
                    .sequences
                    .set_value(&sequence.name, sequence.start, false)?;
            }
        }
    }
    Ok(StatementOutput::empty())
}

pub async fn alter_table(
    coordinator: &Coordinator,
    role: &str,
    alter: &AlterTable,
) -> Result<StatementOutput> {
    // A change that rewrites the rows commits with the files it writes, all or nothing.
    let rewrites = alter.operations.iter().any(|operation| match operation {
        AlterTableOperation::DropColumn { .. } | AlterTableOperation::RenameColumn { .. } => true,
        AlterTableOperation::AddColumn { column_def, .. } => column_def
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::Default(_))),
        _ => false,
    });
    if !rewrites {
        return alter_table_here(coordinator, alter).await;
    }
    let cluster = coordinator.cluster();
    let table_id =
        (cluster.catalog.snapshot().table(&table_name(&alter.name)?)).map(|t| t.table_id);
    let work = async {
        // Commits of other writes to the table are refused (the retryable 40001) from before
        // the table is read until the rewrite is done: rows written with the old columns
        // would lack the new ones. The fence falls just before the transaction's commit,
        // which refuses the change if a file slipped in since the table was read.
        let _fence = table_id.map(|id| cluster.catalog.fence_writes(id));
        alter_table_here(coordinator, alter).await
    };
    transaction_block::all_or_nothing(cluster, role, work).await
}

async fn alter_table_here(
    coordinator: &Coordinator,
    alter: &AlterTable,
) -> Result<StatementOutput> {
    let cluster = coordinator.cluster();
    let catalog = ddl_catalog(cluster)?;
    let name = table_name(&alter.name)?;
    if catalog.snapshot().table(&name).is_none() {
        if alter.if_exists {
            return Ok(StatementOutput::empty());
        }
        return Err(shardfusion_catalog::CatalogError::TableNotFound { name }.into());
    }
    if let [AlterTableOperation::RenameTable { table_name: new }] = alter.operations.as_slice() {
        let (RenameTableNameKind::To(new) | RenameTableNameKind::As(new)) = new;
        catalog.rename_table(&name, &table_name(new)?)?;
        return Ok(StatementOutput::empty());
    }
    for operation in &alter.operations {
        if let AlterTableOperation::AddConstraint {
            constraint: TableConstraint::Check(check),
            ..
        } = operation
        {
            add_check(coordinator, &catalog, &name, check).await?;
            continue;
        }
        if let AlterTableOperation::DropConstraint {
            if_exists,
            name: constraint,
            ..
        } = operation
        {
            let constraint = normalized(constraint);
            if !catalog.drop_check_constraint(&name, &constraint)? && !if_exists {
                return Err(SchedulerError::unknown(format!(
                    "constraint \"{constraint}\" of relation \"{name}\" does not exist (only \
                     CHECK constraints can be dropped)"
                )));
            }
            continue;
        }
        if let AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            ..
        } = operation
        {
            column_changes::drop_columns(coordinator, &catalog, &name, column_names, *if_exists)
                .await?;
            continue;
        }
        if let AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } = operation
        {
            column_changes::rename_column(
                coordinator,
                &catalog,
                &name,
                old_column_name,
                new_column_name,
            )
            .await?;
            continue;
        }
        let AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            ..
        } = operation
        else {
            return Err(SchedulerError::unsupported(format!(
                "ALTER TABLE {operation} (ADD/DROP/RENAME COLUMN, ADD CONSTRAINT ... CHECK, \
                 DROP CONSTRAINT and RENAME TO are supported)"
            )));
        };
        if let Some(option) = column_def.options.iter().find(|o| {
            matches!(
                o.option,
                ColumnOption::Unique(_)
                    | ColumnOption::PrimaryKey(_)
                    | ColumnOption::Check(_)
                    | ColumnOption::ForeignKey(_)
            )
        }) {
            return Err(SchedulerError::unsupported(format!(
                "{} in ALTER TABLE ... ADD COLUMN; add the column, then the constraint (ALTER \
                 TABLE ... ADD CONSTRAINT ... CHECK, CREATE UNIQUE INDEX)",
                option.option
            )));
        }
        // Let DataFusion turn the column definition into an Arrow field.
        let ctx = coordinator.session()?;
        let mut column_def = column_def.clone();
        let declared = column_types::text_columns(std::slice::from_mut(&mut column_def))?;
        let sql = format!("CREATE TABLE shardfusion_new_column ({column_def})");
        let plan = ctx.state().create_logical_plan(&sql).await?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
            return Err(SchedulerError::invalid(format!(
                "cannot add column {column_def}"
            )));
        };
        let field = create.input.schema().field(0).as_ref().clone();
        let field = column_types::declare(vec![field], &declared).remove(0);
        let default = column_def.options.iter().find_map(|o| match &o.option {
            ColumnOption::Default(expr) => Some(expr.to_string()),
            _ => None,
        });
        if let Some(default) = default {
            let exists = (catalog.snapshot().table(&name))
                .is_some_and(|t| t.schema.column_with_name(field.name()).is_some());
            if !(exists && *if_not_exists) {
                column_changes::add_column_with_default(
                    coordinator,
                    &catalog,
                    &name,
                    field,
                    &default,
                )
                .await?;
            }
            continue;
        }
        // The catalog decides on the table as it is when the change commits (rows an INSERT
        // committed meanwhile count for NOT NULL).
        match catalog.add_column(&name, field) {
            Err(shardfusion_catalog::CatalogError::ColumnExists { .. }) if *if_not_exists => {}
            other => other?,
        }
    }
    Ok(StatementOutput::empty())
}

/// `ALTER TABLE name ADD [CONSTRAINT c] CHECK (...)`: recorded once every stored row passes it
/// (PostgreSQL's message and SQLSTATE 23514 otherwise).
async fn add_check(
    coordinator: &Coordinator,
    catalog: &shardfusion_catalog::Catalog,
    name: &str,
    check: &datafusion::sql::sqlparser::ast::CheckConstraint,
) -> Result<()> {
    use crate::session::check_constraints::{Checks, named, only_column};
    let table = (catalog.snapshot().table(name).cloned()).ok_or_else(|| {
        shardfusion_catalog::CatalogError::TableNotFound {
            name: name.to_string(),
        }
    })?;
    let column = only_column(&check.expr);
    let check = named(
        name,
        check.name.as_ref(),
        column,
        &check.expr,
        &table.checks,
    );
    Checks::compile(name, &table.schema, std::slice::from_ref(&check))?;
    let ctx = coordinator.session()?;
    let sql = format!(
        "SELECT 1 FROM \"{}\" WHERE ({}) IS FALSE LIMIT 1",
        name.replace('"', "\"\""),
        check.expression
    );
    let violating = ctx.sql(&sql).await?.collect().await?;
    if violating.iter().any(|b| b.num_rows() > 0) {
        return Err(SchedulerError::BadValue(
            shardfusion_common::status::with_sqlstate(
                tonic::Status::invalid_argument(format!(
                    "check constraint \"{}\" of relation \"{name}\" is violated by some row",
                    check.name
                )),
                "23514",
            ),
        ));
    }
    catalog.add_check_constraint(name, check)?;
    Ok(())
}
