//! Roles, memberships and table grants in the catalog (`CREATE ROLE`/`USER`, `ALTER ROLE`,
//! `DROP ROLE`, `GRANT`, `REVOKE`), and loading them into a snapshot's [`Roles`].
//!
//! Grants name tables by id and go with them: dropping a table or a role drops its grants.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use shardfusion_common::ids::TableId;

use crate::error::CatalogError;
use crate::roles::{Role, RoleId, Roles, TableGrant, TablePrivilege};
use crate::store::Catalog;

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS roles (
    roleid INTEGER PRIMARY KEY,
    rolname TEXT NOT NULL UNIQUE,
    rolsuper INTEGER NOT NULL,
    rolcanlogin INTEGER NOT NULL,
    rolpassword TEXT
);
CREATE TABLE IF NOT EXISTS role_members (
    member INTEGER NOT NULL REFERENCES roles (roleid) ON DELETE CASCADE,
    roleid INTEGER NOT NULL REFERENCES roles (roleid) ON DELETE CASCADE,
    PRIMARY KEY (member, roleid)
);
CREATE TABLE IF NOT EXISTS table_privileges (
    table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    grantee INTEGER NOT NULL REFERENCES roles (roleid) ON DELETE CASCADE,
    privilege TEXT NOT NULL,
    PRIMARY KEY (table_id, grantee, privilege)
);
-- One row once some superuser had a password: logins are required from then on.
CREATE TABLE IF NOT EXISTS login_required (required INTEGER PRIMARY KEY CHECK (required = 1));
"#;

/// A new role's attributes.
#[derive(Debug, Clone, Default)]
pub struct NewRole {
    pub name: String,
    pub superuser: bool,
    pub can_login: bool,
    pub password_hash: Option<String>,
    /// Roles the new role becomes a member of (`IN ROLE`).
    pub member_of: Vec<String>,
}

/// What `ALTER ROLE` changes; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct RoleChange {
    pub superuser: Option<bool>,
    pub can_login: Option<bool>,
    /// `Some(None)` removes the password (`PASSWORD NULL`).
    pub password_hash: Option<Option<String>>,
    pub rename_to: Option<String>,
}

