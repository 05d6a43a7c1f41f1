//! `ANALYZE [table [(column, ...)]]`: recompute the column statistics of a table's committed
//! files (or of every table's, with no name), as PostgreSQL's `ANALYZE` refreshes `pg_stats`.
//!
//! Statistics are normally recorded when a file is written; `ANALYZE` is for files written
//! before statistics existed, or whose statistics were forgotten. Each node holding
//! placements reads its files back (`shardfusion.analyze_files`; the coordinator's own local
//! tables are read in process) and the coordinator stores what they return in one catalog
//! transaction. A file truncated or dropped meanwhile is simply skipped. A column list is
//! checked against the table, but every column is recomputed: the files are read whole anyway.

use std::collections::HashMap;

use arrow_flight::Action;
use datafusion::sql::sqlparser::ast::Analyze;
use prost::Message;
use shardfusion_catalog::CatalogError;
use shardfusion_catalog::column_stats_store::AnalyzedFile;
use shardfusion_common::column_stats::encoding::from_messages;
use shardfusion_common::ids::{GroupId, PlacementId};
use shardfusion_common::wire::{
    ACTION_ANALYZE_FILES, AnalyzeFilesRequest, AnalyzeFilesResponse, WrittenFile,
};
use tonic::Status;

use crate::cluster::shared_state::Cluster;
use crate::cluster::worker_pool::worker_status;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::statements::ddl::table_name;

/// Files per `analyze_files` request, which keeps each answer (up to a few KiB per file and
/// column) well inside a gRPC message.
const FILES_PER_REQUEST: usize = 32;

pub async fn analyze(coordinator: &Coordinator, analyze: &Analyze) -> Result<StatementOutput> {
    let cluster = coordinator.cluster();
    let snapshot = cluster.catalog.snapshot();
    let tables: Vec<_> = match &analyze.table_name {
        Some(name) => {
            let name = table_name(name)?;
            let table = snapshot
                .table(&name)
                .cloned()
                .ok_or_else(|| CatalogError::TableNotFound { name: name.clone() })?;
            for column in &analyze.columns {
                if table.schema.column_with_name(&column.value).is_none() {
                    return Err(CatalogError::ColumnNotFound {
                        table: name,
                        column: column.value.clone(),
                    }
                    .into());
                }
            }
            vec![table]
        }
        None => snapshot.tables.values().cloned().collect(),
    };
    // Every placement's files, by the node group holding them.
    let mut by_group: HashMap<GroupId, Vec<(PlacementId, String)>> = HashMap::new();
    for table in &tables {
        for shard in &table.shards {
            for placement in &shard.placements {
                for file in &placement.files {
                    by_group
                        .entry(placement.group_id)
                        .or_default()
                        .push((placement.placement_id, file.path.clone()));
                }
            }
        }
    }
    let requests = by_group
        .into_iter()
        .map(|(group, files)| analyze_on(cluster, &snapshot, group, files));
    let analyzed: Vec<AnalyzedFile> = futures::future::try_join_all(requests)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let updated = cluster.catalog.record_column_stats(&analyzed)?;
    tracing::debug!(files = updated, "ANALYZE stored column statistics");
    Ok(StatementOutput::empty())
}

/// The statistics of `files`, read by the node of `group`.
async fn analyze_on(
    cluster: &Cluster,
    snapshot: &shardfusion_catalog::CatalogSnapshot,
    group: GroupId,
    files: Vec<(PlacementId, String)>,
) -> Result<Vec<AnalyzedFile>> {
    let placement_of: HashMap<String, PlacementId> =
        files.iter().map(|(p, path)| (path.clone(), *p)).collect();
    let mut written: Vec<WrittenFile> = Vec::with_capacity(files.len());
    for chunk in files.chunks(FILES_PER_REQUEST) {
        let paths: Vec<String> = chunk.iter().map(|(_, path)| path.clone()).collect();
        if group == GroupId::COORDINATOR {
            let answer = shardfusion_executor::file_analysis::analyze_files(&cluster.root, &paths)
                .await
                .map_err(|e| SchedulerError::Worker {
                    node: "coordinator".into(),
                    status: e.into(),
                })?;
            written.extend(answer);
            continue;
        }
        let node = snapshot.node_of_group(group).ok_or_else(|| {
            SchedulerError::invalid(format!("no node holds placement group {group}"))
        })?;
        let url = node.url();
        let body = AnalyzeFilesRequest { paths }.encode_to_vec();
        let results = cluster
            .workers
            .do_action(&url, Action::new(ACTION_ANALYZE_FILES, body))
            .await
            .map_err(|status| SchedulerError::Worker {
                node: format!("{}:{}", node.node_name, node.node_port),
                status: worker_status(&url, status),
            })?;
        for result in results {
            let answer =
                AnalyzeFilesResponse::decode(result.body).map_err(|e| SchedulerError::Worker {
                    node: format!("{}:{}", node.node_name, node.node_port),
                    status: Status::internal(format!("bad analyze_files answer: {e}")),
                })?;
            written.extend(answer.files);
        }
    }
    Ok(written
        .into_iter()
        .filter_map(|file| {
            let placement = *placement_of.get(&file.path)?;
            let stats = from_messages(&file.columns)?;
            Some(AnalyzedFile {
                placement,
                path: file.path,
                stats,
            })
        })
        .collect())
}
