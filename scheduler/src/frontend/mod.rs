//! Protocol adapters: each decodes a client's request, hands it to the
//! [`Coordinator`](crate::Coordinator) and encodes the answer. [`flight_sql`] is the Flight
//! SQL service (ADBC, JDBC, the Python package), with [`flight_messages`] for the Flight
//! messages it sends and reads, [`metadata_answers`] for its metadata
//! commands, [`stashed_results`] for results between `GetFlightInfo` and `DoGet` (and their
//! cancellation), [`session_options`] for Flight's session actions (with [`session_messages`]) and [`call_metadata`]
//! for what a call's headers tell, [`call_identity`] for who calls and in which session, [`flight_transactions`] for Flight SQL's transactions; [`require_login`] is the gate every call to it passes
//! first.

pub mod call_identity;
pub mod call_metadata;
pub mod flight_messages;
pub mod flight_sql;
pub mod flight_transactions;
pub mod foreign_key_answers;
pub mod metadata_answers;
pub mod primary_key_answers;
pub mod require_login;
pub mod session_messages;
pub mod session_options;
pub mod stashed_results;
