//! Refusals: why tablegate will not run a statement, in words a person can act on.
//!
//! Every refusal reaches the client as an ErrorResponse with SQLSTATE 42501
//! (insufficient_privilege), the message, and a hint when there is something to do about it.
//! The kind feeds audit records and metrics.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// The text does not parse.
    Syntax,
    /// A statement kind that is not read-only or not supported.
    Statement,
    /// A relation without a grant, a system catalog, or one that does not exist.
    Relation,
    /// A hidden column used where it cannot be stripped.
    Column,
    /// A function, operator or type outside the allowed set.
    Function,
    /// A policy variable the user lacks, or a policy that cannot be applied.
    Policy,
    /// SQL the rewriter does not understand well enough to protect.
    Unsupported,
    /// A session setting that may not be changed.
    Setting,
}

impl RefusalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Syntax => "syntax",
            RefusalKind::Statement => "statement",
            RefusalKind::Relation => "relation",
            RefusalKind::Column => "column",
            RefusalKind::Function => "function",
            RefusalKind::Policy => "policy",
            RefusalKind::Unsupported => "unsupported",
            RefusalKind::Setting => "setting",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
    pub hint: Option<String>,
}

impl Refusal {
    /// insufficient_privilege: what PostgreSQL itself answers for a missing grant.
    pub const SQLSTATE: &'static str = "42501";

    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Refusal {
        self.hint = Some(hint.into());
        self
    }

    pub fn unsupported(what: impl fmt::Display) -> Refusal {
        Refusal::new(
            RefusalKind::Unsupported,
            format!("tablegate cannot check {what}, so it refuses the statement"),
        )
        .with_hint("rewrite the query with standard SELECT syntax")
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nHINT: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}
