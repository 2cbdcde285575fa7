//! Test case files: `[[case]]` tables, each a query run as a user and what must come of it.
//!
//! ```toml
//! [[case]]
//! name = "sales reps see only their regions"
//! user = "alice"
//! database = "sales_dw"
//! query = "SELECT DISTINCT region FROM orders"
//! expect.rows_where = "region IN ('East', 'North')"
//! expect.min_row_count = 1
//! ```
//!
//! Files are read whole and checked before anything runs; every error names `file:line`.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::predicate::RowPredicate;
use crate::policy::origin::toml_sources;
use crate::policy::{Origin, PolicyError, PolicyErrors};

/// One test case.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub user: String,
    /// The datasource, as clients name it.
    pub database: String,
    pub query: String,
    /// The session's search_path (default: the upstream database's).
    pub search_path: Option<String>,
    pub expected: Expected,
    /// Where the case starts.
    pub origin: Origin,
}

#[derive(Clone, Debug)]
pub enum Expected {
    /// tablegate refuses the query, with a message containing this text if given.
    Refused { containing: Option<String> },
    /// tablegate accepts the query, PostgreSQL runs it, and its result passes every check given.
    Accepted(ResultChecks),
}

#[derive(Clone, Debug)]
pub struct ResultChecks {
    /// The result's column names, in order.
    pub columns: Option<Vec<String>>,
    pub row_count: Option<u64>,
    pub min_row_count: Option<u64>,
    /// Every row satisfies this predicate over the result's columns.
    pub rows_where: Option<RowPredicate>,
    /// Some NOTICE tablegate sends contains this text.
    pub notice_contains: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    case: Vec<Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Option<String>,
    user: String,
    database: String,
    query: String,
    search_path: Option<String>,
    expect: Option<RawExpect>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    refused: Option<bool>,
    refusal_contains: Option<String>,
    columns: Option<Vec<String>>,
    row_count: Option<u64>,
    min_row_count: Option<u64>,
    rows_where: Option<Spanned<String>>,
    notice_contains: Option<String>,
}

/// Every `*.toml` file in `dir` (in name order), or every error found in them.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, PolicyErrors> {
    let files = toml_sources(
        dir,
        "the policy tests folder (write test cases in <policies>/tests/*.toml)",
    )?;
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files {
        match parse(&file, &text) {
            Ok(found) => cases.extend(found),
            Err(PolicyErrors(found)) => errors.extend(found),
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// The cases of one file's text.
pub fn parse(file: &Arc<str>, text: &str) -> Result<Vec<Case>, PolicyErrors> {
    let at = |offset: usize| Origin::at(file, text, offset);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        PolicyErrors(vec![PolicyError {
            origin: at(e.span().map_or(0, |s| s.start)),
            message: e.message().to_owned(),
        }])
    })?;
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for raw_case in raw.case {
        let origin = at(raw_case.span().start);
        let raw_case = raw_case.into_inner();
        match expected(raw_case.expect.unwrap_or_default()) {
            Ok(expected) => cases.push(Case {
                name: raw_case.name.unwrap_or_else(|| {
                    format!(
                        "{} on {}: {}",
                        raw_case.user, raw_case.database, raw_case.query
                    )
                }),
                user: raw_case.user,
                database: raw_case.database,
                query: raw_case.query,
                search_path: raw_case.search_path,
                expected,
                origin,
            }),
            Err((offset, message)) => errors.push(PolicyError {
                origin: offset.map_or_else(|| origin.clone(), at),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// The expectations, or an error (with the offset of the offending value, if it has one).
fn expected(raw: RawExpect) -> Result<Expected, (Option<usize>, String)> {
    let RawExpect {
        refused,
        refusal_contains,
        columns,
        row_count,
        min_row_count,
        rows_where,
        notice_contains,
    } = raw;
    let checks_result = columns.is_some()
        || row_count.is_some()
        || min_row_count.is_some()
        || rows_where.is_some()
        || notice_contains.is_some();
    match (refused, refusal_contains) {
        (Some(false), Some(_)) => Err((
            None,
            "`expect.refusal_contains` needs a refused query; drop it or `expect.refused = false`"
                .into(),
        )),
        (Some(true), _) | (None, Some(_)) if checks_result => Err((
            None,
            "a refused query returns no result: drop `expect.refused`/`refusal_contains` or the checks on the result".into(),
        )),
        (Some(true), containing) | (None, containing @ Some(_)) => {
            Ok(Expected::Refused { containing })
        }
        (None, None) if !checks_result => Err((
            None,
            "the case expects nothing: add `expect.refused = true` (or `false`: it runs), or a check on its result (`columns`, `row_count`, `min_row_count`, `rows_where`, `notice_contains`)".into(),
        )),
        (Some(false) | None, None) => {
            let rows_where = match rows_where {
                Some(text) => Some(
                    RowPredicate::parse(text.get_ref())
                        .map_err(|e| (Some(text.span().start), e))?,
                ),
                None => None,
            };
            Ok(Expected::Accepted(ResultChecks {
                columns,
                row_count,
                min_row_count,
                rows_where,
                notice_contains,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(text: &str) -> Result<Vec<Case>, String> {
        parse(&Arc::from("t.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn cases_read_with_their_lines_and_default_names() {
        let found = cases(
            "[[case]]\nname = \"regions\"\nuser = \"alice\"\ndatabase = \"sales_dw\"\n\
             query = \"SELECT region FROM orders\"\nexpect.rows_where = \"region IN ('East')\"\n\
             expect.min_row_count = 1\n\n\
             [[case]]\nuser = \"bob\"\ndatabase = \"hr\"\nquery = \"SELECT * FROM salaries\"\n\
             expect.refused = true\nexpect.refusal_contains = \"salaries\"\n",
        )
        .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, "regions");
        assert_eq!(found[0].origin.to_string(), "t.toml:1");
        assert!(matches!(
            &found[0].expected,
            Expected::Accepted(ResultChecks {
                min_row_count: Some(1),
                rows_where: Some(_),
                ..
            })
        ));
        assert_eq!(found[1].name, "bob on hr: SELECT * FROM salaries");
        assert_eq!(found[1].origin.line, 9);
        assert!(matches!(
            &found[1].expected,
            Expected::Refused { containing: Some(c) } if c == "salaries"
        ));
    }

    #[test]
    fn mistakes_are_reported_at_their_line() {
        let base = "[[case]]\nuser = \"a\"\ndatabase = \"d\"\nquery = \"SELECT 1\"\n";
        let err = cases(base).unwrap_err();
        assert!(
            err.starts_with("t.toml:1: the case expects nothing"),
            "{err}"
        );
        let err = cases(&format!(
            "{base}expect.refused = true\nexpect.row_count = 1\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("t.toml:1: a refused query returns no result"),
            "{err}"
        );
        let err = cases(&format!(
            "{base}expect.rows_where = \"x = 1; DROP TABLE t\"\n"
        ))
        .unwrap_err();
        assert!(err.starts_with("t.toml:5: "), "{err}");
        let err = cases(&format!("{base}expect.rows = 1\n")).unwrap_err();
        assert!(err.starts_with("t.toml:5: unknown field `rows`"), "{err}");
        let err = cases("[[case]]\nuser = \"a\"\nquery = \"SELECT 1\"\n").unwrap_err();
        assert!(err.contains("missing field `database`"), "{err}");
    }
}
