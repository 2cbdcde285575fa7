//! Where a piece of policy was written: `file:line`, for every message about it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: usize,
}

impl Origin {
    /// The origin of byte `offset` in `text`, read from `file`.
    pub fn at(file: &Arc<str>, text: &str, offset: usize) -> Origin {
        let line = text.as_bytes()[..offset.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Origin {
            file: file.clone(),
            line,
        }
    }

    pub fn file_name(path: &Path) -> Arc<str> {
        Arc::from(path.display().to_string())
    }
}

/// The `(file name, text)` of every `*.toml` file in `dir`, in name order; `folder` says what
/// the folder is in the message when it cannot be read.
pub fn toml_sources(dir: &Path, folder: &str) -> Result<Vec<(Arc<str>, String)>, PolicyErrors> {
    let error = |path: &Path, message: String| {
        PolicyErrors(vec![PolicyError {
            origin: Origin {
                file: Origin::file_name(path),
                line: 0,
            },
            message,
        }])
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| error(dir, format!("cannot read {folder}: {e}")))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Origin::file_name(&path), text)),
            Err(e) => Err(error(&path, format!("cannot read: {e}"))),
        })
        .collect()
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A policy error: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// Every error found in a policy set, reported together so the DBA fixes them in one pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}
