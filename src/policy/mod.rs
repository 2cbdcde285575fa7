//! Policies: what DBAs write about who may see what.
//!
//! [`set`] reads and validates the policy files; [`assignment`] decides which roles and variable
//! values a user holds; [`filter`] turns row-filter text into expression templates; [`access`]
//! resolves all of it, for one user on one datasource, into the protected sources the rewriter
//! substitutes for each relation.

pub mod access;
pub mod assignment;
pub mod check;
pub mod filter;
pub mod origin;
pub mod set;
pub mod value;

pub use access::{Access, Source, TableAccess};
pub use assignment::{Entitlements, HeldRole, Matcher};
pub use origin::{Origin, PolicyError, PolicyErrors};
pub use set::PolicySet;
pub use value::{Scalar, VarValue};
