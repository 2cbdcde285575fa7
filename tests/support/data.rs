//! Deterministic rows for every Spider table, made so that the queries find something.
//!
//! Random values would make almost every WHERE and JOIN empty, and an empty result compares equal
//! whatever the rewriter did. So each column draws from a small domain: the literals the db's
//! queries compare that column name with (harvested from the queries' ASTs), a few neighbours of
//! numeric literals (so `>` and `<` split), small integers for numbers, a few shared words for
//! text, and ~8% NULLs. Same-named columns share a domain and foreign-key columns draw from the
//! values generated for the referenced column, so joins match; a few dangling references remain.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::corpus::{Corpus, Table};
use super::rng::Rng;
use super::sql::{ident, literal};

const SEED: u64 = 0x7461_626c_6567_6174; // "tablegat"

/// `(db_id, column name)` → literals the db's queries compare a column of that name with.
pub type Harvest = HashMap<(String, String), BTreeSet<String>>;

/// Collects the literals compared with each column name, per db.
pub fn harvest(corpus: &Corpus) -> Harvest {
    let mut out = Harvest::new();
    for q in &corpus.queries {
        let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, &q.query) else {
            continue;
        };
        let mut collector = Collector { found: Vec::new() };
        let _ = statements.visit(&mut collector);
        for (column, value) in collector.found {
            out.entry((q.db_id.clone(), column))
                .or_default()
                .insert(value);
        }
    }
    out
}

struct Collector {
    found: Vec<(String, String)>,
}

impl Collector {
    fn pair(&mut self, column: &Expr, value: &Expr) {
        if let (Some(c), Some(v)) = (column_name(column), literal_text(value)) {
            self.found.push((c, v));
        }
    }
}

impl Visitor for Collector {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq,
                right,
            } => {
                self.pair(left, right);
                self.pair(right, left);
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                ..
            } => {
                for item in list {
                    self.pair(expr, item);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.pair(expr, low);
                self.pair(expr, high);
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                // A value the pattern matches: wildcards dropped or filled.
                if let (Some(c), Some(p)) = (column_name(expr), literal_text(pattern)) {
                    self.found.push((c, p.replace('%', "").replace('_', "x")));
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(id.value.to_ascii_lowercase()),
        Expr::CompoundIdentifier(ids) => Some(ids.last()?.value.to_ascii_lowercase()),
        Expr::Nested(inner) => column_name(inner),
        _ => None,
    }
}

fn literal_text(e: &Expr) -> Option<String> {
    match e {
        // SQLite reads `"Dutch"` as a string: the repaired query (see `transform`) will.
        Expr::Identifier(id) if id.quote_style == Some('"') => Some(id.value.clone()),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.clone()),
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => literal_text(expr).map(|n| format!("-{n}")),
        Expr::Nested(inner) => literal_text(inner),
        _ => None,
    }
}

/// One table's generated rows, values as PostgreSQL text (None is NULL).
pub struct TableData {
    pub table: Table,
    pub rows: Vec<Vec<Option<String>>>,
}

impl TableData {
    /// The column's non-NULL values, in row order.
    pub fn values(&self, column: &str) -> Vec<&str> {
        let i = self
            .table
            .columns
            .iter()
            .position(|c| c.name == column)
            .expect("a column of the table");
        self.rows.iter().filter_map(|r| r[i].as_deref()).collect()
    }

    pub fn insert_sql(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let columns: Vec<String> = self.table.columns.iter().map(|c| ident(&c.name)).collect();
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let values: Vec<String> = row
                    .iter()
                    .zip(&self.table.columns)
                    .map(|(v, c)| match v {
                        None => "NULL".to_owned(),
                        Some(v) => literal(v, c.numeric),
                    })
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {}.{} ({}) VALUES {};\n",
            ident(&self.table.schema),
            ident(&self.table.name),
            columns.join(", "),
            rows.join(", ")
        )
    }
}

/// Generates every table's rows, referenced tables first so foreign keys can draw from them.
pub fn generate(corpus: &Corpus, harvest: &Harvest) -> Vec<TableData> {
    let mut done: HashMap<(String, String), TableData> = HashMap::new();
    let mut pending: Vec<&Table> = corpus.tables.iter().collect();
    while !pending.is_empty() {
        // A table whose references are all generated (or, in a cycle, the first one left).
        let ready = pending
            .iter()
            .position(|t| {
                corpus
                    .foreign_keys
                    .iter()
                    .filter(|fk| fk.schema == t.schema && fk.table == t.name)
                    .all(|fk| {
                        fk.ref_table == t.name
                            || done.contains_key(&(fk.schema.clone(), fk.ref_table.clone()))
                    })
            })
            .unwrap_or(0);
        let table = pending.remove(ready);
        let data = Generator {
            corpus,
            harvest,
            done: &done,
            table,
            rng: Rng::for_name(SEED, &format!("{}.{}", table.schema, table.name)),
        }
        .rows();
        done.insert((table.schema.clone(), table.name.clone()), data);
    }
    // Back to DDL order, for readable output.
    corpus
        .tables
        .iter()
        .map(|t| {
            done.remove(&(t.schema.clone(), t.name.clone()))
                .expect("generated")
        })
        .collect()
}

