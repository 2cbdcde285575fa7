//! The server side: connections to the real databases behind each datasource.

pub mod connection;
pub mod database;
pub mod pool;
pub mod tls;
pub mod user_share;

pub use connection::{CancelKey, Connection, Target};
pub use database::Database;
pub use pool::{Lease, Pool};
pub use tls::{TlsMode, UpstreamTls};
