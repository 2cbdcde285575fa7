//! The machinery of `tests/differential.rs`, one concept per module.

pub mod check;
pub mod corpus;
pub mod data;
pub mod database;
pub mod fixture;
pub mod policy;
pub mod rng;
pub mod sql;
pub mod tally;
pub mod transform;
