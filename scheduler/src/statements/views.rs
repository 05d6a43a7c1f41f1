//! `CREATE [OR REPLACE] VIEW name [(columns)] AS query` and `DROP VIEW [IF EXISTS] name, ...`.
//!
//! A view is its query's text, recorded in the catalog
//! ([`shardfusion_catalog::view_store`]) once it plans over the tables as they are, and planned
//! again wherever a statement names it ([`crate::session::schema_provider`]): the planner
//! distributes it with the statement (a filter on the distribution column still routes to one
//! shard), and reading it needs the privileges its tables need. Both statements take part in
//! transactions. Not supported: `MATERIALIZED`, `RECURSIVE` and `TEMPORARY` views.

use datafusion::sql::sqlparser::ast::{CreateView, ObjectName};

use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::session::transaction_branch::ddl_catalog;
use crate::statements::ddl::table_name;
use crate::statements::indexes::drop_each;

/// Runs `CREATE VIEW`.
pub async fn create_view(
    coordinator: &Coordinator,
    create: &CreateView,
) -> Result<StatementOutput> {
    if create.materialized {
        return Err(SchedulerError::unsupported(
            "materialized views; create a table with CREATE TABLE ... AS",
        ));
    }
    let name = table_name(&create.name)?;
    let query = create.query.to_string();
    let definition = match create.columns.as_slice() {
        [] => query,
        columns => {
            let names: Vec<String> = columns.iter().map(|c| c.name.to_string()).collect();
            format!(
                "SELECT * FROM ({query}) AS \"{name}\" ({})",
                names.join(", ")
            )
        }
    };
    // It must plan now, over the tables as they are (a missing one: 42P01).
    let ctx = coordinator.session()?;
    for statement in crate::coordinator::parse(&definition)? {
        crate::statements::table_references::check_tables_exist(&ctx.state(), &statement)?;
    }
    ctx.state().create_logical_plan(&definition).await?;
    ddl_catalog(coordinator.cluster())?.create_view(&name, &definition, create.or_replace)?;
    Ok(StatementOutput::empty())
}

/// Runs `DROP VIEW`.
pub fn drop_views(
    coordinator: &Coordinator,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<StatementOutput> {
    let catalog = ddl_catalog(coordinator.cluster())?;
    drop_each(
        names,
        if_exists,
        "view",
        |name| Ok(catalog.drop_view(name)?),
    )
}
