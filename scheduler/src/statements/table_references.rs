//! The tables a statement names must exist: a missing one is refused as
//! [`CatalogError::TableNotFound`] (`NotFound`, SQLSTATE 42P01) before DataFusion plans the
//! statement, so the error's kind never depends on how DataFusion words its own.
//!
//! Names are resolved as DataFusion resolves them (the session's default catalog and
//! schema, identifiers folded to lower case unless quoted); CTE names and table functions
//! are not tables.

use datafusion::execution::session_state::SessionState;
use datafusion::sql::parser::Statement as DFStatement;
use shardfusion_catalog::CatalogError;

use crate::error::Result;

/// Refuses `statement` if a table it names does not exist in `state`.
pub fn check_tables_exist(state: &SessionState, statement: &DFStatement) -> Result<()> {
    for reference in state.resolve_table_references(statement)? {
        // A table function (`generate_series(...)`) is named like a table.
        if reference.schema().is_none() && state.table_functions().contains_key(reference.table()) {
            continue;
        }
        let exists = state
            .schema_for_ref(reference.clone())
            .is_ok_and(|schema| schema.table_exist(reference.table()));
        if !exists {
            return Err(CatalogError::TableNotFound {
                name: reference.to_string(),
            }
            .into());
        }
    }
    Ok(())
}

/// The table an `INSERT` writes to, as `snapshot` has it; `what` names the clause that needs
/// it in the error for a table-function target.
pub fn insert_target(
    insert: &datafusion::sql::sqlparser::ast::Insert,
    snapshot: &shardfusion_catalog::CatalogSnapshot,
    what: &str,
) -> Result<std::sync::Arc<shardfusion_catalog::TableMeta>> {
    let datafusion::sql::sqlparser::ast::TableObject::TableName(name) = &insert.table else {
        return Err(crate::error::SchedulerError::unsupported(format!(
            "{what} on a table function"
        )));
    };
    let table = crate::statements::ddl::table_name(name)?;
    snapshot
        .table(&table)
        .cloned()
        .ok_or_else(|| CatalogError::TableNotFound { name: table }.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;
    use datafusion::sql::parser::DFParser;

    fn check(ctx: &SessionContext, sql: &str) -> Result<()> {
        let statement = DFParser::parse_sql(sql)
            .expect("parses")
            .pop_front()
            .expect("a statement");
        check_tables_exist(&ctx.state(), &statement)
    }

    #[tokio::test]
    async fn missing_tables_are_not_found_and_ctes_are_not_tables() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE present (x int)")
            .await
            .expect("create");
        assert!(check(&ctx, "SELECT * FROM present").is_ok());
        assert!(check(&ctx, "WITH w AS (SELECT 1) SELECT * FROM w, present").is_ok());
        assert!(check(&ctx, "SELECT * FROM generate_series(1, 3)").is_ok());
        let missing = check(&ctx, "SELECT * FROM present JOIN absent ON true");
        assert!(
            matches!(
                missing,
                Err(crate::error::SchedulerError::Catalog(CatalogError::TableNotFound { ref name }))
                    if name == "absent"
            ),
            "{missing:?}"
        );
        assert!(check(&ctx, "SELECT * FROM no_schema.t").is_err());
    }
}
