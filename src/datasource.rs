//! A datasource at run time: its upstream pool, its live catalog, and the accesses built for it.
//!
//! Sessions of users with the same roles and variable values share one [`Access`] (and so one
//! set of rewrite-cache entries). Shared accesses are keyed by the policy and catalog
//! generations they were built from, so an access built from an old policy or catalog by a
//! session that raced a reload or refresh can never be handed to a session on the new one. A
//! catalog refresh replaces the snapshot and forgets the accesses built on the old one;
//! sessions notice the new generation at their next statement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use crate::catalog::Catalog;
use crate::config::DatasourceConfig;
use crate::directory::User;
use crate::policy::Access;
use crate::proxy::gate::LivePolicies;
use crate::upstream::{Database, Pool, Target};

pub struct Datasource {
    pub name: String,
    pub pool: Arc<Pool>,
    /// What the upstream server reports at login (server_version, encodings, DateStyle, …):
    /// the same for every connection, told to clients before they hold one.
    pub parameters: Vec<(String, String)>,
    database: Database,
    catalog: RwLock<Arc<Catalog>>,
    catalog_generation: AtomicU64,
    /// (policy generation, catalog generation, access key) → the shared access.
    accesses: DashMap<(u64, u64, String), Arc<Access>>,
}

impl Datasource {
    /// Connects once to read the catalog; fails if the database cannot be reached.
    pub async fn open(
        name: &str,
        config: &DatasourceConfig,
        base: &std::path::Path,
    ) -> Result<Datasource, String> {
        let database = config.database(name, base)?;
        let mut target = Target::from_database(&database)?;
        target.timeouts = config.pinned_timeouts();
        let catalog = load_catalog(name, &database).await?;
        let pool = Pool::new(target, config.pool_size, config.connections_per_user());
        let (first, lease) = pool
            .lease(
                None,
                std::time::Duration::from_secs(config.connect_timeout_secs),
            )
            .await
            .map_err(|e| format!("datasource `{name}`: {e}"))?;
        let parameters = first.parameters.clone();
        lease.give_back(first).await;
        Ok(Datasource {
            name: name.to_owned(),
            pool,
            parameters,
            database,
            catalog_generation: AtomicU64::new(catalog.generation()),
            catalog: RwLock::new(Arc::new(catalog)),
            accesses: DashMap::new(),
        })
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// The generation of the current catalog snapshot (cheap: for per-statement checks).
    pub fn catalog_generation(&self) -> u64 {
        self.catalog_generation.load(Ordering::Acquire)
    }

    /// Re-reads the catalog from the database.
    pub async fn refresh_catalog(&self) -> Result<(), String> {
        let catalog = Arc::new(load_catalog(&self.name, &self.database).await?);
        let generation = catalog.generation();
        *self.catalog.write().expect("catalog lock") = catalog;
        self.accesses.clear();
        self.catalog_generation.store(generation, Ordering::Release);
        Ok(())
    }

    /// The access of `user` under `policies` on `catalog`, shared with every session whose user
    /// has the same roles and variable values on the same policy and catalog generations.
    pub fn access_for(
        &self,
        policies: &LivePolicies,
        catalog: &Catalog,
        user: &User,
    ) -> Arc<Access> {
        let built = Access::build(&policies.set, catalog, user, &self.name);
        self.accesses
            .entry((
                policies.generation,
                catalog.generation(),
                built.key().to_owned(),
            ))
            .or_insert_with(|| Arc::new(built))
            .clone()
    }

    /// Forgets shared accesses (after a policy reload).
    pub fn forget_accesses(&self) {
        self.accesses.clear();
    }
}

async fn load_catalog(name: &str, database: &Database) -> Result<Catalog, String> {
    let (client, task) = database
        .connect()
        .await
        .map_err(|e| format!("cannot connect to datasource `{name}`: {e}"))?;
    let catalog = Catalog::load(&client)
        .await
        .map_err(|e| format!("cannot read the catalog of datasource `{name}`: {e}"));
    drop(client);
    let _ = task.await;
    catalog
}
