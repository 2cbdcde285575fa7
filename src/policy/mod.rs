//! Policies: what DBAs write about who may see what.
//!
//! [`set`] reads and validates the policy files; [`assignment`] decides which roles and variable
//! values a user holds; [`filter`] turns row-filter text into expression templates; [`mask`]
//! builds the expressions masked columns show; [`access`] resolves all of it, for one user on one
//! datasource, into the protected sources ([`source`]) the rewriter substitutes for each
//! relation. [`check`] validates against live databases; [`value`] holds variable values;
//! [`origin`] is file:line.

pub mod access;
pub mod assignment;
pub mod check;
pub mod filter;
pub mod mask;
pub mod origin;
pub mod set;
mod source;
pub mod value;

pub use access::{Access, AppliedFilter, ColumnEffect, ColumnRule, Source, TableAccess};
pub use assignment::{Entitlements, HeldRole, Matcher, VariableSource};
pub use mask::Mask;
pub use origin::{Origin, PolicyError, PolicyErrors};
pub use set::PolicySet;
pub use value::{Scalar, VarValue};
