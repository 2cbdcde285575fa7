//! Properties over generated and mutated SQL:
//! - the rewriter never panics;
//! - in every accepted output, every read of a protected table is its protected source;
//! - a rewrite served from the shape cache is exactly the fresh rewrite of the same text.

use std::ops::ControlFlow;
use std::sync::Arc;

use proptest::prelude::*;
use sqlparser::ast::{Statement, TableFactor, Visit, Visitor};
use tablegate::cache::RewriteCache;
use tablegate::catalog::{Catalog, catalog_with_keys};
use tablegate::directory::users_file;
use tablegate::policy::{Access, PolicySet, Source};
use tablegate::rewrite::{Context, SearchPath, parse, rewrite, rewrite_traced};

const POLICY: &str = r#"
[datasource.d]
deny_columns = ["customers.phone"]
[role.rep.datasource.d]
tables = ["public.orders", "public.customers"]
rows."public.orders" = "region IN ({{user.regions}})"
rows."public.customers" = "region <> 'Hidden'"
mask."customers.email" = "hash"
[[assign]]
user = "alice"
roles = ["rep"]
vars = { regions = ["East", "North"] }
"#;

struct World {
    catalog: Catalog,
    access: Access,
    path: SearchPath,
    /// The protected sources' text, by table.
    sources: Vec<(String, String)>,
}

fn world() -> World {
    // Primary keys: grouping by one brings the columns it determines into the GROUP BY.
    let catalog = catalog_with_keys(
        &[
            (
                "public",
                "orders",
                &["id", "region", "amount", "customer_id", "note"],
            ),
            (
                "public",
                "customers",
                &["id", "name", "phone", "region", "email"],
            ),
            ("public", "secret", &["x"]),
        ],
        &[
            ("public", "orders", &["id"]),
            ("public", "customers", &["id"]),
        ],
    );
    let policies = PolicySet::from_str("p.toml", POLICY).unwrap();
    let user = users_file::parse("[[user]]\nuserid = \"alice\"\n", "u")
        .unwrap()
        .remove(0);
    let access = Access::build(&policies, &catalog, &user, "d");
    let sources = access
        .granted_tables()
        .map(|(id, t)| {
            let name = catalog.relation(id).name.name.clone();
            match t.source.as_ref().unwrap() {
                Source::Protected(q) => (name, q.to_string()),
                Source::Whole => panic!("test tables are all protected"),
            }
        })
        .collect();
    World {
        catalog,
        access,
        path: SearchPath::parse_setting("public").unwrap(),
        sources,
    }
}

impl World {
    fn context(&self) -> Context<'_> {
        Context {
            catalog: &self.catalog,
            access: &self.access,
            search_path: &self.path,
            risky_parameter_types: false,
        }
    }
}

/// Counts reads of each protected table and how many of them sit inside its protected source
/// (fenced or not).
struct Reads<'a> {
    sources: &'a [(String, String)],
    table_reads: usize,
    source_reads: usize,
    bare: Vec<String>,
}

impl Visitor for Reads<'_> {
    type Break = ();
    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name, args: None, ..
            } => {
                let parts: Vec<&str> = name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident())
                    .map(|i| i.value.as_str())
                    .collect();
                match parts.as_slice() {
                    ["public", table] if self.sources.iter().any(|(t, _)| t == table) => {
                        self.table_reads += 1
                    }
                    [_, _] => {}
                    other => self.bare.push(other.join(".")),
                }
            }
            TableFactor::Derived { subquery, .. } => {
                // A source may sit behind the optimization fence (`OFFSET 0`) when the
                // statement holds a condition that could leak filtered-out rows.
                let text = subquery.to_string();
                let unfenced = text.strip_suffix(" OFFSET 0").unwrap_or(&text);
                if self.sources.iter().any(|(_, s)| s == unfenced) {
                    self.source_reads += 1;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn cte_names(statements: &[Statement]) -> Vec<String> {
    struct Ctes(Vec<String>);
    impl Visitor for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, q: &sqlparser::ast::Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                self.0.extend(
                    with.cte_tables
                        .iter()
                        .map(|c| c.alias.name.value.to_lowercase()),
                );
            }
            ControlFlow::Continue(())
        }
    }
    let mut c = Ctes(Vec::new());
    for s in statements {
        let _ = s.visit(&mut c);
    }
    c.0
}

