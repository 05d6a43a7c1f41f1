//! What the coordinator tells about its statements, as PostgreSQL's views do:
//! [`statement_stats`] (`shardfusion_stat_statements`), [`statement_activity`]
//! (`shardfusion_stat_activity`), and [`normalized_statement`], the literal-free text both
//! show.

pub mod normalized_statement;
pub mod statement_activity;
pub mod statement_stats;
