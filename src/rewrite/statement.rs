//! Statements: which kinds may run, and what the session-level ones change.
//!
//! Read-only: queries (SELECT, WITH, VALUES, TABLE), EXPLAIN without ANALYZE (and only of
//! queries whose plan names no relation the user cannot read), SHOW of settings
//! drivers read, SET of settings drivers write, and transaction control. Everything else is
//! refused by name.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, Reset, Set, Statement, TransactionAccessMode, TransactionMode, UtilityOption,
    Value, visit_relations,
};

use super::Walker;
use super::scope::Frame;
use super::search_path::SearchPath;
use super::settings::SettingRules;
use crate::catalog::RelationKind;
use crate::names::fold;
use crate::policy::Source;
use crate::refusal::{Refusal, RefusalKind};

/// Settings a client may change. Everything that alters how text is lexed or who the session is
/// (standard_conforming_strings, role, session_authorization) is pinned by tablegate.
const SETTABLE: [&str; 7] = [
    "client_encoding",
    "datestyle",
    "timezone",
    "application_name",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
];

/// Settings a client may read.
const SHOWABLE: [&str; 25] = [
    "server_version",
    "server_version_num",
    "server_encoding",
    "client_encoding",
    "datestyle",
    "timezone",
    "time zone",
    "search_path",
    "standard_conforming_strings",
    "transaction_isolation",
    "transaction isolation level",
    "transaction_read_only",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "integer_datetimes",
    "intervalstyle",
    "extra_float_digits",
    "application_name",
    "max_identifier_length",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    // Pinned by the operator: a client may learn its bounds.
    "statement_timeout",
    "idle_session_timeout",
    "idle_in_transaction_session_timeout",
];

/// What a statement does to the session, beyond its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEffect {
    /// `SET search_path`: names resolve along this path from the next statement on.
    SearchPath(SearchPath),
    /// `RESET search_path` / `RESET ALL` / `SET search_path TO DEFAULT`.
    DefaultSearchPath,
}

/// `DEALLOCATE`: the prepared statements a client drops. The session carries it out with
/// protocol-level Close messages, which keep its record of statements as upstream's, rather
/// than forwarding the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deallocation {
    All,
    /// The name as PostgreSQL folds it.
    Named(String),
}

impl Deallocation {
    pub fn of(statement: &Statement) -> Option<Deallocation> {
        match statement {
            Statement::Deallocate { name, .. }
                if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") =>
            {
                Some(Deallocation::All)
            }
            Statement::Deallocate { name, .. } => Some(Deallocation::Named(fold(name))),
            _ => None,
        }
    }

    /// The command tag PostgreSQL completes it with.
    pub fn command_tag(&self) -> &'static str {
        match self {
            Deallocation::All => "DEALLOCATE ALL",
            Deallocation::Named(_) => "DEALLOCATE",
        }
    }
}

