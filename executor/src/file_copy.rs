//! Shard files copied worker to worker, for shard moves and new reference-table copies.
//!
//! The coordinator asks the *receiving* worker to copy ([`copy_shard_files`]); that worker
//! reads each file from its peer over Flight ([`read_shard_file`] on the peer's side, an
//! authenticated `DoAction` streaming the file in chunks) and keeps it under the same path in
//! its own data root. No byte passes through the coordinator.
//!
//! A copy is verified before it is reported: the bytes received hash (xxh3-64) to the
//! checksum the source computed while sending, their count is the size the catalog records,
//! and the Parquet footer read back from the new file counts the rows the catalog records.
//! A file that fails any check, or whose transfer breaks off, is removed; the file appears
//! under its final name only when complete (the object store writes a staging file and
//! renames it). While a copy is written, reconciliation does not list it ([`ActiveWrites`]).

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use prost::Message;
use shardfusion_common::exchange::transport::{TaskTarget, Transport};
use shardfusion_common::storage::{DataRoot, validate_shard_file_path};
use shardfusion_common::wire::{
    CopiedFile, CopyShardFilesRequest, FileToCopy, ReadShardFileRequest, ShardFileChunk,
};
use tokio::io::AsyncWriteExt;
use tonic::Status;
use xxhash_rust::xxh3::Xxh3;

use crate::error::ExecutorError;
use crate::shard_inventory::{ActiveWrites, delete_shard_file};

/// Bytes per chunk of a file sent to a peer.
const CHUNK_BYTES: usize = 1 << 20;

/// The chunks of the shard file a peer asked for: its bytes in pieces of at most
/// [`CHUNK_BYTES`], the last one (possibly empty) carrying the checksum of them all.
pub async fn read_shard_file(
    root: &DataRoot,
    body: &[u8],
) -> Result<BoxStream<'static, Result<arrow_flight::Result, Status>>, ExecutorError> {
    let request = ReadShardFileRequest::decode(body).map_err(|e| ExecutorError::BadRequest {
        reason: format!("cannot decode ReadShardFileRequest: {e}"),
    })?;
    let path = request.path;
    let store_path = validate_shard_file_path(&path)?;
    let fail = |reason: String| ExecutorError::Copy {
        path: path.clone(),
        reason,
    };
    let source = root
        .store()
        .get(&store_path)
        .await
        .map_err(|e| fail(e.to_string()))?
        .into_stream();
    let chunk = |chunk: ShardFileChunk| {
        Ok(arrow_flight::Result {
            body: chunk.encode_to_vec().into(),
        })
    };
    let stream = futures::stream::unfold(
        (source, Xxh3::new(), false),
        move |(mut source, mut hasher, done)| {
            let path = path.clone();
            async move {
                if done {
                    return None;
                }
                match source.next().await {
                    Some(Ok(bytes)) => {
                        hasher.update(&bytes);
                        let pieces: Vec<_> = bytes
                            .chunks(CHUNK_BYTES)
                            .map(|piece| {
                                chunk(ShardFileChunk {
                                    data: piece.to_vec(),
                                    last: false,
                                    checksum: 0,
                                })
                            })
                            .collect();
                        Some((futures::stream::iter(pieces), (source, hasher, false)))
                    }
                    Some(Err(e)) => {
                        let error: Status = ExecutorError::Copy {
                            path,
                            reason: e.to_string(),
                        }
                        .into();
                        Some((
                            futures::stream::iter(vec![Err(error)]),
                            (source, hasher, true),
                        ))
                    }
                    None => {
                        let last = chunk(ShardFileChunk {
                            data: Vec::new(),
                            last: true,
                            checksum: hasher.digest(),
                        });
                        Some((futures::stream::iter(vec![last]), (source, hasher, true)))
                    }
                }
            }
        },
    )
    .flatten();
    Ok(stream.boxed())
}

