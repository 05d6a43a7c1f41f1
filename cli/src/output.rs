//! Printing query results as a table, CSV or JSON.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Renders `batches` in `format`; a statement without columns renders as `OK`.
pub fn render(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<String, String> {
    if schema.fields().is_empty() {
        return Ok("OK".to_string());
    }
    match format {
        Format::Table => {
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let table = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                    schema.clone(),
                )])
            } else {
                arrow::util::pretty::pretty_format_batches(batches)
            }
            .map_err(|e| e.to_string())?;
            Ok(format!(
                "{table}\n({rows} row{})",
                if rows == 1 { "" } else { "s" }
            ))
        }
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if batches.is_empty() {
                    writer
                        .write(&RecordBatch::new_empty(schema.clone()))
                        .map_err(|e| e.to_string())?;
                }
                for batch in batches {
                    writer.write(batch).map_err(|e| e.to_string())?;
                }
            }
            String::from_utf8(out)
                .map(|s| s.trim_end().to_string())
                .map_err(|e| e.to_string())
        }
        Format::Json => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::json::ArrayWriter::new(&mut out);
                for batch in batches {
                    writer.write(batch).map_err(|e| e.to_string())?;
                }
                writer.finish().map_err(|e| e.to_string())?;
            }
            let text = String::from_utf8(out).map_err(|e| e.to_string())?;
            Ok(if text.is_empty() {
                "[]".to_string()
            } else {
                text
            })
        }
    }
}
