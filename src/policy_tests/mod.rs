//! Policy tests: queries DBAs write next to their policies, with what each user must get.
//!
//! Cases live in `<policies>/tests/*.toml` ([`case`] describes the format). `tablegate
//! test-policies` runs each one against the live databases ([`runner`]): rewritten as the user,
//! run with the datasource's service connection, and checked — refused or not, the result's
//! columns and row count, a condition every row must satisfy ([`predicate`]), the notices. A
//! policy change that lets a user see too much, or too little, fails a case with its `file:line`.

pub mod case;
pub mod predicate;
pub mod runner;

pub use case::{Case, Expected, ResultChecks, load_dir};
pub use runner::{Suite, Verdict};