/// Rewrites `sql`; if accepted, checks that the output reads protected tables only through
/// their sources and that every unqualified FROM name is a CTE.
fn check_occurrences(world: &World, sql: &str) -> Result<(), TestCaseError> {
    let Ok(rewritten) = rewrite(sql, &world.context()) else {
        return Ok(());
    };
    let printed = rewritten.sql();
    let reparsed = parse(&printed)
        .map_err(|e| TestCaseError::fail(format!("output does not parse: {e}\n{printed}")))?;
    let mut reads = Reads {
        sources: &world.sources,
        table_reads: 0,
        source_reads: 0,
        bare: Vec::new(),
    };
    for s in &reparsed {
        let _ = s.visit(&mut reads);
    }
    prop_assert_eq!(
        reads.table_reads,
        reads.source_reads,
        "a protected table is read outside its source:\n{}\n-> {}",
        sql,
        printed
    );
    let ctes = cte_names(&reparsed);
    for name in &reads.bare {
        prop_assert!(
            ctes.contains(&name.to_lowercase()),
            "unqualified FROM name `{}` is not a CTE:\n{}\n-> {}",
            name,
            sql,
            printed
        );
    }
    Ok(())
}

// ---- Generated queries ---------------------------------------------------------------------------

fn table() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("orders"),
        2 => Just("public.orders"),
        1 => Just("\"orders\""),
        1 => Just("ORDERS"),
        3 => Just("customers"),
        1 => Just("public . customers"),
        1 => Just("secret"),
    ]
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..1_000_000).prop_map(|n| n.to_string()),
        (0u32..1000, 0u32..100).prop_map(|(a, b)| format!("{a}.{b}")),
        "[a-zA-Z '\\\\\"$;*/\n-]{0,12}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
    ]
}

fn condition(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        (prop_oneof![4 => Just("id"), 2 => Just("region"), 1 => Just("x.id"), 1 => Just("phone")], literal())
            .prop_map(|(c, l)| format!("{c} = {l}")),
        literal().prop_map(|l| format!("region IN ({l}, 'East')")),
        Just("amount IS NOT NULL".to_string()),
        // Can fail on a filtered-out row: the sources get fenced.
        (0i64..5).prop_map(|n| format!("amount / (id - {n}) > 0")),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        leaf,
        (condition(depth - 1), condition(depth - 1)).prop_map(|(a, b)| format!("({a} OR {b})")),
        (query(depth - 1)).prop_map(|q| format!("EXISTS ({q})")),
        (query(depth - 1)).prop_map(|q| format!("id IN ({q})")),
    ]
    .boxed()
}

fn from_item(depth: u32) -> BoxedStrategy<String> {
    let leaf = (table(), prop_oneof![Just(""), Just(" x"), Just(" AS x")])
        .prop_map(|(t, a)| format!("{t}{a}"));
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        leaf,
        (from_item(depth - 1), table(), condition(depth - 1))
            .prop_map(|(l, r, c)| format!("{l} LEFT JOIN {r} ON {c}")),
        query(depth - 1).prop_map(|q| format!("({q}) AS x")),
        (table(), query(depth - 1)).prop_map(|(t, q)| format!("{t}, LATERAL ({q}) AS y")),
    ]
    .boxed()
}

