//! The server side: connections to the real databases behind each datasource.

pub mod connection;
pub mod pool;

pub use connection::{CancelKey, Connection, Target};
pub use pool::{Lease, Pool};
