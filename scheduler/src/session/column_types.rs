//! PostgreSQL column types DataFusion's SQL has no type for, as a `CREATE TABLE` or `ALTER
//! TABLE ... ADD COLUMN` declares them: `json`, `jsonb`, `uuid`, `inet`, `cidr` become text
//! columns, and `varchar(n)`/`char(n)` keep their length, each recorded in the column's
//! field metadata ([`PgType`]) so that writes check their values. Casts to those types
//! (`'{}'::jsonb`) become casts to text ([`crate::statements::sql_rewrite`]).

use datafusion::arrow::datatypes::Field;
use datafusion::sql::sqlparser::ast::{CharacterLength, ColumnDef, DataType};
use shardfusion_common::pg_types::PgType;

use crate::error::{Result, SchedulerError};

/// The PostgreSQL type `data_type` stands for, if it is one stored as text.
pub fn pg_type_of(data_type: &DataType) -> Option<PgType> {
    let length = |length: &Option<CharacterLength>| match length {
        Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
        _ => None,
    };
    Some(match data_type {
        DataType::JSON => PgType::Json,
        DataType::JSONB => PgType::Jsonb,
        DataType::Uuid => PgType::Uuid,
        DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            match name.to_string().to_ascii_lowercase().as_str() {
                "inet" => PgType::Inet,
                "cidr" => PgType::Cidr,
                _ => return None,
            }
        }
        DataType::Varchar(n)
        | DataType::CharacterVarying(n)
        | DataType::CharVarying(n)
        | DataType::Nvarchar(n) => PgType::VarChar(length(n)?),
        DataType::Char(n) | DataType::Character(n) => PgType::Char(length(n).unwrap_or(1)),
        _ => return None,
    })
}

/// Turns the columns of such types into text columns; returns each one's name (as the
/// column will be called) and type, for [`declare`]. A type whose values cannot be stored
/// in shard files yet (`interval`) is refused here rather than at the first write.
pub fn text_columns(columns: &mut [ColumnDef]) -> Result<Vec<(String, PgType)>> {
    let mut declared = Vec::new();
    for column in columns.iter() {
        if matches!(column.data_type, DataType::Interval { .. }) {
            return Err(SchedulerError::unsupported(format!(
                "interval columns (\"{}\"): store the interval as a number of seconds, or as \
                 text",
                column.name.value
            )));
        }
    }
    for column in columns {
        if let Some(pg_type) = pg_type_of(&column.data_type) {
            column.data_type = DataType::Text;
            let name = match column.name.quote_style {
                Some(_) => column.name.value.clone(),
                None => column.name.value.to_ascii_lowercase(),
            };
            declared.push((name, pg_type));
        }
    }
    Ok(declared)
}

/// `fields` with the types [`text_columns`] found recorded in their metadata.
pub fn declare(fields: Vec<Field>, declared: &[(String, PgType)]) -> Vec<Field> {
    fields
        .into_iter()
        .map(
            |field| match declared.iter().find(|(name, _)| name == field.name()) {
                Some((_, pg_type)) => pg_type.declare(field),
                None => field,
            },
        )
        .collect()
}
