//! [`Principal`]: the role a statement runs as; [`Access`]: that role's privileges in one
//! catalog snapshot, which every check of the statement reads (a `REVOKE` applies from the
//! next statement on, as in PostgreSQL).

use std::sync::Arc;

use shardfusion_catalog::CatalogSnapshot;
use shardfusion_catalog::roles::{Role, TablePrivilege};

use crate::error::{Result, SchedulerError};

/// Who runs a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    name: Arc<str>,
    trusted: bool,
}

impl Principal {
    /// A caller that needs no login, with every privilege: the process's own code (the
    /// embedded cluster, the Python bindings) and, while no superuser has a password, any
    /// client. `name` is the initial superuser's name.
    pub fn trusted(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            trusted: true,
        }
    }

    /// A client that logged in as role `name`.
    pub fn logged_in(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            trusted: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This principal's privileges in `snapshot`. A role dropped (or denied `LOGIN`) since
    /// it logged in has none: its requests are unauthenticated.
    pub fn access<'a>(&'a self, snapshot: &'a CatalogSnapshot) -> Result<Access<'a>> {
        if self.trusted {
            return Ok(Access {
                principal: self,
                snapshot,
                role: None,
            });
        }
        match snapshot.roles.get(&self.name) {
            Some(role) if role.can_login => Ok(Access {
                principal: self,
                snapshot,
                role: Some(role),
            }),
            _ => Err(SchedulerError::Unauthenticated {
                message: format!(
                    "role \"{}\" no longer exists or may not log in: log in again",
                    self.name
                ),
                sqlstate: "28000",
            }),
        }
    }
}

/// A principal's privileges in one snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    principal: &'a Principal,
    snapshot: &'a CatalogSnapshot,
    /// The logged-in role; `None` for a trusted principal.
    role: Option<&'a Role>,
}

impl<'a> Access<'a> {
    pub fn principal(&self) -> &'a Principal {
        self.principal
    }

    pub fn snapshot(&self) -> &'a CatalogSnapshot {
        self.snapshot
    }

    pub fn is_superuser(&self) -> bool {
        self.role.is_none_or(|r| r.superuser)
    }

    /// Refuses unless a superuser runs the statement; `what` names the action, e.g.
    /// "CREATE TABLE" or "citus_add_node".
    pub fn require_superuser(&self, what: &str) -> Result<()> {
        if self.is_superuser() {
            return Ok(());
        }
        Err(SchedulerError::PermissionDenied {
            message: format!(
                "permission denied: {what} needs a superuser, and role \"{}\" is not one",
                self.principal.name()
            ),
        })
    }

    /// Whether the role holds `privilege` on `table`; `false` for a table that does not
    /// exist.
    pub fn has_table_privilege(&self, table: &str, privilege: TablePrivilege) -> bool {
        let Some(role) = self.role else {
            return true;
        };
        self.snapshot.table(table).is_some_and(|meta| {
            self.snapshot
                .roles
                .has_table_privilege(role, meta.table_id, privilege)
        })
    }

    /// Refuses unless the role holds `privilege` on `table`, as PostgreSQL words it.
    pub fn require_table(&self, table: &str, privilege: TablePrivilege) -> Result<()> {
        if self.has_table_privilege(table, privilege) {
            return Ok(());
        }
        Err(SchedulerError::PermissionDenied {
            message: format!(
                "permission denied for table {table}: role \"{}\" lacks {privilege}; a \
                 superuser can GRANT {privilege} ON {table} TO \"{}\"",
                self.principal.name(),
                self.principal.name()
            ),
        })
    }
}
