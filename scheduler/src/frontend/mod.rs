//! Protocol adapters: each decodes a client's request, hands it to the
//! [`Coordinator`](crate::Coordinator) and encodes the answer. [`flight_sql`] is the Flight
//! SQL service (ADBC, JDBC, the Python package), with [`metadata_answers`] for its metadata
//! commands; [`require_login`] is the gate every call to it passes first.

pub mod flight_sql;
pub mod metadata_answers;
pub mod require_login;