fn query(depth: u32) -> BoxedStrategy<String> {
    let select = (
        prop_oneof![3 => Just("*"), 3 => Just("id"), 2 => Just("count(*)"), 1 => Just("name, phone"), 1 => Just("x.*")],
        from_item(depth),
        prop::option::of(condition(depth)),
        prop::option::of(prop_oneof![Just(" ORDER BY 1"), Just(" LIMIT 5"), Just(" GROUP BY 1")]),
    )
        .prop_map(|(cols, from, cond, tail)| {
            let mut q = format!("SELECT {cols} FROM {from}");
            if let Some(c) = cond {
                q.push_str(&format!(" WHERE {c}"));
            }
            q.push_str(tail.unwrap_or(""));
            q
        });
    if depth == 0 {
        return select.boxed();
    }
    prop_oneof![
        select.clone(),
        (select.clone(), select.clone()).prop_map(|(a, b)| format!("{a} UNION ALL {b}")),
        (
            prop_oneof![Just("orders"), Just("c")],
            query(depth - 1),
            select
        )
            .prop_map(|(name, inner, outer)| format!("WITH {name} AS ({inner}) {outer}")),
    ]
    .boxed()
}

/// Random edits at token boundaries: the kind of broken SQL a fuzzer feeds a parser.
fn mutate(sql: &str, edits: &[(usize, u8)]) -> String {
    const INSERTS: [&str; 14] = [
        " orders ", " secret ", "(", ")", "'", "--", "/*", "*/", " WITH ", " UNION ", ",", " . ",
        "$$", "\"",
    ];
    let mut words: Vec<String> = sql.split(' ').map(str::to_owned).collect();
    for &(at, op) in edits {
        if words.is_empty() {
            break;
        }
        let i = at % words.len();
        match op % 3 {
            0 => {
                words.remove(i);
            }
            1 => words.insert(i, INSERTS[(op as usize / 3) % INSERTS.len()].to_string()),
            _ => {
                let w = words[i].clone();
                words.insert(i, w);
            }
        }
    }
    words.join(" ")
}

/// Found by the mutation property: a scalar subquery in WHERE fences the sources, and the fenced
/// source inside a CTE that shadows its own table is still the only read of that table.
#[test]
fn a_fenced_source_under_a_shadowing_cte_is_the_only_read() {
    let world = world();
    let sql = "SELECT FROM (WITH orders AS (SELECT * FROM orders x) \
               SELECT * FROM (SELECT * FROM orders AS x ORDER BY 1) AS x \
               WHERE (SELECT * FROM orders AS x WHERE id = 0)) AS x";
    let printed = rewrite(sql, &world.context()).unwrap().sql();
    assert!(printed.contains("OFFSET 0"), "{printed}");
    check_occurrences(&world, sql).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn generated_queries_read_protected_tables_only_through_their_sources(sql in query(2)) {
        let world = world();
        check_occurrences(&world, &sql)?;
    }

    #[test]
    fn mutated_queries_never_panic_and_stay_protected(
        sql in query(2),
        edits in prop::collection::vec((0usize..64, 0u8..60), 1..4),
    ) {
        let world = world();
        check_occurrences(&world, &mutate(&sql, &edits))?;
    }

    #[test]
    fn a_cache_hit_equals_a_fresh_rewrite(
        shape in prop_oneof![
            Just("SELECT id, amount FROM orders WHERE amount > {n} AND note = {s}"),
            Just("SELECT name FROM customers WHERE region IN ({s}, {s}) ORDER BY 1 LIMIT {n}"),
            Just("SELECT phone, name, region FROM customers ORDER BY {n}"),
            Just("WITH o AS (SELECT * FROM orders WHERE id = {n}) SELECT count(*) FROM o WHERE note LIKE {s}"),
            Just("SELECT {s} AS label, {d} * amount FROM orders o JOIN customers c ON c.id = o.customer_id AND c.name <> {s}"),
            Just("SELECT id FROM orders WHERE note = {s}; SELECT {n}"),
            Just("EXPLAIN SELECT id FROM orders WHERE id BETWEEN {n} AND {n}"),
            Just("SELECT id FROM orders WHERE created = DATE {s} OR note = {s} -- {s}\n"),
            Just("SELECT /* {s} */ id FROM orders WHERE note = {s}"),
            Just("SELECT id FROM secret WHERE x = {s}"),
        ],
        first in prop::collection::vec(literal_value(), 6),
        second in prop::collection::vec(literal_value(), 6),
    ) {
        let world = world();
        let path: Arc<str> = Arc::from(world.path.to_string());
        let cache = RewriteCache::new(64);
        let warm = fill(shape, &first);
        let _ = cache.rewrite(&warm, &world.context(), &path);
        let sql = fill(shape, &second);
        let cached = cache.rewrite(&sql, &world.context(), &path).map(|(p, _)| p.sql).map_err(|e| e.message);
        let fresh = rewrite(&sql, &world.context()).map(|r| r.sql()).map_err(|e| e.message);
        prop_assert_eq!(cached, fresh, "{}", sql);
    }
}

