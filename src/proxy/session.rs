//! One client session: from authentication to Terminate.
//!
//! After login the session leases an upstream connection and runs two halves in one task: the
//! [`forwarder`](super::forwarder) reads client messages, rewrites every statement (simple Query
//! and Parse) and sends the result upstream; the [`relay`](super::relay) streams upstream
//! responses back. The halves agree through [`Shared`]: the queue of what upstream will answer,
//! in order.
//!
//! A refused statement is never answered locally, because local answers could overtake
//! responses still in flight. Instead the forwarder sends upstream a *refusal marker*: a
//! statement that is a syntax error naming a per-session nonce. PostgreSQL answers it in order,
//! with exactly the protocol effects of an error (the transaction fails, the extended protocol
//! skips to Sync); the relay replaces that error with the refusal.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::auth::{self, ACT_AS};
use super::connection_limit::AddressClaim;
use super::forwarder::{Ending, Forwarder, declared_oids};
use super::gate::Gate;
use super::login_throttle::Scope;
use super::relay::{Forwarded, Relay, RelayEnd, Shared};
use super::startup::{self, Opening, STARTUP_SETTINGS, startup_settings};
use super::stream::{ClientStream, split_upstream};
use super::{CONNECTION_FAILURE, Fatal, INVALID_AUTHORIZATION, TOO_MANY_CONNECTIONS};
use crate::audit::Subject;
use crate::catalog::Catalog;
use crate::datasource::Datasource;
use crate::directory::User;
use crate::metrics::LoginFailure;
use crate::policy::Access;
use crate::policy::value::text_literal;
use crate::refusal::Refusal;
use crate::rewrite::{Context, MAX_STATEMENT_BYTES, SearchPath, SessionEffect, is_utf8_encoding};
use crate::upstream::{Connection, Lease};
use crate::wire::{self, Frame, FrameReader, take_cstring};

/// Runs a client's session; `login` is its place among its address's logins in progress, given
/// back once the login is over.
pub async fn run(gate: Arc<Gate>, socket: TcpStream, peer: SocketAddr, login: AddressClaim) {
    // As PostgreSQL's authentication_timeout: a stranger may not hold a connection open.
    let deadline = tokio::time::Instant::now() + AUTHENTICATION_TIMEOUT;
    let Ok(Opening::Session(mut stream, mut reader, params)) =
        tokio::time::timeout_at(deadline, startup::open(&gate, socket)).await
    else {
        return;
    };
    let established = tokio::time::timeout_at(
        deadline,
        establish(&gate, &mut stream, &mut reader, &params, peer),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Fatal::new(
            CONNECTION_FAILURE,
            "canceling authentication due to timeout",
        ))
    });
    drop(login);
    match established {
        Ok(session) => {
            reader.set_limit(wire::MAX_MESSAGE_LENGTH);
            reader.limit_small_messages();
            reader.share_budget(gate.large_messages.clone());
            // A statement too long to check is refused from its message's header, never held.
            reader.limit_body(b'Q', MAX_QUERY_BODY);
            reader.limit_body(b'P', MAX_PARSE_BODY);
            // Answered without their bodies: nothing of them is held.
            reader.limit_body(b'F', 0);
            reader.limit_body(b'd', 0);
            let _open = gate.metrics.session_opened();
            session.serve(stream, *reader).await
        }
        Err(fatal) => {
            if fatal.code == auth::PASSWORD_FAILED {
                // As PostgreSQL's auth_delay: each guess costs the guesser a second.
                tokio::time::sleep(AUTHENTICATION_FAILURE_DELAY).await;
            }
            fatal.send(&mut stream).await
        }
    }
}

/// The longest Query body a statement tablegate checks can need: its text and the NUL.
const MAX_QUERY_BODY: usize = MAX_STATEMENT_BYTES + 1;

/// The longest Parse body a statement tablegate checks can need: a name (64 KiB, far past any
/// driver's), the text, their NULs, and the count and OIDs of 65,535 parameter types.
const MAX_PARSE_BODY: usize = (64 << 10) + MAX_STATEMENT_BYTES + 2 + 2 + 4 * 65_535;

