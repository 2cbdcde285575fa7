//! tablegate: a PostgreSQL-wire permission proxy.
//!
//! Clients connect to tablegate as to PostgreSQL. Every statement is parsed, checked against the
//! user's policy and rewritten so that it can only read the rows and columns the user may see,
//! then forwarded to the real database. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod asktable;
pub mod audit;
mod audit_line;
mod audit_writer;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod control_chars;
pub mod datasource;
pub mod directory;
pub mod explain;
pub mod http_listener;
pub mod login;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod policy;
pub mod policy_tests;
pub mod proxy;
pub mod random;
pub mod refusal;
pub mod reload;
pub mod rewrite;
pub mod server;
pub mod sql;
mod stream_enum;
pub mod upstream;
pub mod wecom;
pub mod wire;
