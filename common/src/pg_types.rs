//! [`PgType`]: PostgreSQL column types Arrow has no type of its own for, and the checks their
//! values pass when they are written.
//!
//! `json`, `jsonb`, `uuid`, `inet` and `cidr` columns are stored as text (`Utf8`) and
//! `varchar(n)`/`char(n)` as text with a length limit; the PostgreSQL type is kept in the
//! column's Arrow field metadata ([`PG_TYPE`]), which travels with the table's schema (the
//! catalog, plans, Parquet files). Every write — `INSERT`, `COPY`, bulk ingest on the
//! coordinator, an `UPDATE`'s rewrite on a worker — checks the values with
//! [`check_values`], failing as PostgreSQL does: `22P02` (invalid input syntax) for a value
//! that is not of the type, `22001` for text longer than its column allows — and stores each in
//! PostgreSQL's canonical text form ([`PgType::canonical`]: a `uuid` in lower case with
//! hyphens, a `jsonb` as PostgreSQL prints it, an `inet` as PostgreSQL prints it), so that
//! equal values compare equal. Casts to these types (`'...'::jsonb`) go through the same
//! conversion ([`register_casts`]).

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use tonic::Status;

use crate::status::with_sqlstate;

/// The field-metadata key holding a column's PostgreSQL type.
pub const PG_TYPE: &str = "shardfusion.pg_type";

/// A PostgreSQL type stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgType {
    Json,
    Jsonb,
    Uuid,
    Inet,
    Cidr,
    /// `varchar(n)`: at most n characters.
    VarChar(u64),
    /// `char(n)`: at most n characters (trailing spaces aside).
    Char(u64),
}

impl PgType {
    /// The type as PostgreSQL names it (`information_schema`, error messages).
    pub fn sql_name(self) -> String {
        match self {
            Self::Json => "json".into(),
            Self::Jsonb => "jsonb".into(),
            Self::Uuid => "uuid".into(),
            Self::Inet => "inet".into(),
            Self::Cidr => "cidr".into(),
            Self::VarChar(n) => format!("character varying({n})"),
            Self::Char(n) => format!("character({n})"),
        }
    }

    fn metadata_value(self) -> String {
        match self {
            Self::VarChar(n) => format!("varchar({n})"),
            Self::Char(n) => format!("char({n})"),
            other => other.sql_name(),
        }
    }

    fn parse(value: &str) -> Option<Self> {
        let length = |prefix: &str| {
            value
                .strip_prefix(prefix)?
                .strip_suffix(')')?
                .parse::<u64>()
                .ok()
        };
        Some(match value {
            "json" => Self::Json,
            "jsonb" => Self::Jsonb,
            "uuid" => Self::Uuid,
            "inet" => Self::Inet,
            "cidr" => Self::Cidr,
            _ => {
                if let Some(n) = length("varchar(") {
                    Self::VarChar(n)
                } else {
                    Self::Char(length("char(")?)
                }
            }
        })
    }

    /// The PostgreSQL type `field` was declared with, if one of these.
    pub fn of_field(field: &Field) -> Option<Self> {
        field.metadata().get(PG_TYPE).and_then(|v| Self::parse(v))
    }

    /// `field` (text) declared as this type.
    pub fn declare(self, field: Field) -> Field {
        let mut metadata = field.metadata().clone();
        metadata.insert(PG_TYPE.to_string(), self.metadata_value());
        field.with_data_type(DataType::Utf8).with_metadata(metadata)
    }

    /// `value` in the type's canonical text form (checked as [`Self::check`] does).
    pub fn canonical(self, value: &str) -> Result<Option<String>, (String, &'static str)> {
        self.check(value)?;
        Ok(match self {
            Self::Jsonb => serde_json::from_str::<serde_json::Value>(value)
                .ok()
                .map(|v| crate::json_functions::jsonb_text(&v)),
            Self::Uuid => uuid::Uuid::parse_str(value.trim())
                .ok()
                .map(|u| u.hyphenated().to_string()),
            Self::Inet | Self::Cidr => parse_network(value).map(|(address, prefix)| {
                let full = if address.is_ipv4() { 32 } else { 128 };
                match prefix {
                    Some(prefix) if prefix != full || self == Self::Cidr => {
                        format!("{address}/{prefix}")
                    }
                    _ if self == Self::Cidr => format!("{address}/{full}"),
                    _ => address.to_string(),
                }
            }),
            _ => None,
        })
    }