/// How long a wrong password or credential waits for its answer.
const AUTHENTICATION_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// How long a client has from connecting to being logged in.
const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a session that is ending waits for the answers upstream owes the client.
const OWED_ANSWERS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a session's last FATAL may take to write: a client that stopped reading must not
/// hold the session's upstream connection.
const FATAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

async fn establish(
    gate: &Arc<Gate>,
    stream: &mut ClientStream,
    reader: &mut FrameReader,
    params: &BTreeMap<String, String>,
    peer: SocketAddr,
) -> Result<Session, Fatal> {
    let login = params
        .get("user")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Fatal::new(INVALID_AUTHORIZATION, "no user name given"))?;
    // An address that used up its failed logins is refused before any password is asked for.
    let scope = if gate.service_account(login).is_some() {
        Scope::Address
    } else {
        Scope::AddressAndNetwork
    };
    let mut attempt = gate.login_throttle.attempt(peer.ip(), scope)?;
    let mut settings = startup_settings(params)?;
    let authenticated =
        auth::authenticate(gate, stream, reader, login, &settings, &mut attempt).await;
    attempt.settle(matches!(&authenticated, Err(fatal) if fatal.code == auth::PASSWORD_FAILED));
    let identity = authenticated.inspect_err(|fatal| {
        // A throttled login is counted by the throttle, and logged once when the throttling
        // began: an address refused at once must not flood the log.
        if fatal.code != TOO_MANY_CONNECTIONS {
            gate.metrics.login_failed(match fatal.code.as_str() {
                auth::PASSWORD_FAILED => LoginFailure::Credentials,
                auth::DIRECTORY_UNAVAILABLE => LoginFailure::DirectoryUnavailable,
                _ => LoginFailure::Other,
            });
            // Debug formatting: a login name is the client's text, newlines included.
            tracing::warn!(login = ?login, client = %peer, reason = ?fatal.message, "login failed");
        }
    })?;
    if settings.remove(ACT_AS).is_some() && identity.service.is_none() {
        return Err(Fatal::new(
            "42501",
            "only service accounts may act for another user",
        ));
    }
    let database = params
        .get("database")
        .cloned()
        .unwrap_or_else(|| login.clone());
    let policies = gate.policies();
    let no_access = || {
        Fatal::new(
            "3D000",
            format!("database \"{database}\" does not exist or you have no access to it"),
        )
        .with_hint(
            "connect to a datasource your roles grant (the database name is the datasource name)",
        )
    };
    let datasource = gate
        .datasources
        .get(&database)
        .filter(|_| policies.set.datasources.contains_key(&database))
        .ok_or_else(no_access)?
        .clone();
    let catalog = datasource.catalog();
    let access = datasource.access_for(&policies, &catalog, &identity.user);
    if access.is_empty() {
        return Err(no_access());
    }
    if let Some(encoding) = settings.remove("client_encoding")
        && !is_utf8_encoding(&encoding)
    {
        return Err(Fatal::new(
            "22023",
            format!("client_encoding {encoding} is not supported: tablegate speaks UTF8"),
        ));
    }
    for name in settings.keys() {
        if !STARTUP_SETTINGS.contains(&name.as_str()) {
            return Err(Fatal::new(
                "42501",
                format!("setting \"{name}\" cannot be set through tablegate"),
            )
            .with_hint(format!(
                "settable at startup: {}",
                STARTUP_SETTINGS.join(", ")
            )));
        }
    }
    let search_path = SearchPath::parse_setting(catalog.default_search_path())
        .unwrap_or_else(|_| SearchPath::parse_setting("public").expect("valid"));
    let subject = Subject {
        user: identity.user.userid.clone(),
        datasource: database.clone(),
        client: peer,
        via: identity.service.clone(),
    };
    tracing::info!(user = ?subject.user, datasource = %database, client = %peer, service = ?identity.service, "session opened");
    let mut session = Session {
        gate: gate.clone(),
        datasource,
        user: identity.user,
        subject,
        policy_generation: policies.generation,
        catalog,
        access,
        search_path_key: Arc::from(search_path.to_string()),
        search_path,
        upstream: None,
        lease: None,
        cancel_key: (rand::random::<i32>() & 0x7fff_ffff, rand::random::<i32>()),
        cancel_entry: None,
        nonce: format!("{:016x}", rand::random::<u64>()),
        statements: HashMap::new(),
        batch: Batch::default(),
        effect_unsettled: false,
        application_name: settings.remove("application_name").unwrap_or_default(),
        user_checked: Instant::now(),
        directory_failing_since: None,
    };
    session.greet(stream, settings).await?;
    Ok(session)
}

