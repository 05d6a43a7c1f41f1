//! Roles and table privileges, as PostgreSQL has them: [`Role`] (a user is a role that can log
//! in), role membership, and [`TablePrivilege`]s granted on tables.
//!
//! [`Roles`] is the immutable view of them in a [`crate::CatalogSnapshot`]: what a statement
//! checks its privileges against. A role has the privileges granted to it and to every role it
//! is a member of, directly or through other roles (PostgreSQL's `INHERIT`, the default).
//! A superuser has every privilege.
//!
//! The catalog stores password hashes only (PHC strings made by the coordinator); it never
//! sees a password.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use shardfusion_common::ids::TableId;

/// A role's id (PostgreSQL's `pg_authid.oid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleId(pub i64);

impl fmt::Display for RoleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A user or group role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: RoleId,
    pub name: String,
    pub superuser: bool,
    /// Whether it may log in (a user), as `LOGIN`.
    pub can_login: bool,
    /// The password's hash (a PHC string), if it has a password.
    pub password_hash: Option<String>,
}

/// A privilege on a table, as `GRANT ... ON TABLE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TablePrivilege {
    Select,
    Insert,
    Update,
    Delete,
    Truncate,
}

impl TablePrivilege {
    /// Every table privilege, as `ALL PRIVILEGES` grants them.
    pub const ALL: [TablePrivilege; 5] = [
        Self::Select,
        Self::Insert,
        Self::Update,
        Self::Delete,
        Self::Truncate,
    ];

    /// The SQL keyword, as stored and shown.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Select => "SELECT",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Truncate => "TRUNCATE",
        }
    }

    pub fn from_keyword(keyword: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.keyword().eq_ignore_ascii_case(keyword))
    }
}

impl fmt::Display for TablePrivilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// One granted privilege: `privilege` on `table` to `grantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableGrant {
    pub table: TableId,
    pub grantee: RoleId,
    pub privilege: TablePrivilege,
}

/// All roles, memberships and grants of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    by_name: BTreeMap<String, Role>,
    /// `(member, role)`: `member` is a member of `role`.
    memberships: BTreeSet<(RoleId, RoleId)>,
    grants: BTreeSet<TableGrant>,
    login_required: bool,
}

impl Roles {
    pub(crate) fn new(
        roles: Vec<Role>,
        memberships: BTreeSet<(RoleId, RoleId)>,
        grants: BTreeSet<TableGrant>,
        login_required: bool,
    ) -> Self {
        Self {
            by_name: roles.into_iter().map(|r| (r.name.clone(), r)).collect(),
            memberships,
            grants,
            login_required,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Role> {
        self.by_name.get(name)
    }

    /// Every role, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.by_name.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether clients must log in: some superuser has had a password (from then on the
    /// catalog keeps one that can log in). Until then the coordinator trusts its (loopback)
    /// clients, as PostgreSQL's `trust` authentication.
    pub fn require_login(&self) -> bool {
        self.login_required
    }

    /// `role` and every role it is a member of, directly or not.
    pub fn closure(&self, role: RoleId) -> BTreeSet<RoleId> {
        let mut seen = BTreeSet::from([role]);
        let mut pending = vec![role];
        while let Some(member) = pending.pop() {
            for &(_, of) in self
                .memberships
                .range((member, RoleId(i64::MIN))..=(member, RoleId(i64::MAX)))
            {
                if seen.insert(of) {
                    pending.push(of);
                }
            }
        }
        seen
    }

    /// Whether `role` (a member of itself) is a member of `of`, directly or not.
    pub fn is_member_of(&self, role: RoleId, of: RoleId) -> bool {
        self.closure(role).contains(&of)
    }

    /// The roles `role` is directly a member of.
    pub fn direct_memberships(&self, role: RoleId) -> impl Iterator<Item = RoleId> + '_ {
        self.memberships
            .range((role, RoleId(i64::MIN))..=(role, RoleId(i64::MAX)))
            .map(|&(_, of)| of)
    }

    /// Whether `role` holds `privilege` on `table`: it is a superuser, or the privilege was
    /// granted to it or to a role it is a member of.
    pub fn has_table_privilege(
        &self,
        role: &Role,
        table: TableId,
        privilege: TablePrivilege,
    ) -> bool {
        if role.superuser {
            return true;
        }
        self.closure(role.id).into_iter().any(|holder| {
            self.grants.contains(&TableGrant {
                table,
                grantee: holder,
                privilege,
            })
        })
    }

    /// Every grant, ordered by table, grantee and privilege.
    pub fn grants(&self) -> impl Iterator<Item = &TableGrant> {
        self.grants.iter()
    }

    /// The name of the role with id `id`.
    pub fn name_of(&self, id: RoleId) -> Option<&str> {
        self.by_name
            .values()
            .find(|r| r.id == id)
            .map(|r| r.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: i64, name: &str, superuser: bool) -> Role {
        Role {
            id: RoleId(id),
            name: name.into(),
            superuser,
            can_login: true,
            password_hash: None,
        }
    }

    #[test]
    fn privileges_come_from_grants_and_memberships() {
        let roles = Roles::new(
            vec![
                role(1, "admin", true),
                role(2, "alice", false),
                role(3, "readers", false),
                role(4, "all_readers", false),
                role(5, "bob", false),
            ],
            // alice ∈ readers ∈ all_readers; a cycle does not loop.
            BTreeSet::from([
                (RoleId(2), RoleId(3)),
                (RoleId(3), RoleId(4)),
                (RoleId(4), RoleId(3)),
            ]),
            BTreeSet::from([
                TableGrant {
                    table: TableId(10),
                    grantee: RoleId(4),
                    privilege: TablePrivilege::Select,
                },
                TableGrant {
                    table: TableId(11),
                    grantee: RoleId(5),
                    privilege: TablePrivilege::Insert,
                },
            ]),
            false,
        );
        let alice = roles.get("alice").expect("alice");
        let bob = roles.get("bob").expect("bob");
        let admin = roles.get("admin").expect("admin");
        assert!(roles.has_table_privilege(alice, TableId(10), TablePrivilege::Select));
        assert!(!roles.has_table_privilege(alice, TableId(10), TablePrivilege::Insert));
        assert!(!roles.has_table_privilege(alice, TableId(11), TablePrivilege::Insert));
        assert!(roles.has_table_privilege(bob, TableId(11), TablePrivilege::Insert));
        assert!(!roles.has_table_privilege(bob, TableId(10), TablePrivilege::Select));
        assert!(roles.has_table_privilege(admin, TableId(99), TablePrivilege::Delete));
        assert!(roles.is_member_of(RoleId(2), RoleId(4)));
        assert!(!roles.is_member_of(RoleId(4), RoleId(2)));
        // No superuser has a password: clients are trusted.
        assert!(!roles.require_login());
    }
}
