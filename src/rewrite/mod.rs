//! The rewriter: from a client's SQL text to the SQL tablegate forwards, or a refusal.
//!
//! Parse with sqlparser (PostgreSQL dialect); walk every statement with the user's [`Access`]
//! ([`statement`], [`query`], [`from`], [`expr`], reading the AST through [`syntax`]), resolving
//! names as PostgreSQL would ([`scope`], [`search_path`]), replacing each relation by its
//! protected source and refusing what cannot be checked, fencing filtered sources when a
//! condition could fail on filtered-out rows ([`leakproof`], [`operand_traits`], [`name_traits`]) and keeping GROUP BY a primary key
//! valid over protected sources ([`grouping`]); check that nothing was left unwalked
//! ([`census`]); then make the tree safe to print ([`printable`]). Anything that does not parse
//! is refused with the parser's message: nothing unparsed is ever forwarded.

mod census;
mod colname;
mod expr;
mod from;
pub mod functions;
mod grouping;
mod leakproof;
mod name_traits;
pub mod operand_traits;
mod printable;
mod query;
mod scope;
pub mod search_path;
pub mod settings;
mod statement;
mod syntax;

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::{Catalog, RelationId};
use crate::policy::Access;
use crate::refusal::{Refusal, RefusalKind};
pub use search_path::SearchPath;
pub use statement::{Deallocation, SessionEffect, is_utf8_encoding};

/// What a rewrite needs to know about the session.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub access: &'a Access,
    pub search_path: &'a SearchPath,
    /// The client declared some parameter of a type a column compared with it may be converted
    /// to, failing on some values (a float, `oid`, `timestamptz`, …; extended protocol):
    /// [`leakproof`] then counts every parameter as such a value.
    pub risky_parameter_types: bool,
}

/// A statement string, rewritten.
#[derive(Clone, Debug)]
pub struct Rewritten {
    pub statements: Vec<Statement>,
    /// Messages for the client (stripped and hidden columns), sent as NOTICEs.
    pub notices: Vec<String>,
    pub effect: Option<SessionEffect>,
    /// The string is a `DEALLOCATE`, which the session carries out itself.
    pub deallocation: Option<Deallocation>,
}

impl Rewritten {
    /// The SQL to forward.
    pub fn sql(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.statements.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            use std::fmt::Write;
            let _ = write!(out, "{s}");
        }
        out
    }
}

pub(crate) struct Walker<'a> {
    catalog: &'a Catalog,
    access: &'a Access,
    search_path: &'a SearchPath,
    risky_parameter_types: bool,
    notices: Vec<String>,
    /// Within a WITH RECURSIVE list, the names of the CTEs after the one being read: PostgreSQL
    /// lets it reference them, tablegate does not follow (they are refused).
    later_ctes: Vec<String>,
    /// The statement has conditions that could fail on rows a filter rejects: row-filtered
    /// sources are fenced ([`leakproof`]).
    fence: bool,
    /// What the walker checked or inserted in the current statement ([`census`]).
    checked: census::Census,
    trace: Trace,
}

impl Walker<'_> {
    fn notice(&mut self, message: String) {
        if !self.notices.contains(&message) {
            self.notices.push(message);
        }
    }

    /// Notes that the statement reads a granted relation.
    fn read(&mut self, relation: RelationId) {
        if !self.trace.relations.contains(&relation) {
            self.trace.relations.push(relation);
        }
    }
}

/// What a rewrite did, beyond its result, for `explain`: kept even when the statement is
/// refused, so the explanation can show the policy behind the refusal.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The granted relations the statements read, in the order first met.
    pub relations: Vec<RelationId>,
    /// Some row-filtered source was fenced ([`leakproof`]): the query has conditions that could
    /// fail on rows a filter rejects.
    pub fenced: bool,
}

/// Parses SQL text the way tablegate reads every statement.
pub fn parse(sql: &str) -> Result<Vec<Statement>, Refusal> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(Refusal::new(
            RefusalKind::Unsupported,
            format!(
                "the statement is {} bytes long, more than the {MAX_STATEMENT_BYTES} tablegate checks at once",
                sql.len()
            ),
        )
        .with_hint("split it, or put long lists of values in a table"));
    }
    let dialect = PostgreSqlDialect {};
    let syntax_error = |e: ParserError| {
        let detail = e.to_string();
        let detail = detail.strip_prefix("sql parser error: ").unwrap_or(&detail);
        Refusal::new(
            RefusalKind::Syntax,
            format!("tablegate could not parse the statement: {detail}"),
        )
        .with_hint("tablegate forwards only SQL it can parse and check")
    };
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| syntax_error(e.into()))?;
    let operators = tokens.iter().filter(|t| may_nest(&t.token)).count();
    if operators > MAX_OPERATORS {
        return Err(Refusal::new(
            RefusalKind::Unsupported,
            format!(
                "the statement has {operators} operators and keywords, more than the \
                 {MAX_OPERATORS} tablegate checks in one statement"
            ),
        )
        .with_hint("split it, or write long OR chains of comparisons as IN (…) lists"));
    }
    statements(&mut Parser::new(&dialect).with_tokens_with_locations(tokens)).map_err(syntax_error)
}

