//! Users, roles and privileges, as PostgreSQL spells them:
//! - `CREATE ROLE name [WITH] [LOGIN] [SUPERUSER] [PASSWORD 'p'] [IN ROLE r, ...]`, and
//!   `CREATE USER`, which is `CREATE ROLE ... LOGIN`;
//! - `ALTER ROLE|USER name [WITH] [PASSWORD 'p' | PASSWORD NULL] [[NO]LOGIN] [[NO]SUPERUSER]`
//!   and `ALTER ROLE name RENAME TO other`;
//! - `DROP ROLE|USER [IF EXISTS] name, ...`;
//! - `GRANT {SELECT | INSERT | UPDATE | DELETE | TRUNCATE, ... | ALL [PRIVILEGES]} ON [TABLE]
//!   t, ... TO role, ...` and `REVOKE ... FROM ...`;
//! - `GRANT role TO member, ...` and `REVOKE role FROM member, ...`.
//!
//! All of them need a superuser, except a role changing its own password; none may leave no
//! superuser able to log in ([`shardfusion_catalog::CatalogError::LastSuperuser`]). A role that
//! is dropped, renamed or denied `LOGIN` is logged out everywhere; a new password applies to the
//! next login.

use datafusion::sql::sqlparser::ast::{
    Action, AlterRoleOperation, CreateRole, Expr, GrantObjects, Grantee, GranteeName, GranteesType,
    ObjectName, Password, Privileges, RoleOption, Value,
};
use shardfusion_catalog::role_store::{NewRole, RoleChange};
use shardfusion_catalog::roles::TablePrivilege;

use crate::auth::Access;
use crate::auth::password::hash_password;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

/// `CREATE ROLE` / `CREATE USER` (parsed as `CREATE ROLE` with `LOGIN` unless it says
/// `NOLOGIN`).
pub fn create_role(
    coordinator: &Coordinator,
    access: &Access<'_>,
    create: &CreateRole,
) -> Result<StatementOutput> {
    access.require_superuser("CREATE ROLE")?;
    if !create.role.is_empty() || !create.user.is_empty() || !create.admin.is_empty() {
        return Err(SchedulerError::unsupported(
            "CREATE ROLE ... ROLE/USER/ADMIN (grant the new role with GRANT role TO member)",
        ));
    }
    let password_hash = match &create.password {
        Some(password) => password_hash(password)?,
        None => None,
    };
    let member_of: Vec<String> = create
        .in_role
        .iter()
        .chain(&create.in_group)
        .map(|i| i.value.clone())
        .collect();
    let catalog = &coordinator.cluster().catalog;
    for name in &create.names {
        let name = object_name(name)?;
        if create.if_not_exists && access.snapshot().roles.get(&name).is_some() {
            continue;
        }
        catalog.create_role(&NewRole {
            name,
            superuser: create.superuser.unwrap_or(false),
            can_login: create.login.unwrap_or(false),
            password_hash: password_hash.clone(),
            member_of: member_of.clone(),
        })?;
    }
    Ok(StatementOutput::empty())
}

/// `ALTER ROLE` / `ALTER USER`.
pub fn alter_role(
    coordinator: &Coordinator,
    access: &Access<'_>,
    name: &str,
    operation: &AlterRoleOperation,
) -> Result<StatementOutput> {
    let mut change = RoleChange::default();
    match operation {
        AlterRoleOperation::RenameRole { role_name } => {
            change.rename_to = Some(role_name.value.clone());
        }
        AlterRoleOperation::WithOptions { options } => {
            for option in options {
                match option {
                    RoleOption::Password(password) => {
                        change.password_hash = Some(password_hash(password)?);
                    }
                    RoleOption::Login(login) => change.can_login = Some(*login),
                    RoleOption::SuperUser(superuser) => change.superuser = Some(*superuser),
                    other => {
                        return Err(SchedulerError::unsupported(format!(
                            "ALTER ROLE ... {other}"
                        )));
                    }
                }
            }
        }
        other => {
            return Err(SchedulerError::unsupported(format!("ALTER ROLE {other}")));
        }
    }
    // As in PostgreSQL, a role may change its own password; everything else needs a
    // superuser.
    let own_password = access.principal().name() == name
        && change.password_hash.is_some()
        && change.superuser.is_none()
        && change.can_login.is_none()
        && change.rename_to.is_none();
    if !own_password {
        access.require_superuser("ALTER ROLE")?;
    }
    coordinator.cluster().catalog.alter_role(name, &change)?;
    // Sessions of a role renamed or denied LOGIN end (its requests would be refused anyway);
    // a new password, as in PostgreSQL, applies to the next login only.
    if change.rename_to.is_some() || change.can_login == Some(false) {
        coordinator.cluster().auth.end_sessions_of(name);
    }
    Ok(StatementOutput::empty())
}

/// `DROP ROLE` / `DROP USER`. A role cannot drop itself.
pub fn drop_roles(
    coordinator: &Coordinator,
    access: &Access<'_>,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<StatementOutput> {
    access.require_superuser("DROP ROLE")?;
    let names = names.iter().map(object_name).collect::<Result<Vec<_>>>()?;
    if names.iter().any(|n| n == access.principal().name()) {
        return Err(SchedulerError::invalid(format!(
            "current user \"{}\" cannot be dropped",
            access.principal().name()
        )));
    }
    coordinator
        .cluster()
        .catalog
        .drop_roles(&names, if_exists)?;
    for name in &names {
        coordinator.cluster().auth.end_sessions_of(name);
    }
    Ok(StatementOutput::empty())
}

