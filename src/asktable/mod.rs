//! `tablegate import-asktable`: AskTable's access policies and roles as tablegate policy files.
//!
//! [`export`] reads AskTable's JSON; [`matching`] evaluates its name patterns and translates its
//! row filters; [`convert`] expands both against each datasource's catalog and writes one policy
//! file, with a note for everything it could not express. An import never grants more than the
//! AskTable policies did: what cannot be translated is left out.

pub mod convert;
pub mod export;
pub mod matching;

pub use convert::{Datasource, Import, Note, convert};
pub use export::Export;
