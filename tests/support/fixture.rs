//! The test's world: a temporary database with the Spider schemas, generated rows, one
//! scenario's policy and permitted copy; and running the corpus through it.

use std::collections::HashSet;

use tablegate::catalog::Catalog;
use tablegate::directory::users_file;
use tablegate::policy::{Access, PolicySet};
use tokio_postgres::Client;

use super::check::{Checker, Outcome};
use super::corpus::{Corpus, SpiderQuery};
use super::data::{TableData, generate, harvest};
use super::database::TempDatabase;
use super::policy::Scenario;
use super::tally::Report;
use super::transform::{repair_sqlite, variants};

pub struct Fixture {
    // Dropped before the database, whose drop then finds no open session of ours.
    pub client: Client,
    pub catalog: Catalog,
    pub policies: PolicySet,
    pub corpus: Corpus,
    pub scenario: Scenario,
    _database: TempDatabase,
}

impl Fixture {
    /// A fresh database with the Spider schemas, generated rows, the scenario's policy and its
    /// permitted copy.
    pub async fn build(scenario: impl FnOnce(&Corpus, &[TableData]) -> Scenario) -> Fixture {
        let corpus = Corpus::load();
        let data = generate(&corpus, &harvest(&corpus));
        let scenario = scenario(&corpus, &data);
        let database = TempDatabase::create().await;
        let client = database.connect().await;
        client
            .batch_execute(&corpus.ddl)
            .await
            .expect("the Spider DDL loads");
        let inserts: String = data.iter().map(TableData::insert_sql).collect();
        client
            .batch_execute(&inserts)
            .await
            .expect("the generated rows insert");
        let copy = scenario.copy_ddl();
        client
            .batch_execute(&copy)
            .await
            .unwrap_or_else(|e| panic!("the permitted copy builds: {e:?}\n{copy}"));
        let policy = format!("[datasource.spider]\n{}", scenario.policy_toml());
        let policies = PolicySet::from_str("spider.toml", &policy)
            .unwrap_or_else(|e| panic!("the generated policy loads: {e}\n{policy}"));
        let catalog = Catalog::load(&client).await.expect("the catalog loads");
        Fixture {
            client,
            catalog,
            policies,
            corpus,
            scenario,
            _database: database,
        }
    }

    pub fn access(&self) -> Access {
        let users = users_file::parse(
            &format!("[[user]]\nuserid = \"{}\"\n", self.scenario.user),
            "users.toml",
        )
        .expect("users");
        let access = Access::build(&self.policies, &self.catalog, &users[0], "spider");
        assert_eq!(
            access.roles.len(),
            self.scenario.roles.len(),
            "the user holds every role"
        );
        access
    }

    /// Every query of the scenario's schemas, as the scenario's user.
    pub async fn run(&self, extras: Extras) -> Report {
        let access = self.access();
        let copy_schema = |s: &str| self.scenario.copy_schema(s);
        let checker = Checker {
            client: &self.client,
            catalog: &self.catalog,
            access: &access,
            copy_schema: &copy_schema,
        };
        let mut report = Report::default();
        for q in &self.corpus.queries {
            if !self.scenario.schemas.contains(&q.db_id) {
                continue;
            }
            let outcome = checker.check(q).await;
            // The query in a form PostgreSQL accepts, if there is one.
            let valid = match &outcome {
                Outcome::NotPostgres(_) if extras.repaired => {
                    match repair_sqlite(&q.query, &self.column_names(&q.db_id)) {
                        Some(sql) => {
                            let repaired = SpiderQuery {
                                query: sql,
                                ..q.clone()
                            };
                            let outcome = checker.check(&repaired).await;
                            let valid = !matches!(outcome, Outcome::NotPostgres(_));
                            report.repaired.add(&repaired, outcome);
                            valid.then_some(repaired)
                        }
                        None => None,
                    }
                }
                Outcome::NotPostgres(_) => None,
                _ => Some(q.clone()),
            };
            report.tally.add(q, outcome);
            if let Some(valid) = valid
                && extras.variants
            {
                let copy = self.scenario.copy_schema(&valid.db_id);
                for v in variants(&valid.query, &valid.db_id, &copy) {
                    let variant = SpiderQuery {
                        query: v.sql,
                        ..valid.clone()
                    };
                    let outcome = checker.check_with_copy_query(&variant, &v.copy_sql).await;
                    report.variant(v.name).add(&variant, outcome);
                }
            }
        }
        report
    }

    fn column_names(&self, schema: &str) -> HashSet<String> {
        self.corpus
            .tables
            .iter()
            .filter(|t| t.schema == schema)
            .flat_map(|t| t.columns.iter().map(|c| c.name.clone()))
            .collect()
    }
}

#[derive(Clone, Copy, Default)]
pub struct Extras {
    /// Also check not-PostgreSQL queries with double-quoted strings made single-quoted.
    pub repaired: bool,
    /// Also check equivalent forms of every query PostgreSQL accepts.
    pub variants: bool,
}