/// A session's entry in [`Gate::cancels`], removed when dropped.
struct CancelEntry {
    gate: Arc<Gate>,
    key: (i32, i32),
}

impl Drop for CancelEntry {
    fn drop(&mut self) {
        self.gate.cancels.remove(&self.key);
    }
}

/// A prepared statement as the client named it. Its text was rewritten for `text.access`;
/// another access (a policy reload, a new catalog) means the rewrite must be made again before
/// the statement runs.
pub(super) struct Statement {
    pub(super) text: Arc<Forwarded>,
    /// Upstream may hold another text under the name (an undone Parse or Close, a refusal
    /// marker upstream skipped): rewrite it again before it next runs, whatever the access.
    pub(super) stale: bool,
}

impl Statement {
    pub(super) fn stale(text: Arc<Forwarded>) -> Statement {
        Statement { text, stale: true }
    }
}

/// The state of one extended-protocol batch: the messages since the last Sync.
#[derive(Default)]
pub(super) struct Batch {
    /// The portals bound in this batch, to the statements as the session sent them: if such a
    /// Bind fails, upstream skips the rest of the batch. Portals of earlier batches are known
    /// from upstream's answers (the relay's record).
    pub(super) portals: HashMap<String, Arc<Forwarded>>,
    /// After a refused Parse: client messages are dropped until Sync, as PostgreSQL does.
    pub(super) skipping: bool,
    /// Extended-protocol messages were sent. Upstream may then be skipping to Sync after an
    /// error of its own, ignoring a simple Query tablegate would still expect an answer to: such
    /// a Query is refused.
    pub(super) open: bool,
    /// An Execute was sent.
    pub(super) executed: bool,
    /// A `SET search_path` was executed: it must commit alone.
    pub(super) effect: bool,
    /// [`Forwarder::undo_unapplied`] has run: the record of prepared statements holds what
    /// upstream did with earlier batches.
    pub(super) undone: bool,
}

pub(super) struct Session {
    pub(super) gate: Arc<Gate>,
    datasource: Arc<Datasource>,
    user: User,
    pub(super) subject: Subject,
    policy_generation: u64,
    catalog: Arc<Catalog>,
    pub(super) access: Arc<Access>,
    search_path: SearchPath,
    search_path_key: Arc<str>,
    upstream: Option<Connection>,
    lease: Option<Lease>,
    cancel_key: (i32, i32),
    /// The cancel key's entry in the gate's table, once a connection is leased; removed when
    /// dropped, so however the session ends (a failed startup SET, the login timeout, a
    /// panic) the entry goes with it.
    cancel_entry: Option<CancelEntry>,
    /// Names this session's refusal markers.
    pub(super) nonce: String,
    /// The client's prepared statements as tablegate sent them; upstream's answers may still
    /// refuse the latest ones (the relay keeps what upstream confirmed).
    pub(super) statements: HashMap<String, Statement>,
    /// What the extended-protocol messages since the last Sync did; Sync starts it anew.
    pub(super) batch: Batch,
    /// A `SET search_path` was sent and upstream has not answered it with ReadyForQuery.
    pub(super) effect_unsettled: bool,
    application_name: String,
    /// When the user's directory entry was last read ([`Session::recheck_user`]).
    user_checked: Instant,
    /// When re-reading the user's entry started failing, if it is failing.
    directory_failing_since: Option<Instant>,
}