impl Catalog {
    /// `CREATE ROLE` / `CREATE USER`.
    pub fn create_role(&self, role: &NewRole) -> Result<()> {
        self.write(|tx| {
            if role_id(tx, &role.name)?.is_some() {
                return Err(CatalogError::RoleExists {
                    name: role.name.clone(),
                });
            }
            tx.execute(
                "INSERT INTO roles (rolname, rolsuper, rolcanlogin, rolpassword) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    role.name,
                    role.superuser,
                    role.can_login,
                    role.password_hash
                ],
            )?;
            let id = RoleId(tx.last_insert_rowid());
            for of in &role.member_of {
                let of = existing_role(tx, of)?;
                add_member(tx, id, of)?;
            }
            settle_login_requirement(tx)
        })
    }

    /// The initial superuser `name`, created with `password_hash` unless a role of that name
    /// exists already (its password may have been changed since). Returns whether it was
    /// created.
    pub fn ensure_superuser(&self, name: &str, password_hash: &str) -> Result<bool> {
        self.write(|tx| {
            if role_id(tx, name)?.is_some() {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO roles (rolname, rolsuper, rolcanlogin, rolpassword) \
                 VALUES (?1, 1, 1, ?2)",
                params![name, password_hash],
            )?;
            settle_login_requirement(tx)?;
            Ok(true)
        })
    }

    /// `ALTER ROLE` / `ALTER USER`.
    pub fn alter_role(&self, name: &str, change: &RoleChange) -> Result<()> {
        self.write(|tx| {
            let id = existing_role(tx, name)?;
            if let Some(superuser) = change.superuser {
                tx.execute(
                    "UPDATE roles SET rolsuper = ?1 WHERE roleid = ?2",
                    params![superuser, id.0],
                )?;
            }
            if let Some(can_login) = change.can_login {
                tx.execute(
                    "UPDATE roles SET rolcanlogin = ?1 WHERE roleid = ?2",
                    params![can_login, id.0],
                )?;
            }
            if let Some(hash) = &change.password_hash {
                tx.execute(
                    "UPDATE roles SET rolpassword = ?1 WHERE roleid = ?2",
                    params![hash, id.0],
                )?;
            }
            if let Some(new_name) = &change.rename_to {
                if role_id(tx, new_name)?.is_some() {
                    return Err(CatalogError::RoleExists {
                        name: new_name.clone(),
                    });
                }
                tx.execute(
                    "UPDATE roles SET rolname = ?1 WHERE roleid = ?2",
                    params![new_name, id.0],
                )?;
            }
            settle_login_requirement(tx)
        })
    }

    /// `DROP ROLE` / `DROP USER` of every role in `names`, all or none; a missing role is an
    /// error unless `if_exists`. Their grants and memberships go with them.
    pub fn drop_roles(&self, names: &[String], if_exists: bool) -> Result<()> {
        self.write(|tx| {
            for name in names {
                match role_id(tx, name)? {
                    Some(id) => {
                        tx.execute("DELETE FROM roles WHERE roleid = ?1", params![id.0])?;
                    }
                    None if if_exists => {}
                    None => return Err(CatalogError::RoleNotFound { name: name.clone() }),
                }
            }
            settle_login_requirement(tx)
        })
    }

    /// `GRANT privileges ON TABLE tables TO grantees`; granting a held privilege again is a
    /// no-op, as in PostgreSQL.
    pub fn grant_table_privileges(
        &self,
        privileges: &[TablePrivilege],
        tables: &[String],
        grantees: &[String],
    ) -> Result<()> {
        self.change_table_privileges(privileges, tables, grantees, true)
    }

    /// `REVOKE privileges ON TABLE tables FROM grantees`; revoking a privilege not held is a
    /// no-op.
    pub fn revoke_table_privileges(
        &self,
        privileges: &[TablePrivilege],
        tables: &[String],
        grantees: &[String],
    ) -> Result<()> {
        self.change_table_privileges(privileges, tables, grantees, false)
    }

    fn change_table_privileges(
        &self,
        privileges: &[TablePrivilege],
        tables: &[String],
        grantees: &[String],
        grant: bool,
    ) -> Result<()> {
        self.write(|tx| {
            let mut table_ids = Vec::with_capacity(tables.len());
            for table in tables {
                let id: Option<i64> = tx
                    .query_row(
                        "SELECT table_id FROM tables WHERE name = ?1",
                        params![table],
                        |r| r.get(0),
                    )
                    .optional()?;
                table_ids.push(id.ok_or_else(|| CatalogError::TableNotFound {
                    name: table.clone(),
                })?);
            }
            let mut role_ids = Vec::with_capacity(grantees.len());
            for grantee in grantees {
                role_ids.push(existing_role(tx, grantee)?);
            }
            for table in &table_ids {
                for role in &role_ids {
                    for privilege in privileges {
                        let sql = if grant {
                            "INSERT OR IGNORE INTO table_privileges (table_id, grantee, privilege) \
                             VALUES (?1, ?2, ?3)"
                        } else {
                            "DELETE FROM table_privileges \
                             WHERE table_id = ?1 AND grantee = ?2 AND privilege = ?3"
                        };
                        tx.execute(sql, params![table, role.0, privilege.keyword()])?;
                    }
                }
            }
            Ok(())
        })
    }

    /// `GRANT role TO members`. A membership that would make a role a member of itself is
    /// refused, as in PostgreSQL.
    pub fn grant_role(&self, role: &str, members: &[String]) -> Result<()> {
        self.write(|tx| {
            let of = existing_role(tx, role)?;
            for member in members {
                let id = existing_role(tx, member)?;
                if id == of || member_closure(tx, of)?.contains(&id) {
                    return Err(CatalogError::RoleMembershipLoop {
                        role: role.to_string(),
                        member: member.clone(),
                    });
                }
                add_member(tx, id, of)?;
            }
            Ok(())
        })
    }

    /// `REVOKE role FROM members`.
    pub fn revoke_role(&self, role: &str, members: &[String]) -> Result<()> {
        self.write(|tx| {
            let of = existing_role(tx, role)?;
            for member in members {
                let id = existing_role(tx, member)?;
                tx.execute(
                    "DELETE FROM role_members WHERE member = ?1 AND roleid = ?2",
                    params![id.0, of.0],
                )?;
            }
            Ok(())
        })
    }
}

/// Once a superuser has a password, logins are required for good: a change that would leave
/// no superuser able to log in is refused (instead of silently trusting every client again).
fn settle_login_requirement(tx: &Transaction<'_>) -> Result<()> {
    let superusers: i64 = tx.query_row(
        "SELECT count(*) FROM roles \
         WHERE rolsuper = 1 AND rolcanlogin = 1 AND rolpassword IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    if superusers > 0 {
        tx.execute(
            "INSERT OR IGNORE INTO login_required (required) VALUES (1)",
            [],
        )?;
        return Ok(());
    }
    let required: i64 = tx.query_row("SELECT count(*) FROM login_required", [], |r| r.get(0))?;
    if required > 0 {
        return Err(CatalogError::LastSuperuser);
    }
    Ok(())
}

fn role_id(tx: &Transaction<'_>, name: &str) -> Result<Option<RoleId>> {
    Ok(tx
        .query_row(
            "SELECT roleid FROM roles WHERE rolname = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?
        .map(RoleId))
}

fn existing_role(tx: &Transaction<'_>, name: &str) -> Result<RoleId> {
    role_id(tx, name)?.ok_or_else(|| CatalogError::RoleNotFound { name: name.into() })
}

fn add_member(tx: &Transaction<'_>, member: RoleId, of: RoleId) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO role_members (member, roleid) VALUES (?1, ?2)",
        params![member.0, of.0],
    )?;
    Ok(())
}