impl Walker<'_> {
    pub(super) fn statement(
        &mut self,
        statement: &mut Statement,
    ) -> Result<Option<SessionEffect>, Refusal> {
        match statement {
            Statement::Query(query) => {
                self.query(query, &Frame::ROOT, true)?;
                Ok(None)
            }
            Statement::Explain {
                describe_alias,
                analyze,
                verbose,
                statement: inner,
                options,
                query_plan,
                estimate,
                format,
            } => {
                if *analyze {
                    return Err(explain_analyze_refusal());
                }
                for option in options.iter().flatten() {
                    explain_option(option)?;
                }
                if *describe_alias != sqlparser::ast::DescribeAlias::Explain
                    || *query_plan
                    || *estimate
                    || format.is_some()
                {
                    return Err(Refusal::unsupported("this EXPLAIN form"));
                }
                without_costs(verbose, options);
                match inner.as_mut() {
                    Statement::Query(query) => {
                        self.query(query, &Frame::ROOT, true)?;
                        self.refuse_plans_naming_other_relations()?;
                        Ok(None)
                    }
                    other => Err(refused_statement(other)),
                }
            }
            Statement::Set(set) => {
                let effect = set_statement(set, self.catalog.setting_rules())?;
                if let Some(SessionEffect::SearchPath(path)) = &effect {
                    path.refuse_other_schemas(|schema| {
                        self.access
                            .granted_tables()
                            .any(|(id, _)| self.catalog.relation(id).name.schema == schema)
                    })?;
                }
                Ok(effect)
            }
            Statement::Reset(reset) => match &reset.reset {
                Reset::ALL => Ok(Some(SessionEffect::DefaultSearchPath)),
                Reset::ConfigurationParameter(name) => {
                    let variable = settable(&name.to_string())?;
                    Ok((variable == "search_path").then_some(SessionEffect::DefaultSearchPath))
                }
                Reset::SessionAuthorization => Err(refused_statement(statement)),
            },
            Statement::ShowVariable { variable } => {
                let name = variable.iter().map(fold).collect::<Vec<_>>().join(" ");
                if SHOWABLE.contains(&name.as_str()) {
                    Ok(None)
                } else {
                    Err(Refusal::new(
                        RefusalKind::Setting,
                        format!("SHOW {name} is not available through tablegate"),
                    )
                    .with_hint(format!("available: {}", SHOWABLE.join(", "))))
                }
            }
            Statement::StartTransaction {
                modes,
                statements,
                exception,
                has_end_keyword,
                ..
            } => {
                if !statements.is_empty() || exception.is_some() || *has_end_keyword {
                    return Err(Refusal::unsupported("a BEGIN ... END block"));
                }
                read_only_modes(modes).map(|_| None)
            }
            // What pools send when they hand a connection back (asyncpg): closing cursors only
            // drops upstream portals (the session's record may keep stale ones, which upstream
            // then refuses to run).
            Statement::Close { .. } => Ok(None),
            // LISTEN is refused, so UNLISTEN changes nothing: `UNLISTEN *` goes upstream with
            // the name quoted, which keeps its command tag and leaves no bare `*` to print.
            Statement::UNLISTEN { channel } => {
                if channel.quote_style.is_none() {
                    channel.quote_style = Some('"');
                }
                Ok(None)
            }
            // Carried out by the session as Close messages (see `Deallocation`).
            Statement::Deallocate { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. } => Ok(None),
            other => Err(refused_statement(other)),
        }
    }
}