impl Session {
    /// Authentication succeeded: report parameters and the cancel key, apply startup settings.
    async fn greet(
        &mut self,
        stream: &mut ClientStream,
        settings: BTreeMap<String, String>,
    ) -> Result<(), Fatal> {
        let mut out = BytesMut::new();
        wire::encode(&Authentication::Ok, &mut out);
        for (name, value) in &self.datasource.parameters {
            let value = match name.as_str() {
                "session_authorization" => self.user.userid.clone(),
                "is_superuser" => "off".into(),
                "application_name" => self.application_name.clone(),
                _ => value.clone(),
            };
            wire::encode(&ParameterStatus::new(name.clone(), value), &mut out);
        }
        wire::encode(
            &BackendKeyData::new(self.cancel_key.0, SecretKey::I32(self.cancel_key.1)),
            &mut out,
        );
        if !settings.is_empty() {
            // Settings are applied (and their values checked by PostgreSQL) at login, as
            // PostgreSQL would; that needs the upstream connection now.
            self.lease().await?;
        }

        // Startup settings run as SET statements, checked like any statement from the client.
        let mut statements: Vec<String> = Vec::new();
        for (name, value) in settings {
            let sql = if name == "search_path" {
                let path = SearchPath::parse_setting(&value).map_err(|e| Fatal::new("22023", e))?;
                format!("SET search_path = {path}")
            } else {
                format!("SET {name} = {}", text_literal(&value))
            };
            statements.push(sql);
        }
        for sql in &statements {
            let prepared = self
                .rewrite(sql, &[])
                .map_err(|r| Fatal::new(Refusal::SQLSTATE, r.message))?;
            if let Some(effect) = &prepared.effect {
                self.apply(effect);
            }
            let mut query = BytesMut::new();
            wire::query(&prepared.sql, &mut query);
            let upstream = &mut self.upstream.as_mut().expect("a leased connection").stream;
            wire::send(upstream, &query).await.map_err(Fatal::io)?;
            let mut reader = FrameReader::new();
            loop {
                match reader.next(upstream).await.map_err(Fatal::io)? {
                    Some(Frame {
                        tag: b'E', body, ..
                    }) => {
                        return Err(Fatal::new(
                            "22023",
                            crate::upstream::connection::error_message(body),
                        ));
                    }
                    Some(Frame { tag: b'Z', .. }) => break,
                    Some(Frame {
                        tag: b'S',
                        mut body,
                        ..
                    }) => {
                        let name = take_cstring(&mut body).map_err(Fatal::io)?;
                        let value = take_cstring(&mut body).map_err(Fatal::io)?;
                        wire::encode(&ParameterStatus::new(name, value), &mut out);
                    }
                    Some(_) => {}
                    None => return Err(Fatal::gone()),
                }
            }
        }
        wire::ready_for_query(b'I', &mut out);
        wire::send(stream, &out).await.map_err(Fatal::io)
    }

    /// Takes an upstream connection from the pool for the rest of the session.
    async fn lease(&mut self) -> Result<(), Fatal> {
        let database = &self.subject.datasource;
        let wait = Duration::from_secs(self.gate.config.datasource[database].pool_wait_secs);
        let user = &self.user.userid;
        let (connection, lease) = self.datasource.pool.lease(Some(user), wait).await.map_err(|e| match e {
            crate::upstream::pool::LeaseError::Exhausted => Fatal::new(
                TOO_MANY_CONNECTIONS,
                format!("datasource \"{database}\" has no free connection; try again later"),
            ),
            crate::upstream::pool::LeaseError::ShareInUse { per_user } => Fatal::new(
                TOO_MANY_CONNECTIONS,
                format!(
                    "user \"{user}\" already has {per_user} sessions on datasource \"{database}\", the most one user may hold"
                ),
            )
            .with_hint("close an idle session, or ask the operator to raise connections_per_user"),
            crate::upstream::pool::LeaseError::Connect(e) => {
                tracing::warn!(datasource = %database, error = %e, "upstream connection failed");
                Fatal::new(CONNECTION_FAILURE, format!("datasource \"{database}\" is unavailable; try again later"))
            }
        })?;
        self.gate
            .cancels
            .insert(self.cancel_key, connection.cancel_key.clone());
        self.cancel_entry = Some(CancelEntry {
            gate: self.gate.clone(),
            key: self.cancel_key,
        });
        self.upstream = Some(connection);
        self.lease = Some(lease);
        Ok(())
    }

    pub(super) fn apply(&mut self, effect: &SessionEffect) {
        self.search_path = match effect {
            SessionEffect::SearchPath(path) => path.clone(),
            SessionEffect::DefaultSearchPath => {
                SearchPath::parse_setting(self.catalog.default_search_path())
                    .unwrap_or_else(|_| self.search_path.clone())
            }
        };
        self.search_path_key = Arc::from(self.search_path.to_string());
    }