/// `GRANT` / `REVOKE` of table privileges or of role membership.
pub fn grant_or_revoke(
    coordinator: &Coordinator,
    access: &Access<'_>,
    privileges: &Privileges,
    objects: Option<&GrantObjects>,
    grantees: &[Grantee],
    grant: bool,
) -> Result<StatementOutput> {
    let verb = if grant { "GRANT" } else { "REVOKE" };
    access.require_superuser(verb)?;
    let grantees = grantees
        .iter()
        .map(grantee_name)
        .collect::<Result<Vec<_>>>()?;
    let catalog = &coordinator.cluster().catalog;
    match objects {
        // `GRANT role TO member` (see `crate::coordinator::parse`).
        None => {
            let Privileges::Actions(actions) = privileges else {
                return Err(SchedulerError::invalid(format!(
                    "{verb} ALL needs ON TABLE ..."
                )));
            };
            for action in actions {
                let Action::Role { role } = action else {
                    return Err(SchedulerError::invalid(format!(
                        "{verb} {action} needs ON TABLE ..."
                    )));
                };
                let role = object_name(role)?;
                if grant {
                    catalog.grant_role(&role, &grantees)?;
                } else {
                    catalog.revoke_role(&role, &grantees)?;
                }
            }
        }
        Some(GrantObjects::Tables(tables)) => {
            let privileges = table_privileges(privileges)?;
            let tables = tables.iter().map(object_name).collect::<Result<Vec<_>>>()?;
            if grant {
                catalog.grant_table_privileges(&privileges, &tables, &grantees)?;
            } else {
                catalog.revoke_table_privileges(&privileges, &tables, &grantees)?;
            }
        }
        Some(GrantObjects::AllTablesInSchema { schemas }) => {
            let privileges = table_privileges(privileges)?;
            for schema in schemas {
                let schema = object_name(schema)?;
                if schema != "public" {
                    return Err(SchedulerError::Catalog(
                        shardfusion_catalog::CatalogError::TableNotFound {
                            name: format!("schema \"{schema}\""),
                        },
                    ));
                }
            }
            let tables: Vec<String> = access.snapshot().tables.keys().cloned().collect();
            if grant {
                catalog.grant_table_privileges(&privileges, &tables, &grantees)?;
            } else {
                catalog.revoke_table_privileges(&privileges, &tables, &grantees)?;
            }
        }
        Some(other) => {
            return Err(SchedulerError::unsupported(format!(
                "{verb} ... ON {other}"
            )));
        }
    }
    Ok(StatementOutput::empty())
}

fn table_privileges(privileges: &Privileges) -> Result<Vec<TablePrivilege>> {
    let Privileges::Actions(actions) = privileges else {
        return Ok(TablePrivilege::ALL.to_vec());
    };
    actions
        .iter()
        .map(|action| match action {
            Action::Select { columns: None } => Ok(TablePrivilege::Select),
            Action::Insert { columns: None } => Ok(TablePrivilege::Insert),
            Action::Update { columns: None } => Ok(TablePrivilege::Update),
            Action::Delete => Ok(TablePrivilege::Delete),
            Action::Truncate => Ok(TablePrivilege::Truncate),
            Action::Select { .. } | Action::Insert { .. } | Action::Update { .. } => Err(
                SchedulerError::unsupported("column privileges (grant on the whole table)"),
            ),
            other => Err(SchedulerError::unsupported(format!(
                "the {other} privilege on tables"
            ))),
        })
        .collect()
}

fn grantee_name(grantee: &Grantee) -> Result<String> {
    match (&grantee.grantee_type, &grantee.name) {
        (GranteesType::Public, _) => Err(SchedulerError::unsupported(
            "granting to PUBLIC (grant to roles; a group role can hold what many users share)",
        )),
        (
            GranteesType::None | GranteesType::Role | GranteesType::User | GranteesType::Group,
            Some(GranteeName::ObjectName(name)),
        ) => object_name(name),
        _ => Err(SchedulerError::unsupported(format!("grantee {grantee}"))),
    }
}

/// A role or table name: its one identifier, unquoted (quoted names keep their case).
fn object_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(|i| i.value.clone())
            .ok_or_else(|| SchedulerError::invalid(format!("bad name {name}"))),
        [schema, part] if schema.to_string() == "public" => part
            .as_ident()
            .map(|i| i.value.clone())
            .ok_or_else(|| SchedulerError::invalid(format!("bad name {name}"))),
        _ => Err(SchedulerError::invalid(format!(
            "bad name {name}: roles and tables have one-part names"
        ))),
    }
}

/// The hash to store for `password` (`None` for `PASSWORD NULL`).
fn password_hash(password: &Password) -> Result<Option<String>> {
    match password {
        Password::NullPassword => Ok(None),
        Password::Password(Expr::Value(value)) => match &value.value {
            Value::SingleQuotedString(text) | Value::EscapedStringLiteral(text) => {
                if text.is_empty() {
                    return Err(SchedulerError::invalid("a password must not be empty"));
                }
                Ok(Some(hash_password(text)?))
            }
            Value::Null => Ok(None),
            _ => Err(SchedulerError::invalid(
                "a password is a string literal: PASSWORD 'secret'",
            )),
        },
        Password::Password(_) => Err(SchedulerError::invalid(
            "a password is a string literal: PASSWORD 'secret'",
        )),
    }
}
