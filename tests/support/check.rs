//! One query through the differential check: run the original, rewrite it, and compare the
//! rewritten query on the full data with the original on the permitted copy.

use tablegate::catalog::Catalog;
use tablegate::policy::Access;
use tablegate::refusal::Refusal;
use tablegate::rewrite::{Context, SearchPath, rewrite};
use tokio_postgres::Client;

use super::corpus::SpiderQuery;
use super::database::{DbError, ResultSet, run};
use super::sql::ident;
use super::transform::{
    limit_levels, stripped_labels, tie_broken, without_columns, without_top_limit,
};

/// What happened to one query.
#[derive(Debug)]
pub enum Outcome {
    /// PostgreSQL itself rejects the original on the full schema (SQLite habits).
    NotPostgres(#[allow(dead_code)] DbError),
    /// Accepted, and the rewritten query returns what the original returns on the copy.
    Equal(Equal),
    /// Accepted with hidden columns stripped from the select list; the original cannot run on
    /// the copy. `checked`: the result equals the copy's answer to the original without them.
    TouchesHidden { checked: bool },
    /// Refused; `uses_hidden` if the original cannot run on the copy (it names a hidden column),
    /// which makes the refusal correct.
    Refused { refusal: Refusal, uses_hidden: bool },
    /// A defect: the rewritten query's answer is not the copy's.
    Differs { rewritten: String, detail: String },
}

#[derive(Debug, Default)]
pub struct Equal {
    /// Equal only once LIMIT ties were broken the same way on both sides.
    pub tie_break: bool,
    /// Both sides raised the same error (e.g. a scalar subquery returning two rows).
    pub both_error: bool,
    /// Rows returned (on the copy).
    pub rows: usize,
    /// The original on the full data returns something else: the policy mattered here.
    pub filtered: bool,
    /// tablegate fenced the row-filtered sources (`OFFSET 0`: a condition could fail).
    pub fenced: bool,
}

pub struct Checker<'a> {
    pub client: &'a Client,
    pub catalog: &'a Catalog,
    pub access: &'a Access,
    /// `schema` → the schema holding its permitted copy.
    pub copy_schema: &'a dyn Fn(&str) -> String,
}