fn set_statement(set: &mut Set, rules: &SettingRules) -> Result<Option<SessionEffect>, Refusal> {
    match set {
        Set::SingleAssignment {
            scope,
            hivevar,
            variable,
            values,
        } => {
            if *hivevar {
                return Err(Refusal::unsupported("SET with a variable namespace"));
            }
            let variable = settable(&variable.to_string())?;
            let local = matches!(scope, Some(sqlparser::ast::ContextModifier::Local));
            let default = matches!(values.as_slice(), [Expr::Identifier(id)] if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"));
            match variable {
                "search_path" => {
                    if local {
                        return Err(Refusal::new(
                            RefusalKind::Setting,
                            "SET LOCAL search_path is not supported",
                        )
                        .with_hint("use SET search_path outside a transaction block"));
                    }
                    if default {
                        return Ok(Some(SessionEffect::DefaultSearchPath));
                    }
                    SearchPath::from_set_values(values).map(|p| Some(SessionEffect::SearchPath(p)))
                }
                "client_encoding" => {
                    let utf8 = matches!(values.as_slice(), [v] if is_utf8_name(v));
                    if utf8 || default {
                        Ok(None)
                    } else {
                        Err(Refusal::new(
                            RefusalKind::Setting,
                            "tablegate speaks UTF8 only: client_encoding cannot be changed",
                        )
                        .with_hint("use UTF8 and convert in the client"))
                    }
                }
                _ => {
                    for v in values.iter() {
                        plain_setting_value(v)?;
                    }
                    rules.check(variable, values)?;
                    Ok(None)
                }
            }
        }
        Set::SetTimeZone { value, .. } => {
            plain_setting_value(value)?;
            rules.check_time_zone(std::slice::from_ref(value))?;
            Ok(None)
        }
        Set::SetNames { charset_name, .. }
            if is_utf8_name(&Expr::Identifier(charset_name.clone())) =>
        {
            Ok(None)
        }
        Set::SetTransaction {
            modes,
            snapshot: None,
            ..
        } => read_only_modes(modes).map(|_| None),
        _ => Err(Refusal::new(
            RefusalKind::Setting,
            format!("`{set}` is not allowed: tablegate fixes the session's identity and lexing"),
        )
        .with_hint("you act as yourself: your roles come from tablegate's policies, not from SET")),
    }
}

impl Walker<'_> {
    /// A plan names every relation it scans: a granted view's base tables, a partitioned or
    /// inherited table's partitions and children, and the tables a row filter's subquery reads
    /// (`region_members`), which do not exist for the user (found by red-team review).
    fn refuse_plans_naming_other_relations(&self) -> Result<(), Refusal> {
        for &id in &self.trace.relations {
            let relation = self.catalog.relation(id);
            let filter_reads_relations = match self.access.table(id).map(|t| &t.source) {
                Some(Ok(Source::Protected(query))) => {
                    let mut scans = 0;
                    let _ = visit_relations(query.as_ref(), |_| {
                        scans += 1;
                        ControlFlow::<()>::Continue(())
                    });
                    scans > 1
                }
                _ => false,
            };
            if relation.kind == RelationKind::View
                || relation.has_children
                || filter_reads_relations
            {
                return Err(Refusal::new(
                    RefusalKind::Statement,
                    format!(
                        "EXPLAIN is not available for queries reading {}: its plan would name relations the policy reads on your behalf",
                        relation.name
                    ),
                )
                .with_hint("run the query itself, or ask a DBA for its plan"));
            }
        }
        Ok(())
    }
}

/// EXPLAIN shows the plan, never the planner's estimates: those come from statistics over all
/// of a table's rows, so `EXPLAIN SELECT * FROM employees WHERE salary > 5000` estimating 250
/// rows, where the user's own rows have none, would describe the rows the policy filters out.
/// `COSTS false` (rows, width and cost) is forced; `VERBOSE` moves into the option list, the
/// only form PostgreSQL accepts next to it.
/// EXPLAIN options are allowed by name: ANALYZE (also spelt ANALYSE) runs the statement and
/// counts the rows every plan node removed, SETTINGS shows the upstream's configuration, BUFFERS
/// and WAL report work done; only options that shape the printed plan pass.
fn explain_option(option: &UtilityOption) -> Result<(), Refusal> {
    const ALLOWED: [&str; 4] = ["verbose", "costs", "format", "summary"];
    let name = fold(&option.name);
    if name == "analyze" || name == "analyse" {
        return Err(explain_analyze_refusal());
    }
    if !ALLOWED.contains(&name.as_str()) {
        return Err(Refusal::new(
            RefusalKind::Statement,
            format!("the EXPLAIN option {name} is not allowed"),
        )
        .with_hint(format!("allowed options: {}", ALLOWED.join(", "))));
    }
    match &option.arg {
        None | Some(Expr::Identifier(_) | Expr::Value(_)) => Ok(()),
        Some(_) => Err(Refusal::unsupported(format!(
            "an expression as the value of EXPLAIN option {name}"
        ))),
    }
}

fn explain_analyze_refusal() -> Refusal {
    Refusal::new(
        RefusalKind::Statement,
        "EXPLAIN ANALYZE runs the statement and reports row counts of every plan node; it is not allowed",
    )
    .with_hint("use EXPLAIN without ANALYZE")
}