    /// Reads the user's directory entry again when `session_recheck_secs` have passed: a user
    /// disabled (or gone) since login loses the session; changed attributes (a WeCom sync) take
    /// effect. A directory that cannot be read is tried again at each statement; once it has
    /// failed for the interval, the session ends (fail closed).
    pub(super) async fn recheck_user(&mut self) -> Result<(), Fatal> {
        let interval = Duration::from_secs(self.gate.config.directory.session_recheck_secs);
        if self.user_checked.elapsed() < interval {
            return Ok(());
        }
        match self.gate.directory.user(&self.user.userid).await {
            Ok(Some(user)) if user.enabled => {
                self.user_checked = Instant::now();
                self.directory_failing_since = None;
                if user != self.user {
                    self.user = user;
                    // Generations start at 1: the access is rebuilt at the next statement.
                    self.policy_generation = 0;
                }
                Ok(())
            }
            Ok(_) => {
                tracing::info!(user = ?self.user.userid, "session ended: the user is disabled or gone");
                Err(Fatal::new(
                    "57P01",
                    format!(
                        "terminating the session: user \"{}\" is disabled or no longer exists",
                        self.user.userid
                    ),
                ))
            }
            Err(e) => {
                tracing::warn!(user = ?self.user.userid, error = %e, "re-reading the user's directory entry failed");
                let failing = self
                    .directory_failing_since
                    .get_or_insert_with(Instant::now)
                    .elapsed();
                if failing < interval {
                    return Ok(());
                }
                Err(Fatal::new(
                    "57P01",
                    format!(
                        "terminating the session: the user directory has been unreadable for {}s, so user \"{}\" cannot be confirmed as still enabled",
                        failing.as_secs(),
                        self.user.userid
                    ),
                )
                .with_hint("connect again once the directory is back"))
            }
        }
    }

    /// Rebuilds the access if the policies or the catalog changed since the last statement.
    /// The set and its generation are read together, so the access is built from the set the
    /// recorded generation names.
    pub(super) fn refresh_access(&mut self) {
        if self.gate.policy_generation() != self.policy_generation
            || self.datasource.catalog_generation() != self.catalog.generation()
        {
            let policies = self.gate.policies();
            self.catalog = self.datasource.catalog();
            self.access = self
                .datasource
                .access_for(&policies, &self.catalog, &self.user);
            self.policy_generation = policies.generation;
        }
    }

    /// Rewrites `sql` for this session, with the parameter types a Parse declared (OIDs, as
    /// in the message); the time counted includes rebuilding the access after a reload, which
    /// the statement waits for too.
    pub(super) fn rewrite(
        &mut self,
        sql: &str,
        param_types: &[u8],
    ) -> Result<crate::cache::Prepared, Refusal> {
        let started = Instant::now();
        self.refresh_access();
        let context = Context {
            catalog: &self.catalog,
            access: &self.access,
            search_path: &self.search_path,
            risky_parameter_types: declared_oids(param_types)
                .any(crate::rewrite::functions::risky_parameter_type),
        };
        let result = self
            .gate
            .cache
            .rewrite(sql, &context, &self.search_path_key);
        let hit = matches!(result, Ok((_, outcome)) if outcome.hit);
        self.gate.metrics.rewrote(hit, started.elapsed());
        result.map(|(p, _)| p)
    }

