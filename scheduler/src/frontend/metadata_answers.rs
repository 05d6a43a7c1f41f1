//! What Flight SQL's metadata commands answer beyond catalogs and schemas:
//! - [`tables_batch`]: `GetTables`, the tables the caller may see and the metadata views;
//! - [`sql_info`]: `GetSqlInfo` (ADBC's `adbc_get_info`, JDBC's `DatabaseMetaData`): the
//!   server's name and version, its grammar, identifier quoting, what it supports;
//! - [`xdbc_type_info`]: `GetXdbcTypeInfo` (JDBC's `DatabaseMetaData.getTypeInfo`, ODBC's
//!   `SQLGetTypeInfo`): the PostgreSQL names of the types a column can have here;
//! - [`primary_keys_schema`], [`foreign_keys_schema`]: the columns of `GetPrimaryKeys` and of
//!   `GetExportedKeys`/`GetImportedKeys`/`GetCrossReference`, as the Flight SQL protocol
//!   defines them (the rows: `primary_key_answers`, `foreign_key_answers`).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use arrow_flight::error::FlightError;
use arrow_flight::sql::{CommandGetTables, SqlInfo};
use datafusion::arrow::array::RecordBatch;
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_catalog::roles::TablePrivilege;

use crate::auth::Access;
use crate::session::statement_context::{DEFAULT_CATALOG, DEFAULT_SCHEMA};
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
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

/// What `GetSqlInfo` answers: the server, its grammar and what it supports.
pub fn sql_info() -> &'static SqlInfoData {
    static INFO: OnceLock<SqlInfoData> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut builder = SqlInfoDataBuilder::new();
        builder.append(SqlInfo::FlightSqlServerName, "ShardFusion");
        builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        builder.append(SqlInfo::FlightSqlServerArrowVersion, "59");
        builder.append(SqlInfo::FlightSqlServerReadOnly, false);
        builder.append(SqlInfo::FlightSqlServerSql, true);
        builder.append(SqlInfo::FlightSqlServerSubstrait, false);
        // BeginTransaction/EndTransaction are served, but not advertised: ADBC's DB-API
        // defaults to autocommit off, so advertising them would put every existing script's
        // writes in a transaction that rolls back at close unless committed, and its bulk
        // ingest does not send the transaction id (it would not see tables made in it). SQL's
        // BEGIN in a session covers ADBC (SqlSupportedTransaction::None).
        builder.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        builder.append(SqlInfo::FlightSqlServerCancel, false);
        builder.append(SqlInfo::FlightSqlServerBulkIngestion, true);
        builder.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, true);
        builder.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
        builder.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
        // The grammar: PostgreSQL's, on DataFusion.
        builder.append(SqlInfo::SqlDdlCatalog, false);
        builder.append(SqlInfo::SqlDdlSchema, false);
        builder.append(SqlInfo::SqlDdlTable, true);
        // Unquoted identifiers fold to lower case, as in PostgreSQL (SqlCaseSensitivityLowercase).
        builder.append(SqlInfo::SqlIdentifierCase, 3i32);
        builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        builder.append(SqlInfo::SqlQuotedIdentifierCase, 1i32);
        builder.append(SqlInfo::SqlAllTablesAreSelectable, false);
        // NULLs sort after other values ascending (SqlNullsSortedHigh).
        builder.append(SqlInfo::SqlNullOrdering, 0i32);
        builder.append(SqlInfo::SqlSearchStringEscape, "\\");
        builder.append(SqlInfo::SqlSupportsColumnAliasing, true);
        builder.append(SqlInfo::SqlNullPlusNullIsNull, true);
        builder.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
        builder.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
        builder.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
        builder.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
        // GROUP BY columns beyond and unrelated to the select list (bits 0 and 1).
        builder.append(SqlInfo::SqlSupportedGroupBy, 0b11i32);
        builder.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
        builder.append(SqlInfo::SqlSupportsNonNullableColumns, true);
        // The core grammar and ANSI-92 entry level (bit masks).
        builder.append(SqlInfo::SqlSupportedGrammar, 0b10i32);
        builder.append(SqlInfo::SqlAnsi92SupportedLevel, 0b1i32);
        builder.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
        // Full outer joins (SqlFullOuterJoins).
        builder.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32);
        builder.append(SqlInfo::SqlSchemaTerm, "schema");
        builder.append(SqlInfo::SqlCatalogTerm, "database");
        builder.append(SqlInfo::SqlProcedureTerm, "function");
        builder.append(SqlInfo::SqlCatalogAtStart, true);
        builder.append(SqlInfo::SqlSelectForUpdateSupported, false);
        builder.append(SqlInfo::SqlStoredProceduresSupported, false);
        // Subqueries in comparisons, EXISTS, IN and quantified comparisons (bits 0-3).
        builder.append(SqlInfo::SqlSupportedSubqueries, 0b1111i32);
        builder.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
        // UNION and UNION ALL (bits 0 and 1).
        builder.append(SqlInfo::SqlSupportedUnions, 0b11i32);
        builder.append(SqlInfo::SqlTransactionsSupported, false);
        builder.append(SqlInfo::SqlBatchUpdatesSupported, true);
        builder.append(SqlInfo::SqlSavepointsSupported, false);
        builder.append(SqlInfo::SqlNamedParametersSupported, false);
        builder.append(
            SqlInfo::SqlKeywords,
            &[
                "distributed",
                "reference",
                "colocate_with",
                "shard_count",
                "explain",
                "analyze",
            ][..],
        );
        builder.build().expect("static SQL info is valid")
    })
}

/// The answer to `GetTables`: as PostgreSQL's `information_schema`, the tables the caller
/// holds a privilege on, then the metadata views (`pg_dist_*`, `citus_*`, ...).
pub fn tables_batch(
    snapshot: &CatalogSnapshot,
    access: &Access<'_>,
    query: CommandGetTables,
) -> Result<RecordBatch, FlightError> {
    let mut builder = query.into_builder();
    let visible = snapshot.tables.values().filter(|t| {
        TablePrivilege::ALL
            .into_iter()
            .any(|p| access.has_table_privilege(&t.name, p))
    });
    for table in visible {
        builder.append(
            DEFAULT_CATALOG,
            DEFAULT_SCHEMA,
            &table.name,
            "TABLE",
            &table.schema,
        )?;
    }
    for meta in shardfusion_catalog::metadata_tables::MetadataTable::ALL {
        builder.append(
            DEFAULT_CATALOG,
            DEFAULT_SCHEMA,
            meta.name(),
            "VIEW",
            &meta.schema(),
        )?;
    }
    builder.build()
}