/// Copies the files `request` names from its source peer into `root`, through `peers`;
/// returns them verified. On any failure every file this request copied is removed.
pub async fn copy_shard_files(
    root: &DataRoot,
    peers: &Arc<dyn Transport>,
    active_writes: &ActiveWrites,
    body: &[u8],
) -> Result<Vec<CopiedFile>, ExecutorError> {
    let request = CopyShardFilesRequest::decode(body).map_err(|e| ExecutorError::BadRequest {
        reason: format!("cannot decode CopyShardFilesRequest: {e}"),
    })?;
    let source = TaskTarget {
        url: request.source_url.clone(),
        audience: request.source_audience.clone(),
        label: request.source_label.clone(),
    };
    let mut copied = Vec::with_capacity(request.files.len());
    for file in &request.files {
        let _writing = active_writes.begin(&file.path);
        match copy_one(root, peers, &source, file).await {
            Ok(done) => copied.push(done),
            Err(e) => {
                let _ = delete_shard_file(root, &file.path).await;
                for done in &copied {
                    let _ = delete_shard_file(root, &done.path).await;
                }
                return Err(e);
            }
        }
    }
    Ok(copied)
}

/// Copies one file and verifies it (see the module docs).
async fn copy_one(
    root: &DataRoot,
    peers: &Arc<dyn Transport>,
    source: &TaskTarget,
    file: &FileToCopy,
) -> Result<CopiedFile, ExecutorError> {
    let store_path = validate_shard_file_path(&file.path)?;
    let fail = |reason: String| ExecutorError::Copy {
        path: file.path.clone(),
        reason,
    };
    let mismatch = |reason: String| ExecutorError::CopyMismatch {
        path: file.path.clone(),
        reason,
    };
    let mut chunks = peers
        .read_shard_file(source, &file.path)
        .await
        .map_err(|e| fail(format!("reading it from {}: {e}", source.label)))?;
    let mut writer = BufWriter::new(root.store(), store_path.clone());
    let mut hasher = Xxh3::new();
    let mut bytes = 0u64;
    let mut sent_checksum = None;
    let received: Result<(), ExecutorError> = async {
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk
                .map_err(|s| fail(format!("reading it from {}: {}", source.label, s.message())))?;
            hasher.update(&chunk.data);
            bytes += chunk.data.len() as u64;
            if bytes > file.byte_size {
                return Err(mismatch(format!(
                    "{} sent more than the {} bytes the catalog records",
                    source.label, file.byte_size
                )));
            }
            writer
                .write_all(&chunk.data)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if chunk.last {
                sent_checksum = Some(chunk.checksum);
                break;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = received {
        let _ = writer.abort().await;
        return Err(e);
    }
    let checksum = hasher.digest();
    let Some(sent) = sent_checksum else {
        let _ = writer.abort().await;
        return Err(fail(format!("{} ended the transfer early", source.label)));
    };
    if sent != checksum || bytes != file.byte_size {
        let _ = writer.abort().await;
        return Err(mismatch(format!(
            "the copy does not match its source: {bytes} bytes with checksum {checksum:016x}, \
             where {} has {} bytes with checksum {sent:016x}",
            source.label, file.byte_size
        )));
    }
    writer.shutdown().await.map_err(|e| fail(e.to_string()))?;
    let rows = parquet_rows(root, &store_path, bytes)
        .await
        .map_err(|e| mismatch(format!("the copy does not read as Parquet: {e}")))?;
    if u64::try_from(rows).ok() != Some(file.row_count) {
        return Err(mismatch(format!(
            "the copy holds {rows} rows where the catalog records {}",
            file.row_count
        )));
    }
    Ok(CopiedFile {
        path: file.path.clone(),
        byte_size: bytes,
        row_count: file.row_count,
        checksum,
    })
}

/// The row count the footer of the Parquet file at `path` (of `size` bytes) records.
async fn parquet_rows(
    root: &DataRoot,
    path: &object_store::path::Path,
    size: u64,
) -> Result<i64, String> {
    const TAIL: u64 = 8;
    if size < TAIL {
        return Err(format!("{size} bytes is too short"));
    }
    let store = root.store();
    let tail = store
        .get_range(path, size - TAIL..size)
        .await
        .map_err(|e| e.to_string())?;
    let tail: [u8; 8] = tail
        .as_ref()
        .try_into()
        .map_err(|_| "short read".to_string())?;
    let length = FooterTail::try_new(&tail)
        .map_err(|e| e.to_string())?
        .metadata_length() as u64;
    let start = size
        .checked_sub(TAIL + length)
        .ok_or_else(|| "its footer is longer than the file".to_string())?;
    let footer = store
        .get_range(path, start..size - TAIL)
        .await
        .map_err(|e| e.to_string())?;
    let metadata = ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| e.to_string())?;
    Ok(metadata.file_metadata().num_rows())
}
