//! What an `INSERT` becomes before it is planned: its `RETURNING` list taken off
//! ([`insert_returning`]), `DEFAULT` in its rows replaced by the columns' defaults, an `ON
//! CONFLICT ... DO UPDATE` split off ([`on_conflict::take_do_update`]) and `DO NOTHING`
//! rewritten ([`on_conflict::rewrite_do_nothing`]).

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use shardfusion_catalog::CatalogSnapshot;

use crate::auth::Access;
use crate::error::Result;
use crate::session::column_defaults;
use crate::statements::{insert_returning, on_conflict};

/// Takes an `INSERT`'s `RETURNING` list off it ([`insert_returning`]).
pub fn take_returning(
    statement: &mut DFStatement,
    access: &Access<'_>,
    snapshot: &CatalogSnapshot,
) -> Result<Option<insert_returning::Returning>> {
    match statement {
        DFStatement::Statement(inner) => match inner.as_mut() {
            Statement::Insert(insert) => insert_returning::take_returning(insert, access, snapshot),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// What an `INSERT` becomes before it is planned: `DEFAULT` in its rows stands for the
/// column's default, `ON CONFLICT ... DO UPDATE` is split off (returned, to run first, with
/// `returning` as its list) and `ON CONFLICT ... DO NOTHING` keeps only the rows without a
/// stored key.
pub fn rewrite_insert(
    statement: &mut DFStatement,
    snapshot: &CatalogSnapshot,
    returning: Option<&insert_returning::Returning>,
) -> Result<Option<on_conflict::Upsert>> {
    let mut upsert = None;
    if let DFStatement::Statement(inner) = statement
        && let Statement::Insert(insert) = inner.as_mut()
    {
        column_defaults::fill_default_keywords(insert, snapshot)?;
        upsert = on_conflict::take_do_update(insert, snapshot, returning.cloned())?;
        // An alias names the rows for RETURNING and DO UPDATE only: DataFusion takes none.
        insert.table_alias = None;
        on_conflict::rewrite_do_nothing(insert, snapshot)?;
    }
    Ok(upsert)
}
