//! Who a client is and what it may do.
//!
//! - [`password`]: argon2 password hashes, as the catalog stores them.
//! - [`tokens`]: the bearer tokens the Flight SQL handshake hands out, and their expiry.
//! - [`principal`]: the role a request runs as, and [`principal::Access`], its privileges in
//!   one catalog snapshot.
//! - [`authenticator`]: logging in (user name and password for a token), and turning a
//!   request's credentials into a [`principal::Principal`].
//! - [`plan_privileges`]: the privileges a planned statement needs (tables read and written),
//!   checked before it runs, and the rows of the monitoring views a role may see.
//!
//! Until some superuser has a password, the coordinator trusts its clients (it then listens
//! on loopback only, unless started with `--insecure`): they run as that initial superuser,
//! as PostgreSQL's `trust` authentication does.

pub mod authenticator;
pub mod password;
pub mod plan_privileges;
pub mod principal;
pub mod tokens;

pub use authenticator::Authenticator;
pub use principal::{Access, Principal};