struct Generator<'a> {
    corpus: &'a Corpus,
    harvest: &'a Harvest,
    done: &'a HashMap<(String, String), TableData>,
    table: &'a Table,
    rng: Rng,
}

impl Generator<'_> {
    fn rows(mut self) -> TableData {
        let wanted = 12 + self.rng.below(24);
        let domains: Vec<Vec<String>> = self
            .table
            .columns
            .iter()
            .map(|c| self.domain(&c.name, c.numeric))
            .collect();
        let key: Vec<usize> = self
            .table
            .primary_key
            .iter()
            .map(|k| {
                self.table
                    .columns
                    .iter()
                    .position(|c| &c.name == k)
                    .expect("key column")
            })
            .collect();
        // A single-column key takes distinct values in order; a composite one is drawn and
        // retried until unique.
        let single_key: Option<Vec<String>> = match key.as_slice() {
            [k] => {
                let column = &self.table.columns[*k];
                let mut distinct: Vec<String> = Vec::new();
                if column.numeric && self.references(&column.name).is_none() {
                    distinct.extend((1..=wanted).map(|i| i.to_string()));
                } else {
                    for v in &domains[*k] {
                        if !distinct.contains(v) {
                            distinct.push(v.clone());
                        }
                    }
                    if self.references(&column.name).is_none() {
                        let mut i = 1;
                        while distinct.len() < wanted {
                            distinct.push(format!("k{i}"));
                            i += 1;
                        }
                    }
                }
                Some(distinct)
            }
            _ => None,
        };
        let mut seen_keys = HashSet::new();
        let mut rows = Vec::new();
        for n in 0..wanted {
            let mut attempt = 0;
            let row = loop {
                let row: Vec<Option<String>> = self
                    .table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, _)| {
                        if key.contains(&i) {
                            match &single_key {
                                Some(values) => values.get(n).cloned(),
                                None => Some(self.rng.pick(&domains[i]).clone()),
                            }
                        } else if self.rng.chance(8) {
                            None
                        } else {
                            Some(self.rng.pick(&domains[i]).clone())
                        }
                    })
                    .collect();
                let key_values: Vec<Option<String>> = key.iter().map(|&k| row[k].clone()).collect();
                if key_values.iter().all(Option::is_some) && seen_keys.insert(key_values) {
                    break Some(row);
                }
                attempt += 1;
                if attempt > 20 {
                    break None;
                }
            };
            rows.extend(row);
        }
        TableData {
            table: self.table.clone(),
            rows,
        }
    }

    /// The referenced `(table, column)` if this column is a single-column foreign key.
    fn references(&self, column: &str) -> Option<(&str, &str)> {
        self.corpus
            .foreign_keys
            .iter()
            .filter(|fk| fk.schema == self.table.schema && fk.table == self.table.name)
            .find_map(|fk| {
                let i = fk.columns.iter().position(|c| c == column)?;
                Some((fk.ref_table.as_str(), fk.ref_columns[i].as_str()))
            })
    }

    fn domain(&mut self, column: &str, numeric: bool) -> Vec<String> {
        if let Some((ref_table, ref_column)) = self.references(column)
            && let Some(data) = self
                .done
                .get(&(self.table.schema.clone(), ref_table.to_owned()))
        {
            let mut values: Vec<String> = Vec::new();
            for v in data.values(ref_column) {
                if !values.iter().any(|x| x == v) {
                    values.push(v.to_owned());
                }
            }
            // A dangling reference now and then.
            values.push(if numeric {
                "99".into()
            } else {
                "dangling".into()
            });
            return values;
        }
        let mut values: Vec<String> = if numeric {
            ["1", "2", "3", "4", "5", "6", "2.5"]
                .map(String::from)
                .to_vec()
        } else {
            ["alpha", "beta", "gamma"].map(String::from).to_vec()
        };
        let harvested = self
            .harvest
            .get(&(self.table.schema.clone(), column.to_owned()));
        for literal in harvested.into_iter().flatten() {
            if !numeric {
                values.push(literal.clone());
            } else if let Ok(i) = literal.parse::<i64>() {
                values.extend([i - 1, i, i + 1].map(|n| n.to_string()));
            } else if literal.parse::<f64>().is_ok_and(f64::is_finite) {
                values.push(literal.clone());
            }
        }
        values.sort();
        values.dedup();
        values
    }
}
