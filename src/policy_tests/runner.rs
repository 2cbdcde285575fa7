//! Running cases against the live databases: rewrite as the user, run the rewritten query with
//! the datasource's service connection, check what came back.
//!
//! Each case runs in its own read-only transaction with a statement timeout, rolled back at the
//! end, so a case can neither change data nor hang the suite, and one failing case leaves the
//! next unaffected.

use std::collections::HashMap;

use sqlparser::ast::Statement;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::case::{Case, Expected, ResultChecks};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::directory::User;
use crate::policy::{Access, PolicySet};
use crate::rewrite::{Context, Rewritten, SearchPath, rewrite};

/// Rows of a failing `rows_where` shown in the report.
const SAMPLE_ROWS: u64 = 3;

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// What did not hold, one finding a line.
    Fail(Vec<String>),
}

/// The databases and policies cases run against.
pub struct Suite<'a> {
    config: &'a Config,
    policies: &'a PolicySet,
    users: &'a [User],
    upstreams: HashMap<String, Upstream>,
}

struct Upstream {
    client: Client,
    catalog: Catalog,
}

/// What a query returned, as far as cases check it.
struct Returned {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

impl<'a> Suite<'a> {
    pub fn new(config: &'a Config, policies: &'a PolicySet, users: &'a [User]) -> Suite<'a> {
        Suite {
            config,
            policies,
            users,
            upstreams: HashMap::new(),
        }
    }

    pub async fn run(&mut self, case: &Case) -> Verdict {
        match self.check(case).await {
            Ok(()) => Verdict::Pass,
            Err(findings) => Verdict::Fail(findings),
        }
    }

    async fn check(&mut self, case: &Case) -> Result<(), Vec<String>> {
        let one = |finding: String| vec![finding];
        let (users, policies) = (self.users, self.policies);
        let user = users
            .iter()
            .find(|u| u.is(&case.user))
            .ok_or_else(|| one(format!("user `{}` is not in the directory", case.user)))?;
        let upstream = self.upstream(&case.database).await.map_err(one)?;
        let access = Access::build(policies, &upstream.catalog, user, &case.database);
        let path = SearchPath::parse_setting(
            case.search_path
                .as_deref()
                .unwrap_or(upstream.catalog.default_search_path()),
        )
        .map_err(one)?;
        let context = Context {
            catalog: &upstream.catalog,
            access: &access,
            search_path: &path,
            risky_parameter_types: false,
        };
        match (&case.expected, rewrite(&case.query, &context)) {
            (Expected::Refused { containing }, Err(refusal)) => match containing {
                Some(text) if !refusal.to_string().contains(text.as_str()) => {
                    Err(one(format!("refused, but not with `{text}`: {refusal}")))
                }
                _ => Ok(()),
            },
            (Expected::Refused { .. }, Ok(rewritten)) => Err(one(format!(
                "not refused; tablegate forwards: {}",
                rewritten.sql()
            ))),
            (Expected::Accepted(_), Err(refusal)) => Err(one(format!("refused: {refusal}"))),
            (Expected::Accepted(checks), Ok(rewritten)) => {
                check_result(&upstream.client, checks, rewritten).await
            }
        }
    }

    /// The service connection and catalog of a datasource, opened on first use.
    async fn upstream(&mut self, datasource: &str) -> Result<&Upstream, String> {
        if !self.upstreams.contains_key(datasource) {
            let (client, _connection) = self
                .config
                .datasource(datasource)?
                .database(datasource, &self.config.base)?
                .connect()
                .await
                .map_err(|e| format!("cannot connect to datasource `{datasource}`: {e}"))?;
            let catalog = Catalog::load(&client).await.map_err(|e| {
                format!("cannot read the catalog of datasource `{datasource}`: {e}")
            })?;
            self.upstreams
                .insert(datasource.to_owned(), Upstream { client, catalog });
        }
        Ok(&self.upstreams[datasource])
    }
}

async fn check_result(
    client: &Client,
    checks: &ResultChecks,
    rewritten: Rewritten,
) -> Result<(), Vec<String>> {
    let mut findings = Vec::new();
    if let Some(text) = &checks.notice_contains
        && !rewritten.notices.iter().any(|n| n.contains(text.as_str()))
    {
        findings.push(format!(
            "no notice contains `{text}`; notices: {:?}",
            rewritten.notices
        ));
    }
    let sql = rewritten.sql();
    let query = match rewritten.statements.as_slice() {
        [Statement::Query(query)] => query.as_ref().clone(),
        _ => {
            findings.push(
                "the query must be one SELECT (or WITH, VALUES, TABLE) to check its result".into(),
            );
            return Err(findings);
        }
    };
    client
        .batch_execute("BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = '60s'")
        .await
        .map_err(|e| {
            vec![format!(
                "cannot start a read-only transaction: {}",
                message(&e)
            )]
        })?;
    let checked = run_checks(client, checks, &sql, query, &mut findings).await;
    let _ = client.batch_execute("ROLLBACK").await;
    if let Err(e) = checked {
        findings.push(format!("PostgreSQL: {}", message(&e)));
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(findings)
    }
}

async fn run_checks(
    client: &Client,
    checks: &ResultChecks,
    sql: &str,
    query: sqlparser::ast::Query,
    findings: &mut Vec<String>,
) -> Result<(), tokio_postgres::Error> {
    let returned = run(client, sql).await?;
    if let Some(columns) = &checks.columns
        && *columns != returned.columns
    {
        findings.push(format!(
            "columns are {:?}, expected {columns:?}",
            returned.columns
        ));
    }
    let count = returned.rows.len() as u64;
    if let Some(expected) = checks.row_count
        && count != expected
    {
        findings.push(format!("{count} rows, expected {expected}"));
    }
    if let Some(minimum) = checks.min_row_count
        && count < minimum
    {
        findings.push(format!("{count} rows, expected at least {minimum}"));
    }
    if let Some(predicate) = &checks.rows_where {
        let failing = run(client, &predicate.count_failing(query.clone()).to_string()).await?;
        let failing: u64 = failing
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        if failing > 0 {
            let sample = run(
                client,
                &predicate.sample_failing(query, SAMPLE_ROWS).to_string(),
            )
            .await?;
            findings.push(format!(
                "{failing} of {count} rows do not satisfy `{}`, e.g. ({}): {}",
                predicate.text,
                sample.columns.join(", "),
                sample
                    .rows
                    .iter()
                    .map(|r| format!("({})", show_row(r)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

async fn run(client: &Client, sql: &str) -> Result<Returned, tokio_postgres::Error> {
    let mut returned = Returned {
        columns: Vec::new(),
        rows: Vec::new(),
    };
    for message in client.simple_query(sql).await? {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                returned.columns = columns.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => returned.rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => {}
        }
    }
    Ok(returned)
}

fn show_row(row: &[Option<String>]) -> String {
    row.iter()
        .map(|v| v.as_deref().unwrap_or("NULL"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}
