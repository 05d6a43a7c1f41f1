//! Server-side `COPY table [(columns)] FROM '/absolute/path' WITH (FORMAT ..., HEADER ...,
//! DELIMITER '...', NULL '...')`.
//!
//! The file is read on the coordinator, as PostgreSQL's server-side COPY reads on the server,
//! and only under the directories granted with `--allow-file-access` ([`FileAccess`]).
//! Formats: `parquet` (columns matched by name, else by position), `csv` and `text` (columns
//! by position; `text` is tab-separated with `\N` for NULL). A line ending in one extra empty
//! field (TPC-H's `.tbl` files) is accepted. The rows go through the same all-or-nothing
//! [`TableWriter`] as INSERT.

use std::io::BufRead;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions};
use datafusion::sql::sqlparser::ast::{CopyLegacyOption, CopyOption, CopySource, CopyTarget};

use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::session::statement_context::file_session_for;
use crate::statements::ddl::table_name;
use crate::statements::file_access::{Access, FileAccess};
use crate::write::conform::{Conformer, MatchBy};
use crate::write::table_writer::TableWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Csv,
    Text,
}

struct CopyOptions {
    format: Option<Format>,
    header: bool,
    delimiter: Option<char>,
    null: Option<String>,
    quote: Option<char>,
}

fn parse_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyOptions> {
    let mut out = CopyOptions {
        format: None,
        header: false,
        delimiter: None,
        null: None,
        quote: None,
    };
    for option in options {
        match option {
            CopyOption::Format(name) => {
                out.format = Some(match name.value.to_ascii_lowercase().as_str() {
                    "parquet" => Format::Parquet,
                    "csv" => Format::Csv,
                    "text" => Format::Text,
                    other => {
                        return Err(SchedulerError::invalid(format!(
                            "COPY format \"{other}\" is not recognized (use parquet, csv or text)"
                        )));
                    }
                });
            }
            CopyOption::Header(h) => out.header = *h,
            CopyOption::Delimiter(d) => out.delimiter = Some(*d),
            CopyOption::Null(n) => out.null = Some(n.clone()),
            CopyOption::Quote(q) => out.quote = Some(*q),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => {
                return Err(SchedulerError::unsupported(format!("COPY option {other}")));
            }
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Csv(_) => out.format = Some(Format::Csv),
            CopyLegacyOption::Header => out.header = true,
            CopyLegacyOption::Delimiter(d) => out.delimiter = Some(*d),
            CopyLegacyOption::Null(n) => out.null = Some(n.clone()),
            other => {
                return Err(SchedulerError::unsupported(format!("COPY option {other}")));
            }
        }
    }
    Ok(out)
}