impl Checker<'_> {
    async fn run_in(&self, schema: &str, sql: &str) -> Result<ResultSet, DbError> {
        run(self.client, &format!("SET search_path = {}", ident(schema)))
            .await
            .expect("SET search_path");
        run(self.client, sql).await
    }

    fn rewrite(&self, schema: &str, sql: &str) -> Result<tablegate::rewrite::Rewritten, Refusal> {
        let search_path = SearchPath::parse_setting(&ident(schema)).expect("a schema name");
        rewrite(
            sql,
            &Context {
                catalog: self.catalog,
                access: self.access,
                search_path: &search_path,
                risky_parameter_types: false,
            },
        )
    }

    pub async fn check(&self, q: &SpiderQuery) -> Outcome {
        self.check_with_copy_query(q, &q.query).await
    }

    /// [`Checker::check`], with the query the copy runs given separately: for a query that
    /// names its schema, the copy's version names the copy's schema.
    pub async fn check_with_copy_query(&self, q: &SpiderQuery, copy_query: &str) -> Outcome {
        let schema = q.db_id.as_str();
        let copy = (self.copy_schema)(schema);
        let full = self.run_in(schema, &q.query).await;
        if let Err(e) = &full
            && e.is_static()
        {
            return Outcome::NotPostgres(e.clone());
        }
        let rewritten = match self.rewrite(schema, &q.query) {
            Ok(r) => r,
            Err(refusal) => {
                let on_copy = self.run_in(&copy, copy_query).await;
                return Outcome::Refused {
                    refusal,
                    uses_hidden: on_copy.is_err_and(|e| e.is_undefined_column()),
                };
            }
        };
        // The rewritten query names every relation schema-qualified: search_path is moot.
        let got = self.run_in(schema, &rewritten.sql()).await;
        let want = self.run_in(&copy, copy_query).await;
        let differs = |detail: String| Outcome::Differs {
            rewritten: rewritten.sql(),
            detail,
        };
        match (&got, &want) {
            (Ok(g), Ok(w)) => match self
                .agree(schema, &copy, &rewritten.sql(), g, copy_query, w)
                .await
            {
                Ok(tie_break) => Outcome::Equal(Equal {
                    tie_break,
                    rows: w.rows.len(),
                    filtered: full.as_ref().is_ok_and(|f| !same(f, w)),
                    fenced: rewritten.sql().contains(" OFFSET 0)"),
                    ..Equal::default()
                }),
                Err(detail) => differs(detail),
            },
            (Ok(g), Err(e)) if e.is_undefined_column() => {
                let labels = stripped_labels(&rewritten.notices);
                if labels.is_empty() {
                    return differs(format!(
                        "the copy has no such column ({}) but tablegate stripped nothing",
                        e.message
                    ));
                }
                let Some(stripped) = without_columns(copy_query, &labels) else {
                    return Outcome::TouchesHidden { checked: false };
                };
                match self.run_in(&copy, &stripped).await {
                    Ok(w) => match self
                        .agree(schema, &copy, &rewritten.sql(), g, &stripped, &w)
                        .await
                    {
                        Ok(_) => Outcome::TouchesHidden { checked: true },
                        Err(detail) => differs(format!("stripped {labels:?}; {detail}")),
                    },
                    Err(_) => Outcome::TouchesHidden { checked: false },
                }
            }
            (Err(a), Err(b)) if a.code == b.code => Outcome::Equal(Equal {
                both_error: true,
                ..Equal::default()
            }),
            (Err(e), _) => differs(format!(
                "the rewritten query failed: {} {}",
                e.code, e.message
            )),
            (Ok(_), Err(e)) => differs(format!(
                "the copy failed but tablegate ran it: {} {}",
                e.code, e.message
            )),
        }
    }

    /// Whether `forwarded` (run on the full data, giving `got`) and `copy_sql` (run on the copy,
    /// giving `want`) agree: `Ok(false)` if equal as they are, `Ok(true)` if equal once LIMIT
    /// ties are broken the same way on both sides, `Err` with what differs otherwise.
    ///
    /// With LIMIT, which of several tying rows is kept is up to the server, and the two plans
    /// differ. So both queries get the same tie-break ([`tie_broken`]: ORDER BY extended by
    /// every output column, at every limited level), which determines the result, and are run
    /// again. When only the top level is limited, the row count is determined too and must
    /// agree as they are.
    async fn agree(
        &self,
        schema: &str,
        copy: &str,
        forwarded: &str,
        got: &ResultSet,
        copy_sql: &str,
        want: &ResultSet,
    ) -> Result<bool, String> {
        if same(got, want) {
            return Ok(false);
        }
        let limits = limit_levels(copy_sql);
        if !limits.any() {
            return Err(describe_difference(got, want));
        }
        if limits.top && !limits.nested {
            // Determined as they are: the row count, and that every row returned is a row of
            // the copy's unlimited answer.
            if got.rows.len() != want.rows.len() {
                return Err(describe_difference(got, want));
            }
            let unlimited = without_top_limit(copy_sql).ok_or("cannot drop the LIMIT")?;
            let all = self
                .run_in(copy, &unlimited)
                .await
                .map_err(|e| format!("the copy's unlimited query failed: {e:?}"))?;
            if let Some(row) = not_contained(got, &all) {
                return Err(format!(
                    "returned {row:?}, which is not in the copy's answer without LIMIT"
                ));
            }
        }
        let (Some(forwarded), Some(copy_sql)) = (tie_broken(forwarded), tie_broken(copy_sql))
        else {
            return Err(format!(
                "(no tie-break possible) {}",
                describe_difference(got, want)
            ));
        };
        let got = self.run_in(schema, &forwarded).await;
        let want = self.run_in(copy, &copy_sql).await;
        match (got, want) {
            (Ok(g), Ok(w)) if same(&g, &w) => Ok(true),
            (Ok(g), Ok(w)) => Err(format!("with ties broken: {}", describe_difference(&g, &w))),
            (g, w) => Err(format!("with ties broken: {g:?} / {w:?}")),
        }
    }
}

/// A row of `part` that `whole` does not hold as often (multisets), if any.
fn not_contained(part: &ResultSet, whole: &ResultSet) -> Option<Vec<Option<String>>> {
    let mut left = whole.sorted_rows();
    for row in part.sorted_rows() {
        match left.iter().position(|r| *r == row) {
            Some(i) => {
                left.remove(i);
            }
            None => return Some(row),
        }
    }
    None
}

/// Same columns, same rows as multisets.
pub fn same(a: &ResultSet, b: &ResultSet) -> bool {
    a.columns == b.columns && a.sorted_rows() == b.sorted_rows()
}

fn describe_difference(got: &ResultSet, want: &ResultSet) -> String {
    if got.columns != want.columns {
        return format!(
            "columns {:?}, the copy gives {:?}",
            got.columns, want.columns
        );
    }
    let (g, w) = (got.sorted_rows(), want.sorted_rows());
    let extra: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(3).collect();
    let missing: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(3).collect();
    format!(
        "{} rows, the copy gives {}; rows not in the copy's answer: {extra:?}; missing: {missing:?}",
        g.len(),
        w.len()
    )
}
