//! tablegate: a PostgreSQL-wire permission proxy.
//!
//! Clients connect to tablegate as to PostgreSQL. Every statement is parsed, checked against the
//! user's policy and rewritten so that it can only read the rows and columns the user may see,
//! then forwarded to the real database. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod catalog;
pub mod config;
pub mod directory;
pub mod login;
pub mod names;
pub mod policy;
pub mod random;
pub mod refusal;
pub mod rewrite;
pub mod sql;
pub mod wecom;
