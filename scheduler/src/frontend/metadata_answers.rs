//! What Flight SQL's metadata commands answer beyond catalogs, schemas and tables:
//! - [`xdbc_type_info`]: `GetXdbcTypeInfo` (JDBC's `DatabaseMetaData.getTypeInfo`, ODBC's
//!   `SQLGetTypeInfo`): the PostgreSQL names of the types a column can have here;
//! - [`primary_keys_schema`], [`foreign_keys_schema`]: the columns of `GetPrimaryKeys` and of
//!   `GetExportedKeys`/`GetImportedKeys`/`GetCrossReference`, as the Flight SQL protocol
//!   defines them. Tables have no keys yet (the SQL-surface issue adds them), so these
//!   commands answer with no rows.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use arrow_flight::sql::metadata::{XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{Nullable, Searchable, XdbcDataType, XdbcDatetimeSubcode};

/// One type: its name, XDBC code, precision (bits or characters) and quoting.
struct SqlType {
    name: &'static str,
    code: XdbcDataType,
    column_size: Option<i32>,
    quoted: bool,
    radix: Option<i32>,
    subcode: Option<XdbcDatetimeSubcode>,
}

const TYPES: &[SqlType] = &[
    SqlType {
        name: "boolean",
        code: XdbcDataType::XdbcBit,
        column_size: Some(1),
        quoted: false,
        radix: None,
        subcode: None,
    },
    SqlType {
        name: "smallint",
        code: XdbcDataType::XdbcSmallint,
        column_size: Some(16),
        quoted: false,
        radix: Some(2),
        subcode: None,
    },
    SqlType {
        name: "integer",
        code: XdbcDataType::XdbcInteger,
        column_size: Some(32),
        quoted: false,
        radix: Some(2),
        subcode: None,
    },
    SqlType {
        name: "bigint",
        code: XdbcDataType::XdbcBigint,
        column_size: Some(64),
        quoted: false,
        radix: Some(2),
        subcode: None,
    },
    SqlType {
        name: "real",
        code: XdbcDataType::XdbcReal,
        column_size: Some(24),
        quoted: false,
        radix: Some(2),
        subcode: None,
    },
    SqlType {
        name: "double precision",
        code: XdbcDataType::XdbcDouble,
        column_size: Some(53),
        quoted: false,
        radix: Some(2),
        subcode: None,
    },
    SqlType {
        name: "numeric",
        code: XdbcDataType::XdbcDecimal,
        column_size: Some(38),
        quoted: false,
        radix: Some(10),
        subcode: None,
    },
    SqlType {
        name: "text",
        code: XdbcDataType::XdbcVarchar,
        column_size: None,
        quoted: true,
        radix: None,
        subcode: None,
    },
    SqlType {
        name: "bytea",
        code: XdbcDataType::XdbcVarbinary,
        column_size: None,
        quoted: true,
        radix: None,
        subcode: None,
    },
    SqlType {
        name: "date",
        code: XdbcDataType::XdbcDate,
        column_size: Some(10),
        quoted: true,
        radix: None,
        // ODBC's SQL_CODE_DATE (1), which Flight SQL names after its other meaning.
        subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
    },
    SqlType {
        name: "time",
        code: XdbcDataType::XdbcTime,
        column_size: Some(15),
        quoted: true,
        radix: None,
        subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
    },
    SqlType {
        name: "timestamp",
        code: XdbcDataType::XdbcTimestamp,
        column_size: Some(26),
        quoted: true,
        radix: None,
        subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
    },
];

/// Every type, built once.
pub fn xdbc_type_info() -> &'static XdbcTypeInfoData {
    static INFO: OnceLock<XdbcTypeInfoData> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut builder = XdbcTypeInfoDataBuilder::new();
        for t in TYPES {
            let quote = t.quoted.then(|| "'".to_string());
            builder.append(XdbcTypeInfo {
                type_name: t.name.to_string(),
                data_type: t.code,
                column_size: t.column_size,
                literal_prefix: quote.clone(),
                literal_suffix: quote,
                create_params: (t.code == XdbcDataType::XdbcDecimal)
                    .then(|| vec!["precision".to_string(), "scale".to_string()]),
                nullable: Nullable::NullabilityNullable,
                case_sensitive: t.code == XdbcDataType::XdbcVarchar,
                searchable: Searchable::Full,
                unsigned_attribute: t.radix.map(|_| false),
                fixed_prec_scale: false,
                auto_increment: Some(false),
                local_type_name: Some(t.name.to_string()),
                minimum_scale: None,
                maximum_scale: (t.code == XdbcDataType::XdbcDecimal).then_some(38),
                sql_data_type: t.code,
                datetime_subcode: t.subcode,
                num_prec_radix: t.radix,
                interval_precision: None,
            });
        }
        builder
            .build()
            .expect("the type list is a valid XDBC type table")
    })
}

/// The columns of a `GetPrimaryKeys` answer.
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// The columns of a `GetExportedKeys`, `GetImportedKeys` or `GetCrossReference` answer.
pub fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}