    /// Whether `value` is a value of this type; the error is PostgreSQL's message and
    /// SQLSTATE.
    fn check(self, value: &str) -> Result<(), (String, &'static str)> {
        let invalid = || {
            (
                format!(
                    "invalid input syntax for type {}: \"{}\"",
                    self.sql_name(),
                    shortened(value)
                ),
                "22P02",
            )
        };
        let too_long = || {
            (
                format!("value too long for type {}", self.sql_name()),
                "22001",
            )
        };
        match self {
            Self::Json | Self::Jsonb => serde_json::from_str::<serde::de::IgnoredAny>(value)
                .map(|_| ())
                .map_err(|_| invalid()),
            Self::Uuid => uuid::Uuid::parse_str(value.trim())
                .map(|_| ())
                .map_err(|_| invalid()),
            Self::Inet => parse_network(value).map(|_| ()).ok_or_else(invalid),
            Self::Cidr => match parse_network(value) {
                Some((address, Some(prefix))) if host_bits_zero(address, prefix) => Ok(()),
                Some((_, Some(_))) => Err((
                    format!(
                        "invalid cidr value: \"{}\": it has bits set to the right of its mask",
                        shortened(value)
                    ),
                    "22P02",
                )),
                Some((_, None)) => Ok(()),
                None => Err(invalid()),
            },
            Self::VarChar(n) if value.chars().count() as u64 > n => Err(too_long()),
            Self::Char(n) if value.trim_end_matches(' ').chars().count() as u64 > n => {
                Err(too_long())
            }
            Self::VarChar(_) | Self::Char(_) => Ok(()),
        }
    }
}

/// `address` or `address/prefix`, with the prefix within the address's size.
fn parse_network(value: &str) -> Option<(IpAddr, Option<u8>)> {
    let value = value.trim();
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
        None => (value, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    match prefix {
        Some(prefix) if prefix > bits => None,
        prefix => Some((address, prefix)),
    }
}

fn host_bits_zero(address: IpAddr, prefix: u8) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            u32::from(v4) & host == 0
        }
        IpAddr::V6(v6) => {
            let host = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            u128::from(v6) & host == 0
        }
    }
}

fn shortened(value: &str) -> String {
    const SHOWN: usize = 60;
    if value.chars().count() <= SHOWN {
        value.to_string()
    } else {
        format!("{}...", value.chars().take(SHOWN).collect::<String>())
    }
}

/// `batch` (rows of `table`, with `schema`'s columns) with the values of every column
/// declared with a [`PgType`] checked and in canonical form; the first bad value fails with
/// PostgreSQL's message (naming the column) and SQLSTATE.
pub fn conform_values(
    table: &str,
    schema: &Schema,
    batch: RecordBatch,
) -> Result<RecordBatch, Status> {
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for (field, column) in schema.fields().iter().zip(columns.iter_mut()) {
        let Some(pg_type) = PgType::of_field(field) else {
            continue;
        };
        let text = match column.data_type() {
            DataType::Utf8 => Arc::clone(column),
            _ => arrow::compute::cast(column, &DataType::Utf8)
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
        };
        let text = text.as_string::<i32>();
        let mut canonical: Vec<Option<String>> = Vec::with_capacity(text.len());
        let mut rewritten = false;
        for value in text.iter() {
            let Some(value) = value else {
                canonical.push(None);
                continue;
            };
            match pg_type.canonical(value) {
                Ok(Some(form)) => {
                    rewritten |= form != value;
                    canonical.push(Some(form));
                }
                Ok(None) => canonical.push(Some(value.to_string())),
                Err((message, sqlstate)) => {
                    return Err(with_sqlstate(
                        Status::invalid_argument(format!(
                            "{message} (column \"{}\" of relation \"{table}\")",
                            field.name()
                        )),
                        sqlstate,
                    ));
                }
            }
        }
        if rewritten {
            let array = arrow::array::StringArray::from(canonical);
            *column = arrow::compute::cast(&array, column.data_type())
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            changed = true;
        }
    }
    if !changed {
        return Ok(batch);
    }
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| Status::internal(e.to_string()))
}

/// Registers `jsonb_in`, `json_in`, `uuid_in`, `inet_in`, `cidr_in`: a text checked and put in
/// its type's canonical form, which a cast to the type is planned as.
pub fn register_casts(
    registry: &mut dyn datafusion::execution::FunctionRegistry,
) -> datafusion::common::Result<()> {
    for pg_type in [
        PgType::Json,
        PgType::Jsonb,
        PgType::Uuid,
        PgType::Inet,
        PgType::Cidr,
    ] {
        registry.register_udf(Arc::new(datafusion::logical_expr::ScalarUDF::from(
            CastTo {
                name: format!("{}_in", pg_type.sql_name()),
                pg_type,
                signature: datafusion::logical_expr::Signature::exact(
                    vec![DataType::Utf8],
                    datafusion::logical_expr::Volatility::Immutable,
                ),
            },
        )))?;
    }
    Ok(())
}

