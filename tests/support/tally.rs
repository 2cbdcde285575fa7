//! Counting outcomes and printing the summary table.

use std::collections::BTreeMap;
use std::fmt::Write;

use tablegate::refusal::RefusalKind;

use super::check::Outcome;
use super::corpus::SpiderQuery;

#[derive(Default)]
pub struct Tally {
    pub total: usize,
    pub not_postgres: usize,
    /// SQLSTATE and message of PostgreSQL's rejection → (count, example query).
    pub not_postgres_reasons: BTreeMap<String, (usize, String)>,
    pub equal: usize,
    pub equal_tie_break: usize,
    pub equal_both_error: usize,
    pub equal_nonempty: usize,
    pub equal_filtered: usize,
    pub equal_fenced: usize,
    pub touches_hidden: usize,
    pub touches_hidden_checked: usize,
    /// Refused, and the query names a hidden column: correct.
    pub refused_hidden: usize,
    /// Refused although the query is valid on the copy: each one is a rewriter gap.
    pub refused_valid: usize,
    /// `kind: reason` → (count, example query).
    pub refusal_reasons: BTreeMap<String, (usize, String)>,
    /// Defects: accepted queries whose result differs.
    pub differs: Vec<String>,
}

impl Tally {
    pub fn add(&mut self, q: &SpiderQuery, outcome: Outcome) {
        self.total += 1;
        match outcome {
            Outcome::NotPostgres(e) => {
                self.not_postgres += 1;
                let key = format!("{} {}", e.code, reason(&e.message.replace('"', "`")));
                let entry = self
                    .not_postgres_reasons
                    .entry(key)
                    .or_insert_with(|| (0, format!("#{} {}", q.id, q.query)));
                entry.0 += 1;
            }
            Outcome::Equal(e) => {
                self.equal += 1;
                self.equal_tie_break += usize::from(e.tie_break);
                self.equal_both_error += usize::from(e.both_error);
                self.equal_nonempty += usize::from(e.rows > 0);
                self.equal_filtered += usize::from(e.filtered);
                self.equal_fenced += usize::from(e.fenced);
            }
            Outcome::TouchesHidden { checked } => {
                self.touches_hidden += 1;
                self.touches_hidden_checked += usize::from(checked);
            }
            Outcome::Refused {
                refusal,
                uses_hidden,
            } => {
                // Correct only if the query names a hidden column and that is the reason given.
                let uses_hidden = uses_hidden && refusal.kind == RefusalKind::Column;
                if uses_hidden {
                    self.refused_hidden += 1;
                } else {
                    self.refused_valid += 1;
                }
                let key = format!(
                    "{}{}: {}",
                    if uses_hidden { "(hidden) " } else { "" },
                    refusal.kind.as_str(),
                    reason(&refusal.message)
                );
                let entry = self
                    .refusal_reasons
                    .entry(key)
                    .or_insert_with(|| (0, format!("#{} {}", q.id, q.query)));
                entry.0 += 1;
            }
            Outcome::Differs { rewritten, detail } => self.differs.push(format!(
                "#{} [{}] {}\n    rewritten: {rewritten}\n    {detail}",
                q.id, q.db_id, q.query
            )),
        }
    }

    pub fn accepted(&self) -> usize {
        self.equal + self.touches_hidden + self.differs.len()
    }

    pub fn summary(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n{title}: {} queries", self.total);
        let row = |out: &mut String, label: &str, n: usize| {
            let _ = writeln!(out, "  {label:<58}{n:>6}");
        };
        row(
            &mut out,
            "not PostgreSQL (PostgreSQL rejects the original)",
            self.not_postgres,
        );
        row(&mut out, "accepted", self.accepted());
        row(
            &mut out,
            "  same result as the original on the permitted copy",
            self.equal,
        );
        row(&mut out, "    of which returning rows", self.equal_nonempty);
        row(
            &mut out,
            "    of which the policy changed the answer",
            self.equal_filtered,
        );
        row(
            &mut out,
            "    of which read row-filtered sources fenced (OFFSET 0)",
            self.equal_fenced,
        );
        row(
            &mut out,
            "    of which equal once LIMIT ties are broken",
            self.equal_tie_break,
        );
        row(
            &mut out,
            "    of which both sides raise the same error",
            self.equal_both_error,
        );
        row(
            &mut out,
            "  touches hidden columns (stripped from the select list)",
            self.touches_hidden,
        );
        row(
            &mut out,
            "    of which equal to the copy without those columns",
            self.touches_hidden_checked,
        );
        row(&mut out, "  DIFFERENT RESULT (defect)", self.differs.len());
        row(
            &mut out,
            "refused, the query uses a hidden column (correct)",
            self.refused_hidden,
        );
        row(
            &mut out,
            "refused, the query is valid on the copy (rewriter gap)",
            self.refused_valid,
        );
        top_reasons(
            &mut out,
            "refusals by kind and reason",
            &self.refusal_reasons,
            100,
        );
        top_reasons(
            &mut out,
            "PostgreSQL's rejections (top 12)",
            &self.not_postgres_reasons,
            12,
        );
        for d in &self.differs {
            let _ = writeln!(out, "DIFFERS {d}");
        }
        out
    }
}

