//! Limits on what statements take: a slot to run in ([`admission`]), and time, memory and
//! cancellation for each statement ([`statement_control`]), which stop a statement only
//! before its commit point ([`commit_point`]). The settings they read are a
//! session's ([`crate::session::session_settings`]) over the server's defaults
//! ([`server_limits`]).

pub mod admission;
pub mod commit_point;
pub mod server_limits;
pub mod statement_control;