/// Literal values, hostile ones included; kept per placeholder kind by `fill`.
fn literal_value() -> impl Strategy<Value = (String, String, String)> {
    (
        "[a-zA-Z0-9 '\\\\\"$;*/\n\t-]{0,16}",
        0u64..10_000_000_000,
        (0u32..1000, 0u32..1000),
    )
        .prop_map(|(s, n, (a, b))| (s, n.to_string(), format!("{a}.{b}")))
}

fn fill(shape: &str, values: &[(String, String, String)]) -> String {
    let mut out = String::new();
    let mut rest = shape;
    let mut i = 0;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let (s, n, d) = &values[i % values.len()];
        match &rest[at..at + 3] {
            "{s}" => out.push_str(&format!("'{}'", s.replace('\'', "''"))),
            "{n}" => out.push_str(n),
            _ => out.push_str(d),
        }
        i += 1;
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_point_query_is_served_from_the_cache_with_new_literals() {
    let world = world();
    let path: Arc<str> = Arc::from(world.path.to_string());
    let cache = RewriteCache::new(64);
    let (first, outcome) = cache
        .rewrite(
            "SELECT amount FROM orders WHERE id = 1",
            &world.context(),
            &path,
        )
        .unwrap();
    assert!(!outcome.hit);
    let (second, outcome) = cache
        .rewrite(
            "SELECT amount FROM orders WHERE id = 42",
            &world.context(),
            &path,
        )
        .unwrap();
    assert!(outcome.hit);
    assert_eq!(second.sql, first.sql.replace("id = 1", "id = 42"));
    // A hostile value in a slot is re-quoted, never pasted.
    let (third, outcome) = cache
        .rewrite(
            "SELECT amount FROM orders WHERE id = 1 AND note = 'x'",
            &world.context(),
            &path,
        )
        .unwrap();
    assert!(!outcome.hit);
    let (fourth, outcome) = cache
        .rewrite(
            r"SELECT amount FROM orders WHERE id = 1 AND note = '\'' OR true --'",
            &world.context(),
            &path,
        )
        .unwrap();
    assert!(outcome.hit);
    assert_eq!(fourth.sql, third.sql.replace("'x'", r"E'\\\' OR true --'"));
}

#[test]
fn statements_whose_meaning_depends_on_a_literal_are_keyed_by_their_text() {
    let world = world();
    let path: Arc<str> = Arc::from(world.path.to_string());
    let cache = RewriteCache::new(64);
    // A renumbered ordinal is not a slot: ORDER BY 1 here is the hidden phone.
    cache
        .rewrite(
            "SELECT phone, name FROM customers ORDER BY 2",
            &world.context(),
            &path,
        )
        .unwrap();
    let refused = cache.rewrite(
        "SELECT phone, name FROM customers ORDER BY 1",
        &world.context(),
        &path,
    );
    assert!(
        refused.is_err(),
        "ordering by the hidden column must be refused, not served from the cache"
    );
    // Nor is an ordinal where a masked column could be its target (ORDER BY 2 is the masked
    // email), or one past a hidden column that `*` leaves out (ORDER BY 4 is region in the query
    // as written, but the fourth column upstream).
    for (ordered, refused_position, because) in [
        (
            "SELECT name, email FROM customers ORDER BY {}",
            "2",
            "masked",
        ),
        (
            "SELECT name, email FROM customers GROUP BY {}",
            "2",
            "masked",
        ),
        (
            "SELECT name, email FROM customers UNION ALL SELECT name, email FROM customers ORDER BY {}",
            "2",
            "masked",
        ),
        ("SELECT * FROM customers ORDER BY {}", "4", "left out of *"),
    ] {
        cache
            .rewrite(&ordered.replace("{}", "1"), &world.context(), &path)
            .unwrap();
        let refused = cache.rewrite(
            &ordered.replace("{}", refused_position),
            &world.context(),
            &path,
        );
        assert!(
            refused.is_err_and(|e| e.message.contains(because)),
            "ORDER BY {refused_position} must be refused ({because}), not served from the cache: {ordered}"
        );
    }
    // SET values are never slots.
    cache
        .rewrite("SET client_encoding = 'UTF8'", &world.context(), &path)
        .unwrap();
    assert!(
        cache
            .rewrite("SET client_encoding = 'SJIS'", &world.context(), &path)
            .is_err()
    );
    // Neither are positions in parentheses, nor digits too large for a position, nor text
    // search configurations (looked up by name upstream), nor positions that decide which
    // columns a grouped primary key brings into the GROUP BY.
    for (first, second) in [
        (
            "SELECT c.id, c.name FROM customers c GROUP BY 2",
            "SELECT c.id, c.name FROM customers c GROUP BY 1",
        ),
        (
            "SELECT name, email FROM customers ORDER BY (1)",
            "SELECT name, email FROM customers ORDER BY (2)",
        ),
        (
            "SELECT name, email FROM customers ORDER BY 99999999999999999999999",
            "SELECT name, email FROM customers ORDER BY 2",
        ),
        (
            "SELECT to_tsvector('english', name) FROM customers",
            "SELECT to_tsvector('nosuch.cfg', name) FROM customers",
        ),
    ] {
        let _ = cache.rewrite(first, &world.context(), &path);
        let fresh = rewrite(second, &world.context()).map(|r| r.sql());
        let served = cache
            .rewrite(second, &world.context(), &path)
            .map(|(p, _)| p.sql.to_string());
        assert_eq!(
            served.map_err(|e| e.message),
            fresh.map_err(|e| e.message),
            "{second} after {first}: the cache must serve what a fresh rewrite gives"
        );
    }
}

/// The properties above must not pass vacuously: most generated queries are accepted, some of
/// them with fenced sources, and most shapes are served from the cache the second time.
#[test]
fn the_generators_exercise_accepted_queries_and_cache_hits() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let world = world();
    let mut runner = TestRunner::deterministic();
    let strategy = query(2);
    let (mut accepted, mut fenced) = (0, 0);
    for _ in 0..300 {
        let sql = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(statements) = parse(&sql) else {
            continue;
        };
        let (result, trace) = rewrite_traced(statements, &world.context());
        if result.is_ok() {
            accepted += 1;
            fenced += usize::from(trace.fenced);
        }
    }
    assert!(
        accepted >= 90,
        "only {accepted} of 300 generated queries were accepted"
    );
    assert!(
        fenced >= 10,
        "only {fenced} accepted queries had fenced sources: the fenced form goes unchecked"
    );

    let path: Arc<str> = Arc::from(world.path.to_string());
    let cache = RewriteCache::new(64);
    let values = [("a'b\\".to_string(), "7".to_string(), "1.5".to_string())];
    let mut hits = 0;
    let shapes = [
        "SELECT id, amount FROM orders WHERE amount > {n} AND note = {s}",
        "SELECT name FROM customers WHERE region IN ({s}, {s}) ORDER BY name LIMIT {n}",
        "WITH o AS (SELECT * FROM orders WHERE id = {n}) SELECT count(*) FROM o WHERE note LIKE {s}",
        "SELECT /* 'comment' 1 */ id FROM orders WHERE note = {s}",
        "SELECT id, email FROM customers WHERE id = {n}",
    ];
    for shape in shapes {
        cache
            .rewrite(
                &fill(shape, &[("x".into(), "1".into(), "0.5".into())]),
                &world.context(),
                &path,
            )
            .unwrap();
        let (_, outcome) = cache
            .rewrite(&fill(shape, &values), &world.context(), &path)
            .unwrap();
        hits += usize::from(outcome.hit);
    }
    assert_eq!(hits, shapes.len());
}