fn without_costs(verbose: &mut bool, options: &mut Option<Vec<UtilityOption>>) {
    let options = options.get_or_insert_with(Vec::new);
    if std::mem::take(verbose) {
        options.insert(
            0,
            UtilityOption {
                name: Ident::new("VERBOSE"),
                arg: None,
            },
        );
    }
    options.retain(|o| !o.name.value.eq_ignore_ascii_case("costs"));
    options.push(UtilityOption {
        name: Ident::new("COSTS"),
        arg: Some(Expr::value(Value::Boolean(false))),
    });
}

/// Transactions stay read-only: upstream sessions default to read-only, and READ WRITE would
/// lift that second line of defence.
fn read_only_modes(modes: &[TransactionMode]) -> Result<(), Refusal> {
    if modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    }) {
        return Err(Refusal::new(
            RefusalKind::Statement,
            "READ WRITE transactions are not allowed: access is read-only",
        )
        .with_hint("use BEGIN or BEGIN READ ONLY"));
    }
    Ok(())
}

fn settable(name: &str) -> Result<&'static str, Refusal> {
    let folded = name.trim_matches('"').to_ascii_lowercase();
    SETTABLE
        .iter()
        .find(|s| **s == folded)
        .copied()
        .ok_or_else(|| {
            Refusal::new(RefusalKind::Setting, format!("SET {name} is not allowed")).with_hint(
                format!("settings a client may change: {}", SETTABLE.join(", ")),
            )
        })
}

fn is_utf8_name(value: &Expr) -> bool {
    let text = match value {
        Expr::Identifier(id) => id.value.clone(),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            _ => return false,
        },
        _ => return false,
    };
    is_utf8_encoding(&text)
}

/// Whether PostgreSQL reads `name` as the UTF8 encoding. It keeps only a name's ASCII letters
/// and digits, lowercased (`clean_encoding_name`: asyncpg's startup `'utf-8'`, quotes
/// included, is UTF8), and knows UTF8 as `utf8` or `unicode`. Exactly so: tablegate lexes
/// text as UTF8, and an encoding PostgreSQL reads otherwise would split it differently.
pub fn is_utf8_encoding(name: &str) -> bool {
    let cleaned: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    matches!(cleaned.as_str(), "utf8" | "unicode")
}

/// A setting's value must be a literal or a name, never an expression.
fn plain_setting_value(value: &Expr) -> Result<(), Refusal> {
    match value {
        Expr::Identifier(_) => Ok(()),
        Expr::Value(v) if !matches!(v.value, Value::Placeholder(_)) => Ok(()),
        Expr::UnaryOp { expr, .. } if matches!(expr.as_ref(), Expr::Value(_)) => Ok(()),
        Expr::Interval(_) => Ok(()),
        _ => Err(Refusal::new(
            RefusalKind::Setting,
            format!("setting values must be literals, not `{value}`"),
        )
        .with_hint("write the value as a literal, e.g. SET TimeZone = 'UTC'")),
    }
}

fn refused_statement(statement: &Statement) -> Refusal {
    const OBJECTS: [&str; 14] = [
        "TABLE",
        "INDEX",
        "VIEW",
        "SCHEMA",
        "DATABASE",
        "ROLE",
        "USER",
        "FUNCTION",
        "PROCEDURE",
        "TRIGGER",
        "SEQUENCE",
        "TYPE",
        "EXTENSION",
        "INTO",
    ];
    let text = statement.to_string();
    let mut words = text.split_whitespace().map(str::to_uppercase);
    let mut keyword = words.next().unwrap_or_default();
    if let Some(object) = words.next().filter(|w| OBJECTS.contains(&w.as_str())) {
        keyword = format!("{keyword} {object}");
    }
    Refusal::new(
        RefusalKind::Statement,
        format!("{keyword} is not allowed: tablegate permits read-only queries only"),
    )
    .with_hint("use SELECT; data changes and DDL go through other channels")
}
