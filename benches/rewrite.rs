//! Parse + rewrite + print, on the two queries the README quotes figures for: pgbench's point
//! query and a ~40-line analytic query. Each is measured as served from the rewrite cache (a
//! statement of a known shape with new literals: what every repeated query costs) and as a
//! fresh rewrite (a shape seen for the first time).
//!
//! `cargo bench --bench rewrite`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tablegate::cache::RewriteCache;
use tablegate::catalog::catalog_of_tables;
use tablegate::directory::users_file;
use tablegate::policy::{Access, PolicySet};
use tablegate::rewrite::{Context, SearchPath, rewrite};

const POLICY: &str = r#"
[datasource.bench]
deny_columns = ["customers.phone"]

[role.analyst.datasource.bench]
tables = ["public.*"]
rows."public.pgbench_accounts" = "bid = {{user.branch}}"
rows."public.orders" = "region IN ({{user.regions}})"
rows."public.customers" = "region IN ({{user.regions}})"

[[assign]]
user = "bench"
roles = ["analyst"]
vars = { branch = 1, regions = ["East", "North"] }
"#;

const POINT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";

const ANALYTIC: &str = "
WITH monthly AS (
    SELECT
        o.customer_id,
        date_trunc('month', o.ordered_at) AS month,
        sum(o.amount) AS revenue,
        count(*) AS orders
    FROM orders o
    WHERE o.ordered_at >= DATE '2024-01-01'
      AND o.status <> 'cancelled'
    GROUP BY o.customer_id, date_trunc('month', o.ordered_at)
)
SELECT
    c.name,
    r.manager,
    p.category,
    m.month,
    m.revenue,
    m.orders,
    sum(m.revenue) OVER (
        PARTITION BY c.id
        ORDER BY m.month
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS running_revenue,
    rank() OVER (PARTITION BY m.month ORDER BY m.revenue DESC) AS month_rank
FROM monthly m
JOIN customers c ON c.id = m.customer_id
JOIN regions r ON r.region = c.region
LEFT JOIN products p ON p.id = (
    SELECT oi.product_id
    FROM order_items oi
    JOIN orders o2 ON o2.id = oi.order_id
    WHERE o2.customer_id = c.id
    ORDER BY oi.quantity DESC
    LIMIT 1
)
WHERE m.revenue > 1000
  AND c.name NOT LIKE 'Test%'
GROUP BY c.id, c.name, r.manager, p.category, m.month, m.revenue, m.orders
HAVING count(*) >= 1
ORDER BY m.month DESC, running_revenue DESC
LIMIT 100";

fn bench(c: &mut Criterion) {
    let catalog = catalog_of_tables(&[
        (
            "public",
            "pgbench_accounts",
            &["aid", "bid", "abalance", "filler"],
        ),
        (
            "public",
            "orders",
            &[
                "id",
                "customer_id",
                "ordered_at",
                "amount",
                "status",
                "region",
            ],
        ),
        (
            "public",
            "order_items",
            &["order_id", "product_id", "quantity"],
        ),
        ("public", "customers", &["id", "name", "phone", "region"]),
        ("public", "regions", &["region", "manager"]),
        ("public", "products", &["id", "category", "price"]),
    ]);
    let policies = PolicySet::from_str("bench.toml", POLICY).unwrap();
    let user = users_file::parse("[[user]]\nuserid = \"bench\"\n", "u")
        .unwrap()
        .remove(0);
    let access = Access::build(&policies, &catalog, &user, "bench");
    let path = SearchPath::parse_setting("\"$user\", public").unwrap();
    let context = Context {
        catalog: &catalog,
        access: &access,
        search_path: &path,
        risky_parameter_types: false,
    };
    let path_key: Arc<str> = Arc::from(path.to_string());
    rewrite(POINT, &context).expect("the point query is accepted");
    rewrite(ANALYTIC, &context).expect("the analytic query is accepted");

    let cache = RewriteCache::new(1024);
    cache.rewrite(POINT, &context, &path_key).unwrap();
    cache.rewrite(ANALYTIC, &context, &path_key).unwrap();
    let point_again = POINT.replace("48213", "77");
    let analytic_again = ANALYTIC.replace("1000", "2500");

    c.bench_function("point query, cached shape", |b| {
        b.iter(|| {
            cache
                .rewrite(black_box(&point_again), &context, &path_key)
                .unwrap()
        })
    });
    c.bench_function("point query, fresh rewrite", |b| {
        b.iter(|| rewrite(black_box(POINT), &context).unwrap().sql())
    });
    c.bench_function("analytic query, cached shape", |b| {
        b.iter(|| {
            cache
                .rewrite(black_box(&analytic_again), &context, &path_key)
                .unwrap()
        })
    });
    c.bench_function("analytic query, fresh rewrite", |b| {
        b.iter(|| rewrite(black_box(ANALYTIC), &context).unwrap().sql())
    });
    // A cache miss on a long IN list (about 70 KB): the cost must grow with the text, not its
    // square, since it holds the session thread.
    let ids: Vec<String> = (0..10_000).map(|i| (100_000 + i).to_string()).collect();
    let long_list = format!(
        "SELECT id, amount FROM orders WHERE id IN ({})",
        ids.join(", ")
    );
    c.bench_function("10,000-value IN list, cache miss", |b| {
        b.iter(|| {
            RewriteCache::new(16)
                .rewrite(black_box(&long_list), &context, &path_key)
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
