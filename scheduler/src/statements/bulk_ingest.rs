//! Flight SQL bulk ingest (`CommandStatementIngest`, what ADBC's `adbc_ingest` sends).
//!
//! Modes follow the ADBC options: a missing table is created (as a local table) when asked to,
//! an existing one is appended to, replaced (old and new rows swap in one commit), or refused.
//! Columns are matched by name. The rows are written through the same all-or-nothing
//! [`TableWriter`] as INSERT and COPY.

use std::sync::Arc;

use arrow_flight::FlightData;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption, TableNotExistOption};
use datafusion::arrow::datatypes::{Field, Schema};
use futures::{Stream, StreamExt, TryStreamExt};
use shardfusion_catalog::CatalogError;
use shardfusion_catalog::roles::TablePrivilege;

use crate::auth::Principal;
use crate::coordinator::Coordinator;
use crate::error::{Result, SchedulerError};
use crate::session::statement_context::DEFAULT_SCHEMA;
use crate::write::conform::{Conformer, MatchBy};
use crate::write::table_writer::TableWriter;

fn flight_error(e: FlightError) -> SchedulerError {
    match e {
        FlightError::Tonic(status) => SchedulerError::InvalidArgument {
            message: format!("ingest stream failed: {}", status.message()),
        },
        other => SchedulerError::invalid(format!("cannot read the ingested data: {other}")),
    }
}

/// Ingests `data` into `command.table`; returns the number of rows written.
pub async fn ingest<S>(
    coordinator: &Coordinator,
    principal: &Principal,
    command: &CommandStatementIngest,
    data: S,
) -> Result<u64>
where
    S: Stream<Item = std::result::Result<FlightData, FlightError>> + Send + 'static,
{
    if command.temporary {
        return Err(SchedulerError::unsupported("temporary tables"));
    }
    if let Some(schema) = &command.schema
        && !schema.is_empty()
        && schema != DEFAULT_SCHEMA
    {
        return Err(SchedulerError::unsupported(format!("schema \"{schema}\"")));
    }
    let options = command.table_definition_options.unwrap_or_default();
    let if_not_exist = TableNotExistOption::try_from(options.if_not_exist)
        .unwrap_or(TableNotExistOption::Unspecified);
    let if_exists =
        TableExistsOption::try_from(options.if_exists).unwrap_or(TableExistsOption::Unspecified);

    let mut batches = FlightRecordBatchStream::new_from_flight_data(data);
    let first = batches.next().await.transpose().map_err(flight_error)?;
    let input_schema = match (&first, batches.schema()) {
        (Some(batch), _) => batch.schema(),
        (None, Some(schema)) => Arc::clone(schema),
        (None, None) => return Ok(0),
    };

    let cluster = coordinator.cluster();
    let snapshot = crate::session::transaction::statement_snapshot(cluster)?;
    let access = principal.access(&snapshot)?;
    let lower = command.table.to_ascii_lowercase();
    let existing = snapshot
        .table(&command.table)
        .or_else(|| snapshot.table(&lower))
        .cloned();
    // Appending needs INSERT; replacing the rows TRUNCATE too; creating the table is DDL.
    match &existing {
        Some(table) => {
            access.require_table(&table.name, TablePrivilege::Insert)?;
            if if_exists == TableExistsOption::Replace {
                access.require_table(&table.name, TablePrivilege::Truncate)?;
            }
        }
        None if if_not_exist == TableNotExistOption::Create => {
            access.require_superuser("CREATE TABLE (bulk ingest creating its table)")?;
        }
        None => {}
    }
    let mut replace = false;
    let table = match existing {
        Some(table) => match if_exists {
            TableExistsOption::Fail => {
                return Err(CatalogError::TableExists {
                    name: table.name.clone(),
                }
                .into());
            }
            TableExistsOption::Replace => {
                replace = true;
                table
            }
            TableExistsOption::Append | TableExistsOption::Unspecified => table,
        },
        None => match if_not_exist {
            TableNotExistOption::Create => {
                if crate::session::transaction::current().is_some() {
                    return Err(crate::error::SchedulerError::transaction(
                        format!(
                            "bulk ingest cannot create table \"{}\" inside a transaction block \
                             (DDL commits on its own): create it before BEGIN",
                            command.table
                        ),
                        "25001",
                    ));
                }
                let fields: Vec<Field> = input_schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect();
                cluster.catalog.create_table(&lower, &Schema::new(fields))?
            }
            _ => {
                return Err(CatalogError::TableNotFound {
                    name: command.table.clone(),
                }
                .into());
            }
        },
    };
    let snapshot = crate::session::transaction::statement_snapshot(cluster)?;
    let table =
        snapshot
            .table(&table.name)
            .cloned()
            .ok_or_else(|| CatalogError::TableNotFound {
                name: table.name.clone(),
            })?;
    let defaults = cluster.default_expressions.physical(&table)?;
    let conformer = Conformer::with_defaults(
        &table.name,
        Arc::clone(&table.schema),
        &input_schema,
        MatchBy::Name,
        &defaults,
    )?;
    let rows = futures::stream::iter(first.map(Ok))
        .chain(batches)
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)));
    let writer = TableWriter::for_table(Arc::clone(cluster), Arc::clone(&snapshot), &table)?;
    let written = writer
        .write_all(rows, |batch| conformer.apply(batch))
        .await?;
    if replace {
        // The new rows and the removal of the old ones become visible together.
        written
            .commit_replacing(cluster, &snapshot, &table.name)
            .await
    } else {
        written.commit(cluster, &snapshot, &table.name).await
    }
}
