//! Real parts for integration tests, one concept per module: throwaway databases
//! ([`database`]), tablegate serving them in process ([`proxy`]), a browser for the login pages
//! ([`browser`]), a man in the middle ([`relay`]), and the machinery of the Spider differential test (the rest).
#![allow(dead_code)]

pub mod browser;
pub mod check;
pub mod corpus;
pub mod data;
pub mod database;
pub mod fixture;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod raw;
pub mod relay;
pub mod rng;
pub mod sql;
pub mod stores;
pub mod tally;
pub mod transform;