pub async fn copy_from(
    coordinator: &Coordinator,
    source: &CopySource,
    target: &CopyTarget,
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<StatementOutput> {
    let CopySource::Table {
        table_name: name,
        columns,
    } = source
    else {
        return Err(SchedulerError::invalid(
            "COPY FROM needs a table, not a query",
        ));
    };
    let CopyTarget::File { filename } = target else {
        return Err(SchedulerError::unsupported(
            "COPY FROM STDIN or PROGRAM; use COPY FROM '/absolute/path' or Flight SQL bulk ingest",
        ));
    };
    let name = table_name(name)?;
    let cluster = coordinator.cluster();
    let snapshot = crate::session::transaction::statement_snapshot(cluster)?;
    let table = snapshot
        .table(&name)
        .cloned()
        .ok_or_else(|| shardfusion_catalog::CatalogError::TableNotFound { name: name.clone() })?;
    let canonical = cluster.file_access.check(filename, Access::Read)?;
    if !canonical.is_file() {
        return Err(SchedulerError::invalid(format!(
            "could not open file \"{filename}\" for reading: not a regular file"
        )));
    }
    // From here on only the checked, canonical path is used.
    let filename = &canonical.display().to_string();
    let path = canonical.as_path();
    let options = parse_options(options, legacy)?;
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let format = options.format.unwrap_or(match extension.as_str() {
        "parquet" => Format::Parquet,
        "csv" | "tbl" => Format::Csv,
        _ => Format::Text,
    });

    // The table columns the file provides, in file order.
    let file_columns: Vec<Field> = if columns.is_empty() {
        table
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect()
    } else {
        columns
            .iter()
            .map(|c| {
                let wanted = c.value.to_ascii_lowercase();
                table
                    .schema
                    .fields()
                    .iter()
                    .find(|f| f.name() == &c.value || f.name() == &wanted)
                    .map(|f| f.as_ref().clone())
                    .ok_or_else(|| {
                        SchedulerError::from(shardfusion_catalog::CatalogError::ColumnNotFound {
                            table: name.clone(),
                            column: c.value.clone(),
                        })
                    })
            })
            .collect::<Result<_>>()?
    };

    let ctx = file_session_for(cluster, Arc::clone(&snapshot))?;
    let (frame, match_by) = match format {
        Format::Parquet => {
            let options = ParquetReadOptions::default().file_extension(if extension.is_empty() {
                ""
            } else {
                filename.rsplit('.').next().unwrap_or("")
            });
            let frame = ctx.read_parquet(filename.as_str(), options).await?;
            let by = if columns.is_empty() {
                let names_match = frame.schema().fields().iter().all(|f| {
                    table
                        .schema
                        .fields()
                        .iter()
                        .any(|t| t.name().eq_ignore_ascii_case(f.name()))
                });
                if names_match {
                    MatchBy::Name
                } else {
                    MatchBy::Position
                }
            } else {
                MatchBy::Position
            };
            (frame, by)
        }
        Format::Csv | Format::Text => {
            let delimiter =
                options
                    .delimiter
                    .unwrap_or(if format == Format::Text { '\t' } else { ',' });
            if !delimiter.is_ascii() {
                return Err(SchedulerError::invalid(
                    "COPY delimiter must be a single ASCII character",
                ));
            }
            let null = options.null.clone().unwrap_or_else(|| {
                if format == Format::Text {
                    "\\N".into()
                } else {
                    String::new()
                }
            });
            let trailing =
                has_trailing_delimiter(path, delimiter, options.header, file_columns.len());
            let mut read_fields: Vec<Field> = file_columns
                .iter()
                .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                .collect();
            if trailing {
                read_fields.push(Field::new(
                    "shardfusion_trailing_field",
                    DataType::Utf8,
                    true,
                ));
            }
            let read_schema = Schema::new(read_fields);
            let ext = format!(".{}", filename.rsplit('.').next().unwrap_or(""));
            let null_regex = Some(format!("^{}$", regex::escape(&null)));
            let mut csv = CsvReadOptions::new()
                .has_header(options.header)
                .delimiter(delimiter as u8)
                .schema(&read_schema)
                .file_extension(if extension.is_empty() {
                    ""
                } else {
                    ext.as_str()
                })
                .null_regex(null_regex);
            if let Some(q) = options.quote {
                csv = csv.quote(q as u8);
            } else if format == Format::Text {
                csv = csv.quote(0x1f);
            }
            let mut frame = ctx.read_csv(filename.as_str(), csv).await?;
            if trailing {
                frame = frame.drop_columns(&["shardfusion_trailing_field"])?;
            }
            (frame, MatchBy::Position)
        }
    };
    let input: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let provided: SchemaRef = Arc::new(Schema::new(file_columns.clone()));
    // Map file columns → the provided table columns, then provided → full table.
    let to_provided = Conformer::try_new(&name, Arc::clone(&provided), &input, match_by)?;
    let defaults = cluster.default_expressions.physical(&table)?;
    let to_table = Conformer::with_defaults(
        &name,
        Arc::clone(&table.schema),
        &provided,
        MatchBy::Name,
        &defaults,
    )?;
    let stream = frame.execute_stream().await?;
    let writer = TableWriter::for_table(Arc::clone(cluster), Arc::clone(&snapshot), &table)?;
    let written = writer
        .write_all(stream, |batch| to_table.apply(to_provided.apply(batch)?))
        .await?;
    let rows = written.commit(cluster, &snapshot, &name).await?;
    Ok(StatementOutput::count(rows))
}

/// Whether data lines end with one extra, empty field (`a|b|c|`).
fn has_trailing_delimiter(
    path: &std::path::Path,
    delimiter: char,
    header: bool,
    columns: usize,
) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut lines = std::io::BufReader::new(file).lines();
    if header {
        let _ = lines.next();
    }
    match lines.next() {
        Some(Ok(line)) => {
            let line = line.trim_end_matches('\r');
            line.ends_with(delimiter) && line.split(delimiter).count() == columns + 1
        }
        _ => false,
    }
}

/// The path `COPY (query) TO target` may write, canonical, if [`FileAccess`] grants it.
/// Object-store URLs other than `file://` are not reachable from the coordinator.
pub fn checked_copy_target(access: &FileAccess, target: &str) -> Result<String> {
    let path = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => rest,
        Some((scheme, _)) => {
            return Err(SchedulerError::unsupported(format!(
                "COPY TO a {scheme}:// URL (only files under --allow-file-access directories)"
            )));
        }
        None => target,
    };
    let canonical = access.check(path, Access::Write)?;
    let mut checked = canonical.display().to_string();
    // DataFusion writes a directory of files when the target ends with '/'.
    if path.ends_with('/') && !checked.ends_with('/') {
        checked.push('/');
    }
    Ok(checked)
}