/// The roles `role` is a member of, directly or not, inside `tx`.
fn member_closure(tx: &Transaction<'_>, role: RoleId) -> Result<BTreeSet<RoleId>> {
    let mut seen = BTreeSet::new();
    let mut pending = vec![role];
    let mut stmt = tx.prepare_cached("SELECT roleid FROM role_members WHERE member = ?1")?;
    while let Some(member) = pending.pop() {
        let ofs = stmt
            .query_map(params![member.0], |r| r.get::<_, i64>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for of in ofs {
            if seen.insert(RoleId(of)) {
                pending.push(RoleId(of));
            }
        }
    }
    Ok(seen)
}

/// The roles, memberships and grants committed in `conn`.
pub(crate) fn load(conn: &Connection) -> Result<Roles> {
    let mut stmt = conn.prepare(
        "SELECT roleid, rolname, rolsuper, rolcanlogin, rolpassword FROM roles ORDER BY roleid",
    )?;
    let roles = stmt
        .query_map([], |r| {
            Ok(Role {
                id: RoleId(r.get(0)?),
                name: r.get(1)?,
                superuser: r.get(2)?,
                can_login: r.get(3)?,
                password_hash: r.get(4)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare("SELECT member, roleid FROM role_members")?;
    let memberships = stmt
        .query_map([], |r| Ok((RoleId(r.get(0)?), RoleId(r.get(1)?))))?
        .collect::<std::result::Result<BTreeSet<_>, _>>()?;
    let mut stmt = conn.prepare("SELECT table_id, grantee, privilege FROM table_privileges")?;
    let mut grants = BTreeSet::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (table, grantee, privilege) = row?;
        let privilege =
            TablePrivilege::from_keyword(&privilege).ok_or_else(|| CatalogError::Corrupt {
                table: "table_privileges".into(),
                reason: format!("unknown privilege {privilege:?}"),
            })?;
        grants.insert(TableGrant {
            table: TableId(table),
            grantee: RoleId(grantee),
            privilege,
        });
    }
    let login_required: i64 =
        conn.query_row("SELECT count(*) FROM login_required", [], |r| r.get(0))?;
    Ok(Roles::new(roles, memberships, grants, login_required > 0))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn roles_grants_and_drops_commit_and_show_in_the_snapshot() {
        let catalog = Catalog::open_in_memory().expect("catalog");
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let table = catalog.create_table("t", &schema).expect("table");
        catalog
            .create_role(&NewRole {
                name: "readers".into(),
                ..NewRole::default()
            })
            .expect("group role");
        catalog
            .create_role(&NewRole {
                name: "alice".into(),
                can_login: true,
                password_hash: Some("$argon2id$hash".into()),
                member_of: vec!["readers".into()],
                ..NewRole::default()
            })
            .expect("user");
        assert!(matches!(
            catalog.create_role(&NewRole {
                name: "alice".into(),
                ..NewRole::default()
            }),
            Err(CatalogError::RoleExists { .. })
        ));
        catalog
            .grant_table_privileges(
                &[TablePrivilege::Select],
                &["t".into()],
                &["readers".into()],
            )
            .expect("grant");
        let snapshot = catalog.snapshot();
        let alice = snapshot.roles.get("alice").expect("alice").clone();
        assert!(
            snapshot
                .roles
                .has_table_privilege(&alice, table.table_id, TablePrivilege::Select)
        );
        assert!(!snapshot.roles.has_table_privilege(
            &alice,
            table.table_id,
            TablePrivilege::Insert
        ));
        // A loop of memberships is refused.
        assert!(matches!(
            catalog.grant_role("alice", &["readers".into()]),
            Err(CatalogError::RoleMembershipLoop { .. })
        ));
        catalog
            .revoke_role("readers", &["alice".into()])
            .expect("revoke membership");
        let snapshot = catalog.snapshot();
        assert!(!snapshot.roles.has_table_privilege(
            &alice,
            table.table_id,
            TablePrivilege::Select
        ));
        // Dropping the table drops its grants; dropping a role its memberships.
        catalog.drop_table("t", false).expect("drop table");
        catalog
            .drop_roles(&["readers".into(), "alice".into()], false)
            .expect("drop");
        assert!(catalog.snapshot().roles.is_empty());
        assert!(matches!(
            catalog.drop_roles(&["nobody".into()], false),
            Err(CatalogError::RoleNotFound { .. })
        ));
        catalog
            .drop_roles(&["nobody".into()], true)
            .expect("IF EXISTS");
    }
}