/// A cast of text to a [`PgType`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct CastTo {
    name: String,
    pg_type: PgType,
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for CastTo {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::common::Result<datafusion::logical_expr::ColumnarValue> {
        let scalar = matches!(
            args.args[0],
            datafusion::logical_expr::ColumnarValue::Scalar(_)
        );
        let arrays = datafusion::logical_expr::ColumnarValue::values_to_arrays(&args.args)?;
        let text = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let mut out: Vec<Option<String>> = Vec::with_capacity(text.len());
        for value in text.as_string::<i32>().iter() {
            out.push(match value {
                None => None,
                Some(value) => match self.pg_type.canonical(value) {
                    Ok(form) => Some(form.unwrap_or_else(|| value.to_string())),
                    Err((message, sqlstate)) => {
                        return Err(crate::status::from_status(with_sqlstate(
                            Status::invalid_argument(message),
                            sqlstate,
                        )));
                    }
                },
            });
        }
        let array: arrow::array::ArrayRef = Arc::new(arrow::array::StringArray::from(out));
        if scalar {
            return Ok(datafusion::logical_expr::ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&array, 0)?,
            ));
        }
        Ok(datafusion::logical_expr::ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    fn batch_of(pg_type: PgType, values: &[&str]) -> (Schema, RecordBatch) {
        let schema = Schema::new(vec![pg_type.declare(Field::new("c", DataType::Utf8, true))]);
        let batch = RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![Arc::new(StringArray::from(values.to_vec()))],
        )
        .expect("batch");
        (schema, batch)
    }

    fn refusal(pg_type: PgType, values: &[&str]) -> Option<(String, String)> {
        let (schema, batch) = batch_of(pg_type, values);
        conform_values("t", &schema, batch).err().map(|status| {
            let state = status.metadata().get(crate::status::SQLSTATE_METADATA);
            let state = state.and_then(|v| v.to_str().ok()).unwrap_or_default();
            (status.message().to_string(), state.to_string())
        })
    }

    #[test]
    fn good_values_pass_and_bad_ones_fail_as_postgresql_says() {
        assert_eq!(
            refusal(PgType::Jsonb, &[r#"{"a": [1, 2]}"#, "3", "null"]),
            None
        );
        let (message, state) = refusal(PgType::Jsonb, &["{oops"]).expect("refused");
        assert_eq!(state, "22P02");
        assert!(
            message.contains("type jsonb") && message.contains("\"c\""),
            "{message}"
        );
        assert_eq!(
            refusal(PgType::Uuid, &["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),
            None
        );
        assert!(refusal(PgType::Uuid, &["not-a-uuid"]).is_some());
        assert_eq!(
            refusal(PgType::Inet, &["10.1.2.3", "10.0.0.0/8", "::1"]),
            None
        );
        assert!(refusal(PgType::Inet, &["10.0.0.300"]).is_some());
        assert!(refusal(PgType::Inet, &["10.0.0.1/33"]).is_some());
        assert_eq!(
            refusal(PgType::Cidr, &["10.0.0.0/8", "2001:db8::/32"]),
            None
        );
        let (message, _) = refusal(PgType::Cidr, &["10.0.0.1/8"]).expect("host bits");
        assert!(message.contains("right of its mask"), "{message}");
        assert_eq!(refusal(PgType::VarChar(3), &["abc", "é€x"]), None);
        let (message, state) = refusal(PgType::VarChar(3), &["abcd"]).expect("too long");
        assert_eq!(state, "22001");
        assert!(message.contains("character varying(3)"), "{message}");
        assert_eq!(refusal(PgType::Char(2), &["ab   "]), None);
        assert!(refusal(PgType::Char(2), &["abc"]).is_some());
    }

    #[test]
    fn the_type_survives_the_field_metadata() {
        for pg_type in [
            PgType::Json,
            PgType::Jsonb,
            PgType::Uuid,
            PgType::Inet,
            PgType::Cidr,
            PgType::VarChar(20),
            PgType::Char(1),
        ] {
            let field = pg_type.declare(Field::new("c", DataType::Utf8, true));
            assert_eq!(PgType::of_field(&field), Some(pg_type));
        }
        assert_eq!(
            PgType::of_field(&Field::new("c", DataType::Utf8, true)),
            None
        );
    }
}