/// The tallies of one scenario: the corpus, repaired queries, and each kind of variant.
#[derive(Default)]
pub struct Report {
    pub tally: Tally,
    pub repaired: Tally,
    /// Per kind of equivalent form.
    pub variants: Vec<(&'static str, Tally)>,
}

impl Report {
    pub fn variant(&mut self, name: &'static str) -> &mut Tally {
        let position = match self.variants.iter().position(|(n, _)| *n == name) {
            Some(p) => p,
            None => {
                self.variants.push((name, Tally::default()));
                self.variants.len() - 1
            }
        };
        &mut self.variants[position].1
    }

    pub fn tallies(&self) -> impl Iterator<Item = &Tally> {
        [&self.tally, &self.repaired]
            .into_iter()
            .chain(self.variants.iter().map(|(_, t)| t))
    }

    pub fn print(&self, title: &str) {
        println!("{}", self.tally.summary(title));
        if self.repaired.total > 0 {
            let title = format!("{title}; not-PostgreSQL queries with \"strings\" repaired");
            println!("{}", self.repaired.summary(&title));
        }
        for (name, tally) in &self.variants {
            println!(
                "{}",
                tally.summary(&format!("{title}; every valid query {name}"))
            );
        }
    }

    /// No accepted query may differ from the copy, in any part of the report.
    pub fn assert_no_difference(&self) {
        let differs: Vec<&str> = self
            .tallies()
            .flat_map(|t| t.differs.iter().map(String::as_str))
            .collect();
        assert!(
            differs.is_empty(),
            "{} accepted queries return something other than the permitted copy does:\n{}",
            differs.len(),
            differs.join("\n")
        );
    }

    pub fn refused_valid(&self) -> usize {
        self.tallies().map(|t| t.refused_valid).sum()
    }

    pub fn variants_equal(&self) -> usize {
        self.variants.iter().map(|(_, t)| t.equal).sum()
    }
}

fn top_reasons(
    out: &mut String,
    title: &str,
    reasons: &BTreeMap<String, (usize, String)>,
    top: usize,
) {
    if reasons.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    let mut sorted: Vec<_> = reasons.iter().collect();
    sorted.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    for (reason, (n, example)) in sorted.into_iter().take(top) {
        let _ = writeln!(out, "  {n:>4}  {reason}\n        e.g. {example}");
    }
}

/// A refusal message with the query's own names blanked out, so that refusals group by cause.
fn reason(message: &str) -> String {
    let mut out = String::new();
    let mut in_quote = false;
    for ch in message.chars() {
        if ch == '`' {
            if !in_quote {
                out.push_str("`…");
            }
            in_quote = !in_quote;
            if !in_quote {
                out.push('`');
            }
        } else if !in_quote {
            out.push(ch);
        }
    }
    // "nothing left to return: … (t.a, t.b)" → "nothing left to return: …"
    if let Some((head, _)) = out.split_once(" (")
        && out.ends_with(')')
    {
        out = head.to_owned();
    }
    // "permission denied for column t.c: …" → "permission denied for column …: …"
    for prefix in [
        "permission denied for column ",
        "permission denied for relation ",
        "permission denied for function ",
    ] {
        if let Some(rest) = out.strip_prefix(prefix)
            && let Some((_, tail)) = rest.split_once(':')
        {
            return format!("{prefix}…:{tail}");
        }
    }
    out
}