/// sqlparser's `parse_statements`, but as PostgreSQL reads a string of statements: one may
/// begin with TABLE (`TABLE t` is `SELECT * FROM t`; sqlparser accepts it only inside a query),
/// and whatever follows a statement must be `;` or the end — sqlparser stops quietly at an
/// `END` there, which would leave the rest of the text unread rather than refused.
fn statements(parser: &mut Parser) -> Result<Vec<Statement>, ParserError> {
    let mut statements = Vec::new();
    loop {
        let mut delimited = statements.is_empty();
        while parser.consume_token(&Token::SemiColon) {
            delimited = true;
        }
        if parser.peek_token_ref().token == Token::EOF {
            return Ok(statements);
        }
        if !delimited {
            return parser.expected_ref("end of statement", parser.peek_token_ref());
        }
        statements.push(if parser.peek_keyword(Keyword::TABLE) {
            Statement::Query(parser.parse_query()?)
        } else {
            parser.parse_statement()?
        });
    }
}

/// The most operators and keywords one statement may hold. sqlparser bounds nesting through
/// parentheses, but a chain such as `a + a + … + a` or `x::t::t::…` parses into a tree as deep
/// as it is long, and walking, printing or dropping it recurses once per level: without a bound
/// one statement would overflow the stack and abort the process for every session. Every
/// token that can add a level counts (identifiers, literals, commas and parentheses cannot),
/// so the depth stays below this plus what the parser's own limit allows.
pub const MAX_OPERATORS: usize = 2_000;

/// The longest statement text tablegate checks: rewriting takes time and memory in proportion
/// to it, on the thread that serves the session (and others), so a few megabytes of IN list
/// must not stall them.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// The stack of every thread that parses or rewrites SQL: enough for a statement at
/// [`MAX_OPERATORS`] in an unoptimised build, where an operator chain takes about 11 KB per
/// level and a JOIN chain about 16 KB (the cache clones it), so about 32 MB at the limit. Only
/// the pages a deep statement touches are ever committed.
pub const STACK_SIZE: usize = 64 << 20;

fn may_nest(token: &Token) -> bool {
    match token {
        Token::Word(word) => word.quote_style.is_none() && word.keyword != Keyword::NoKeyword,
        Token::Whitespace(_)
        | Token::EOF
        | Token::Comma
        | Token::Period
        | Token::SemiColon
        | Token::LParen
        | Token::RParen
        | Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::Placeholder(_) => false,
        _ => true,
    }
}

/// Rewrites a statement string: all of it, or none (one refused statement refuses the string).
pub fn rewrite(sql: &str, context: &Context) -> Result<Rewritten, Refusal> {
    rewrite_traced(parse(sql)?, context).0
}

/// [`rewrite`] of parsed statements, and what the rewrite read on the way, whatever its outcome.
pub fn rewrite_traced(
    mut statements: Vec<Statement>,
    context: &Context,
) -> (Result<Rewritten, Refusal>, Trace) {
    let mut walker = Walker {
        catalog: context.catalog,
        access: context.access,
        search_path: context.search_path,
        risky_parameter_types: context.risky_parameter_types,
        notices: Vec::new(),
        later_ctes: Vec::new(),
        fence: false,
        checked: census::Census::default(),
        trace: Trace::default(),
    };
    let result = walk(&mut walker, &mut statements).map(|effect| Rewritten {
        deallocation: statements.first().and_then(Deallocation::of),
        statements,
        notices: std::mem::take(&mut walker.notices),
        effect,
    });
    (result, walker.trace)
}

fn is_transaction_control(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
    )
}

fn walk(
    walker: &mut Walker,
    statements: &mut [Statement],
) -> Result<Option<SessionEffect>, Refusal> {
    let mut effect = None;
    for statement in statements.iter_mut() {
        if effect.is_some() {
            // Upstream would resolve what follows along the new path before tablegate does.
            return Err(Refusal::new(
                RefusalKind::Setting,
                "SET search_path must be the last statement of a string of statements",
            )
            .with_hint("send the statements after it in a query of their own"));
        }
        // As PostgreSQL will see the relation: its source, without the columns the user may
        // not see (found by red-team review: a name the source leaves out is the outer row's).
        let has_column = |relation: &[String], column: &str| {
            let name = walker.resolve_relation(relation, "").ok()?;
            let id = walker.catalog.lookup(&name)?;
            let visible = &walker.access.table(id)?.visible;
            let columns = &walker.catalog.relation(id).columns;
            Some(
                columns
                    .iter()
                    .zip(visible)
                    .any(|(c, &visible)| visible && c.name == column),
            )
        };
        walker.fence = leakproof::needs_fence(
            statement,
            &has_column,
            walker.catalog.record_columns(),
            &|name| walker.catalog.column_traits(name),
            walker.risky_parameter_types,
        );
        walker.checked = census::Census::default();
        if let Some(e) = walker.statement(statement)? {
            effect = Some(e);
        }
        census::verify(statement, walker.checked)?;
    }
    // The path commits with the string's implicit transaction, as tablegate follows it; a
    // transaction block opened or ended in the string would decide it elsewhere.
    if effect.is_some() && statements.iter().any(is_transaction_control) {
        return Err(Refusal::new(
            RefusalKind::Setting,
            "SET search_path cannot share a string of statements with BEGIN, COMMIT, ROLLBACK or savepoints",
        )
        .with_hint("send SET search_path in a query of its own"));
    }
    if statements.len() > 1 && statements.iter().any(|s| Deallocation::of(s).is_some()) {
        return Err(Refusal::new(
            RefusalKind::Statement,
            "DEALLOCATE must be sent on its own, not together with other statements",
        ));
    }
    for statement in statements.iter_mut() {
        printable::make_printable(statement)?;
    }
    Ok(effect)
}