    /// Runs the session until the client leaves or a side fails.
    async fn serve(mut self, mut stream: ClientStream, mut reader: FrameReader) {
        // An idle client holds no upstream connection: lease at the first message.
        let mut first = None;
        if self.upstream.is_none() {
            match reader.next(&mut stream).await {
                Ok(Some(frame)) if frame.tag != b'X' => first = Some(frame),
                Err(e) => return Fatal::read(e).send(&mut stream).await,
                _ => return,
            }
            if let Err(fatal) = self.lease().await {
                fatal.send(&mut stream).await;
                return;
            }
        }
        let lease = self.lease.take().expect("a leased connection");
        let Connection {
            stream: upstream,
            parameters,
            cancel_key,
        } = self.upstream.take().expect("a leased connection");
        let (client_read, client_write) = stream.split();
        let (up_read, up_write) = split_upstream(upstream);
        let shared = Arc::new(Mutex::new(Shared::new(
            self.nonce.clone(),
            self.subject.clone(),
            self.gate.metrics.clone(),
        )));
        let mut relay = Relay::new(up_read, client_write, shared.clone());
        let mut forwarder = Forwarder {
            session: &mut self,
            client: client_read,
            upstream: up_write,
            out: BytesMut::with_capacity(8192),
            shared: shared.clone(),
        };
        let ending = tokio::select! {
            biased;
            end = forwarder.run(&mut reader, first) => Ending::Client(end),
            end = relay.run() => match end {
                RelayEnd::Upstream(e) => Ending::Upstream(e),
                RelayEnd::Untracked => Ending::Untracked,
            },
        };
        let mut up_write = forwarder.upstream;
        let mut client_read = forwarder.client;
        let mut whole = true;
        // PostgreSQL answers a pipeline in order: what upstream was sent before the message
        // that ends the session is answered first, then the FATAL. What was not sent yet is
        // dropped: it was checked under the access the session is losing. Not when a socket
        // itself failed (08006).
        if let Ending::Client(Err(fatal)) = &ending
            && fatal.code != CONNECTION_FAILURE
        {
            shared.lock().expect("session state").forget_unsent();
            // Past the pipeline bound, messages went upstream without Sync or Flush, and
            // PostgreSQL holds their answers until one comes (found in review). A Flush with
            // nothing pending is answered with nothing.
            let mut flush = BytesMut::new();
            wire::put_message(b'H', &[], &mut flush);
            let _ = wire::send(&mut up_write, &flush).await;
            whole = relay
                .deliver_owed(tokio::time::Instant::now() + OWED_ANSWERS_TIMEOUT)
                .await;
        }
        let (quiet, running) = {
            let shared = shared.lock().expect("session state");
            (shared.is_quiet(), shared.runs_a_statement())
        };
        let (up_read, mut client_write) = relay.into_parts();
        drop(self.cancel_entry.take());
        if running && !matches!(ending, Ending::Upstream(_)) {
            // Nobody will read what upstream is still working on: stop it, rather than let an
            // abandoned query run on (closing the connection does not stop a running query).
            let running = cancel_key.clone();
            tokio::spawn(async move { crate::upstream::connection::cancel(&running).await });
        }
        let untracked;
        let fatal = match &ending {
            Ending::Client(Err(fatal)) => whole.then_some(fatal),
            Ending::Untracked => {
                tracing::warn!(user = ?self.subject.user, datasource = %self.subject.datasource, "session ended: upstream ran a SET search_path tablegate did not expect");
                untracked = Fatal::protocol(
                    "terminating the session: upstream ran a SET search_path that tablegate did not expect, so tablegate no longer knows how names resolve",
                )
                .with_hint("prepare SET search_path under a name not used before, execute it alone before Sync and outside transaction blocks, then reconnect");
                Some(&untracked)
            }
            _ => None,
        };
        match ending {
            Ending::Client(Ok(())) if quiet => {
                if let Some(stream) = super::stream::reunite(up_read, up_write) {
                    let connection = Connection {
                        stream,
                        parameters,
                        cancel_key,
                    };
                    tokio::spawn(lease.give_back(connection));
                }
            }
            Ending::Client(Err(_)) | Ending::Untracked => {
                if let Some(fatal) = fatal {
                    let _ =
                        tokio::time::timeout(FATAL_WRITE_TIMEOUT, fatal.send(&mut client_write))
                            .await;
                }
                // Closing with unread client bytes (the rest of a pipeline) sends a reset,
                // which can destroy the error before the client reads it: read them first.
                let mut rest = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while matches!(client_read.read(&mut rest).await, Ok(n) if n > 0) {}
                })
                .await;
            }
            Ending::Upstream(e) => {
                tracing::warn!(user = ?self.subject.user, datasource = %self.subject.datasource, error = %e, "upstream connection lost");
                let fatal = Fatal::new(
                    CONNECTION_FAILURE,
                    "the connection to the database was lost; reconnect to continue",
                );
                let _ =
                    tokio::time::timeout(FATAL_WRITE_TIMEOUT, fatal.send(&mut client_write)).await;
            }
            Ending::Client(Ok(())) => {}
        }
        tracing::info!(user = ?self.subject.user, datasource = %self.subject.datasource, "session closed");
    }
}
