//! One client session: from authentication to Terminate.
//!
//! After login the session leases an upstream connection and runs two halves in one task: the
//! forwarder reads client messages, rewrites every statement (simple Query and Parse) and sends
//! the result upstream; the [`relay`](super::relay) streams upstream responses back. The halves
//! agree through [`Shared`]: the queue of what upstream will answer, in order.
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

use bytes::{Buf, BytesMut};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::auth::{self, ACT_AS};
use super::connection_limit::AddressClaim;
use super::gate::Gate;
use super::login_throttle;
use super::relay::{Closing, Forwarded, Item, MAX_QUEUED, Relay, RelayEnd, Shared, Unapplied};
use super::startup::{self, Opening};
use super::stream::{ClientRead, ClientStream, split_upstream};
use super::{CONNECTION_FAILURE, Fatal};
use crate::audit::{self, Outcome, Subject};
use crate::catalog::Catalog;
use crate::datasource::Datasource;
use crate::directory::User;
use crate::metrics::LoginFailure;
use crate::policy::Access;
use crate::policy::value::text_literal;
use crate::refusal::Refusal;
use crate::rewrite::{
    Context, Deallocation, MAX_STATEMENT_BYTES, SearchPath, SessionEffect, is_utf8_encoding,
};
use crate::upstream::{Connection, Lease};
use crate::wire::{self, Frame, FrameReader, take_cstring};

/// Startup settings a client may give, applied with SET (the same rules as SET statements).
const STARTUP_SETTINGS: [&str; 6] = [
    "datestyle",
    "timezone",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
    "application_name",
];

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
            // A statement too long to check is refused from its message's header, never held.
            reader.limit_body(b'Q', MAX_QUERY_BODY);
            reader.limit_body(b'P', MAX_PARSE_BODY);
            let _open = gate.metrics.session_opened();
            session.serve(stream, reader).await
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

/// Settings from the startup packet: direct parameters and `-c name=value` in `options`.
fn startup_settings(params: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Fatal> {
    let mut settings = BTreeMap::new();
    for (key, value) in params {
        match key.as_str() {
            "user" | "database" | "options" => {}
            k if k.starts_with("_pq_.") => {}
            "replication" => {
                return Err(Fatal::new(
                    "0A000",
                    "replication connections are not supported",
                ));
            }
            k => {
                settings.insert(k.to_ascii_lowercase(), value.clone());
            }
        }
    }
    if let Some(options) = params.get("options") {
        let mut words = split_options(options).into_iter();
        while let Some(word) = words.next() {
            let assignment = match word.as_str() {
                "-c" => words.next().unwrap_or_default(),
                w if w.starts_with("--") => w[2..].to_owned(),
                w if w.starts_with("-c") => w[2..].to_owned(),
                w => {
                    return Err(Fatal::new(
                        "0A000",
                        format!("option `{w}` is not supported through tablegate"),
                    ));
                }
            };
            let (name, value) = assignment.split_once('=').ok_or_else(|| {
                Fatal::new(
                    "42601",
                    format!("`{assignment}` in options should be name=value"),
                )
            })?;
            settings.insert(
                name.to_ascii_lowercase().replace('-', "_"),
                value.to_owned(),
            );
        }
    }
    Ok(settings)
}

/// Splits libpq's `options` string: spaces separate, a backslash escapes the next character.
fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

async fn establish(
    gate: &Arc<Gate>,
    stream: &mut ClientStream,
    reader: &mut FrameReader,
    params: &BTreeMap<String, String>,
    peer: SocketAddr,
) -> Result<Session, Fatal> {
    // An address that used up its failed logins is refused before any password is asked for.
    let mut attempt = gate.login_throttle.attempt(peer.ip())?;
    let login = params
        .get("user")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Fatal::new("28000", "no user name given"))?;
    let mut settings = startup_settings(params)?;
    let authenticated =
        auth::authenticate(gate, stream, reader, login, &settings, &mut attempt).await;
    attempt.settle(matches!(&authenticated, Err(fatal) if fatal.code == auth::PASSWORD_FAILED));
    let identity = authenticated.inspect_err(|fatal| {
        // A throttled login is counted by the throttle, and logged once when the throttling
        // began: an address refused at once must not flood the log.
        if fatal.code != login_throttle::SQLSTATE {
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
        portals: HashMap::new(),
        skipping: false,
        in_batch: false,
        executed_in_batch: false,
        effect_in_batch: false,
        effect_unsettled: false,
        undone: false,
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
struct Statement {
    text: Arc<Forwarded>,
    /// Upstream may hold another text under the name (an undone Parse or Close, a refusal
    /// marker upstream skipped): rewrite it again before it next runs, whatever the access.
    stale: bool,
}

impl Statement {
    fn stale(text: Arc<Forwarded>) -> Statement {
        Statement { text, stale: true }
    }
}

struct Session {
    gate: Arc<Gate>,
    datasource: Arc<Datasource>,
    user: User,
    subject: Subject,
    policy_generation: u64,
    catalog: Arc<Catalog>,
    access: Arc<Access>,
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
    nonce: String,
    /// The client's prepared statements and portals as tablegate sent them; upstream's answers
    /// may still refuse the latest ones (the relay keeps what upstream confirmed).
    statements: HashMap<String, Statement>,
    /// The portals bound in the current batch, to the statements as the session sent them: if
    /// such a Bind fails, upstream skips the rest of the batch. Portals of earlier batches are
    /// known from upstream's answers (the relay's record).
    portals: HashMap<String, Arc<Forwarded>>,
    /// After a refused Parse: client messages are dropped until Sync, as PostgreSQL does.
    skipping: bool,
    /// Extended-protocol messages were sent since the last Sync. Upstream may then be skipping
    /// to Sync after an error of its own, ignoring a simple Query tablegate would still expect
    /// an answer to: such a Query is refused.
    in_batch: bool,
    /// An Execute was sent since the last Sync.
    executed_in_batch: bool,
    /// A `SET search_path` was executed since the last Sync: it must commit alone.
    effect_in_batch: bool,
    /// A `SET search_path` was sent and upstream has not answered it with ReadyForQuery.
    effect_unsettled: bool,
    /// Since the last Sync, [`Forwarder::undo_unapplied`] has run: the record of prepared
    /// statements holds what upstream did with earlier batches.
    undone: bool,
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
                .rewrite(sql)
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
        let (connection, lease) = self.datasource.pool.lease(wait).await.map_err(|e| match e {
            crate::upstream::pool::LeaseError::Exhausted => Fatal::new(
                "53300",
                format!("datasource \"{database}\" has no free connection; try again later"),
            ),
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

    fn apply(&mut self, effect: &SessionEffect) {
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
    async fn recheck_user(&mut self) -> Result<(), Fatal> {
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
    fn refresh_access(&mut self) {
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

    /// Rewrites `sql` for this session; the time counted includes rebuilding the access after
    /// a reload, which the statement waits for too.
    fn rewrite(&mut self, sql: &str) -> Result<crate::cache::Prepared, Refusal> {
        let started = Instant::now();
        self.refresh_access();
        let context = Context {
            catalog: &self.catalog,
            access: &self.access,
            search_path: &self.search_path,
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
                untracked = Fatal::new(
                    "08P01",
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
                        tokio::time::timeout(FATAL_WRITE_TIMEOUT, fatal.send_to(&mut client_write))
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
                let _ = tokio::time::timeout(FATAL_WRITE_TIMEOUT, fatal.send_to(&mut client_write))
                    .await;
            }
            Ending::Client(Ok(())) => {}
        }
        tracing::info!(user = ?self.subject.user, datasource = %self.subject.datasource, "session closed");
    }
}

enum Ending {
    Client(Result<(), Fatal>),
    Upstream(std::io::Error),
    /// See [`RelayEnd::Untracked`].
    Untracked,
}

/// Messages for upstream are written at Query, Sync and Flush, or once they pass this size:
/// PostgreSQL reads a pipeline as it comes, and TCP's backpressure then bounds what waits.
const SEND_ABOVE: usize = 64 * 1024;

struct Forwarder<'s> {
    session: &'s mut Session,
    client: ClientRead,
    upstream: super::stream::UpstreamWrite,
    /// Messages for upstream, written at Query, Sync and Flush, or past [`SEND_ABOVE`].
    out: BytesMut,
    shared: Arc<Mutex<Shared>>,
}

impl Forwarder<'_> {
    async fn run(
        &mut self,
        reader: &mut FrameReader,
        mut first: Option<Frame>,
    ) -> Result<(), Fatal> {
        loop {
            self.bound_pending().await?;
            let next = match first.take() {
                Some(frame) => Some(frame),
                None => reader.next(&mut self.client).await.map_err(Fatal::read)?,
            };
            let Some(mut frame) = next else {
                return Ok(());
            };
            if !matches!(frame.tag, b'S' | b'H' | b'X') {
                // A Close cannot fail, so cannot roll the SET back.
                if self.session.effect_in_batch && frame.tag != b'C' {
                    if !self.skipping() {
                        let refusal = Refusal::new(
                            crate::refusal::RefusalKind::Setting,
                            "SET search_path must be the last statement before Sync",
                        )
                        .with_hint("send Sync after SET search_path, then the next statement");
                        self.refuse_extended("<message after SET search_path>", refusal);
                    }
                    continue;
                }
                // Not before the Sync that brings the SET's answer.
                if self.session.effect_unsettled && !self.session.effect_in_batch {
                    self.settle_effect().await;
                }
                if !self.session.undone && matches!(frame.tag, b'P' | b'B' | b'D' | b'C') {
                    self.undo_unapplied().await;
                    self.session.undone = true;
                }
            }
            if !self.skipping()
                && named_objects(frame.tag, &frame.body).any(|name| name.len() > MAX_NAME_BYTES)
            {
                self.session.in_batch = true;
                let refusal = Refusal::new(
                    crate::refusal::RefusalKind::Statement,
                    format!(
                        "prepared statement and portal names longer than {MAX_NAME_BYTES} bytes are not allowed"
                    ),
                )
                .with_hint("use shorter names: PostgreSQL tells names apart by their first 63 bytes only");
                self.refuse_extended("<statement or portal name too long>", refusal);
                continue;
            }
            match frame.tag {
                // PostgreSQL ignores every message up to Sync after an error.
                b'Q' | b'F' if self.skipping() => {}
                // After an error upstream ignores it, as above; otherwise PostgreSQL would end
                // the batch and run it, which tablegate does not. Which of the two is known
                // once upstream has answered the batch so far; a client that sent no Sync
                // waits for the Query's answer, so it cannot wait for the next Sync (found by
                // red-team review: refused there, the session hung).
                b'Q' | b'F' if self.session.in_batch => {
                    self.drain_to(0).await?;
                    if !self.skipping() {
                        return Err(Fatal::protocol(
                            "a simple Query or FunctionCall inside an unfinished extended-protocol batch is not supported: send Sync first",
                        ));
                    }
                }
                b'Q' => {
                    self.session.portals.clear();
                    self.session.recheck_user().await?;
                    if let Some(length) = frame.cut {
                        self.refuse_cut(&frame, length);
                    } else {
                        let sql = take_cstring(&mut frame.body).map_err(Fatal::read)?;
                        self.simple_query(sql).await;
                    }
                    self.flush().await?;
                }
                b'P' => {
                    self.session.recheck_user().await?;
                    self.session.in_batch = true;
                    match frame.cut {
                        Some(length) if !self.skipping() => self.refuse_cut(&frame, length),
                        Some(_) => {}
                        None => self.parse(frame.body)?,
                    }
                }
                b'B' => {
                    self.session.recheck_user().await?;
                    self.session.in_batch = true;
                    let mut body = frame.body.clone();
                    let portal = take_cstring(&mut body).map_err(Fatal::read)?;
                    let statement = take_cstring(&mut body).map_err(Fatal::read)?;
                    self.refresh_statement(&statement);
                    if !self.skipping() {
                        match self.session.statements.get(&statement) {
                            Some(s) => self.session.portals.insert(portal.clone(), s.text.clone()),
                            None => self.session.portals.remove(&portal),
                        };
                        self.push(Item::Bound { portal, statement });
                        wire::put_message(b'B', &frame.body, &mut self.out);
                    }
                }
                b'E' => {
                    // A suspended portal is fetched from by Execute alone.
                    self.session.recheck_user().await?;
                    self.session.in_batch = true;
                    if !self.skipping() {
                        let mut body = frame.body.clone();
                        let portal = take_cstring(&mut body).map_err(Fatal::read)?;
                        let statement = match self.portal_follows_the_policy(&portal).await {
                            Ok(statement) => statement,
                            Err((sql, refusal)) => {
                                self.refuse_extended(&sql, refusal);
                                continue;
                            }
                        };
                        let effect = Some(statement).filter(|s| s.effect.is_some());
                        if let Some(s) = &effect {
                            // Prepared outside a transaction block, perhaps run inside one.
                            if let Err(refusal) = self.effect_may_run().await {
                                self.refuse_extended(&s.sql, refusal);
                                continue;
                            }
                            self.session.effect_in_batch = true;
                            self.await_effect();
                        }
                        self.session.executed_in_batch = true;
                        self.push(Item::execute(portal, effect.is_some()));
                        wire::put_message(b'E', &frame.body, &mut self.out);
                    }
                }
                b'D' => {
                    self.session.in_batch = true;
                    let mut body = frame.body.clone();
                    let kind = body.first().copied();
                    body.advance(kind.map_or(0, |_| 1));
                    let name = take_cstring(&mut body).map_err(Fatal::read)?;
                    match kind {
                        Some(b'S') => self.refresh_statement(&name),
                        // Its columns are those of the policy it was bound under.
                        Some(b'P') if !self.skipping() => {
                            if let Err((sql, refusal)) = self.portal_follows_the_policy(&name).await
                            {
                                self.refuse_extended(&sql, refusal);
                                continue;
                            }
                        }
                        _ => {}
                    }
                    if !self.skipping() {
                        self.push(Item::Described);
                        wire::put_message(b'D', &frame.body, &mut self.out);
                    }
                }
                b'C' => {
                    self.session.in_batch = true;
                    if !self.skipping() {
                        let mut body = frame.body.clone();
                        if body.is_empty() {
                            return Err(Fatal::protocol("invalid Close message: no subtype"));
                        }
                        let kind = body.get_u8();
                        let name = take_cstring(&mut body).map_err(Fatal::read)?;
                        let (object, closed) = match kind {
                            b'S' => {
                                let closed = self.session.statements.remove(&name);
                                (Closing::Statement(name), closed.map(|s| s.text))
                            }
                            b'P' => {
                                self.session.portals.remove(&name);
                                (Closing::Portal(name), None)
                            }
                            // Upstream refuses it, and would skip what follows: the record
                            // must not change as if it had closed something (found by
                            // red-team review).
                            _ => return Err(Fatal::protocol("invalid Close message subtype")),
                        };
                        self.push(Item::Closed {
                            own: false,
                            object,
                            closed,
                        });
                        wire::put_message(b'C', &frame.body, &mut self.out);
                    }
                }
                b'H' => {
                    if !self.skipping() {
                        wire::put_message(b'H', &[], &mut self.out);
                    }
                    self.flush().await?;
                }
                b'S' => {
                    self.session.portals.clear();
                    self.session.skipping = false;
                    self.session.in_batch = false;
                    self.session.executed_in_batch = false;
                    self.session.effect_in_batch = false;
                    self.session.undone = false;
                    self.push(Item::Sync);
                    wire::put_message(b'S', &[], &mut self.out);
                    self.flush().await?;
                }
                b'X' => return Ok(()),
                b'F' => {
                    let refusal = Refusal::new(
                        crate::refusal::RefusalKind::Statement,
                        "function calls by object id (the fastpath interface) are not allowed",
                    );
                    self.refuse_simple("<fastpath function call>", refusal);
                    self.flush().await?;
                }
                b'd' | b'c' | b'f' => {}
                other => {
                    return Err(Fatal::protocol(&format!(
                        "unexpected message type {:?}",
                        other as char
                    )));
                }
            }
        }
    }

    fn skipping(&self) -> bool {
        self.session.skipping
    }

    /// The statement a portal runs, if it may run. A portal is planned when bound: one bound
    /// under an older access (a policy reload, a new catalog, the user's attributes) may run
    /// only if its statement is rewritten for the current access exactly as it was then;
    /// otherwise it would go on returning what the old policy allowed. A portal bound in the
    /// current batch is as the session sent it (if that Bind fails, upstream skips the rest of
    /// the batch); one from an earlier batch is as upstream's answers to those batches say,
    /// which were sent with their Sync: a Bind or Close upstream refused or skipped leaves the
    /// portal it had (found by red-team review). One without a record is refused.
    async fn portal_follows_the_policy(
        &mut self,
        portal: &str,
    ) -> Result<Arc<Forwarded>, (Arc<str>, Refusal)> {
        self.session.refresh_access();
        let current = self.session.access.id();
        let bound = match self.session.portals.get(portal) {
            Some(statement) => Some((statement.clone(), statement.access)),
            None => {
                self.wait_for_ready(Shared::earlier_batches_answered).await;
                let mut shared = self.shared.lock().expect("session state");
                shared
                    .portal_mut(portal)
                    .map(|p| (p.statement.clone(), p.access))
            }
        };
        let Some((statement, access)) = bound else {
            let refusal = Refusal::new(
                crate::refusal::RefusalKind::Statement,
                format!("portal \"{portal}\" does not exist"),
            )
            .with_hint("bind a statement to the portal before executing it");
            return Err((Arc::from("<execute>"), refusal));
        };
        if access == current {
            return Ok(statement);
        }
        let unchanged = self
            .session
            .rewrite(&statement.sql)
            .is_ok_and(|p| p.statements == 1 && p.sql == *statement.text);
        if !unchanged {
            let refusal = Refusal::new(
                crate::refusal::RefusalKind::Policy,
                format!("portal \"{portal}\" was bound before the policies changed"),
            )
            .with_hint("bind the statement again: the portal was planned under the old policy");
            return Err((statement.sql.clone(), refusal));
        }
        // Rewritten the same: right for the current access too.
        if !self.session.portals.contains_key(portal)
            && let Some(bound) = self
                .shared
                .lock()
                .expect("session state")
                .portal_mut(portal)
        {
            bound.access = current;
        }
        Ok(statement)
    }

    /// Keeps a pipeline that never sends Sync or Flush from growing without bound: its messages
    /// go upstream once they pass [`SEND_ABOVE`], and past [`MAX_QUEUED`] awaited answers the
    /// session asks upstream for its answers (a Flush: PostgreSQL holds them until its buffer
    /// fills) and waits for them before reading more from the client. If upstream skips the
    /// rest of the batch after an error, so does the session (nothing of it will be answered
    /// before Sync), as after a refusal.
    async fn bound_pending(&mut self) -> Result<(), Fatal> {
        if self.out.len() > SEND_ABOVE {
            self.flush().await?;
        }
        // While skipping, nothing is queued before Sync.
        if self.skipping() || self.shared.lock().expect("session state").queued() < MAX_QUEUED {
            return Ok(());
        }
        self.drain_to(MAX_QUEUED / 2).await
    }

    /// Asks upstream for its answers so far (a Flush) and waits until at most `at_most` are
    /// still awaited, or upstream skips the rest of the batch after an error — then so does the
    /// session.
    async fn drain_to(&mut self, at_most: usize) -> Result<(), Fatal> {
        wire::put_message(b'H', &[], &mut self.out);
        self.flush().await?;
        loop {
            let room = {
                let mut shared = self.shared.lock().expect("session state");
                if shared.upstream_skips_batch() {
                    self.session.skipping = true;
                    return Ok(());
                }
                if shared.queued() <= at_most {
                    return Ok(());
                }
                shared.wait_for_room(at_most);
                shared.room.clone()
            };
            room.notified().await;
        }
    }

    fn push(&self, item: Item) {
        self.shared.lock().expect("session state").push(item);
    }

    async fn flush(&mut self) -> Result<(), Fatal> {
        if !self.out.is_empty() {
            let sent = wire::send(&mut self.upstream, &self.out).await;
            // Cleared even on failure: `out` never holds bytes upstream may have received.
            self.out.clear();
            sent.map_err(Fatal::io)?;
            self.shared.lock().expect("session state").sent();
        }
        Ok(())
    }

    async fn simple_query(&mut self, sql: String) {
        let started = Instant::now();
        let mut prepared = self.session.rewrite(&sql);
        if let Ok(p) = &mut prepared
            && let Some(deallocation) = p.deallocation.take()
        {
            return self.deallocate(sql, &deallocation, started).await;
        }
        if let Ok(p) = &prepared
            && p.effect.is_some()
            && let Err(refusal) = self.effect_may_run().await
        {
            prepared = Err(refusal);
        }
        match prepared {
            Ok(prepared) => {
                if prepared.effect.is_some() {
                    self.await_effect();
                }
                wire::query(&prepared.sql, &mut self.out);
                let statement = Arc::new(Forwarded {
                    sql: Arc::from(sql),
                    text: Arc::from(prepared.sql),
                    effect: prepared.effect,
                    param_types: bytes::Bytes::new(),
                    access: self.session.access.id(),
                });
                let mut shared = self.shared.lock().expect("session state");
                shared.notices.extend(prepared.notices.iter().cloned());
                shared.push(Item::query(statement, started));
            }
            Err(refusal) => self.refuse_simple(&sql, refusal),
        }
    }

    /// Carries out `DEALLOCATE` as PostgreSQL's drivers' Close messages would: through the same
    /// record of statements, which forwarding the text would bypass (upstream would drop
    /// statements the session still counted, or keep ones it had forgotten). The unnamed
    /// statement stays, as with DEALLOCATE ALL; the unnamed portal goes, as with any Query.
    async fn deallocate(&mut self, sql: String, deallocation: &Deallocation, started: Instant) {
        // The record must be upstream's before it decides which statements exist.
        self.undo_unapplied().await;
        let names: Vec<String> = match deallocation {
            Deallocation::All => self
                .session
                .statements
                .keys()
                .filter(|name| !name.is_empty())
                .cloned()
                .collect(),
            Deallocation::Named(name) if self.session.statements.contains_key(name) => {
                vec![name.clone()]
            }
            Deallocation::Named(name) => {
                let refusal = Refusal::new(
                    crate::refusal::RefusalKind::Statement,
                    format!("prepared statement \"{name}\" does not exist"),
                );
                return self.refuse_simple(&sql, refusal);
            }
        };
        let mut shared = self.shared.lock().expect("session state");
        for name in names {
            let closed = self.session.statements.remove(&name).map(|s| s.text);
            put_close(b'S', &name, &mut self.out);
            shared.push(Item::Closed {
                own: true,
                object: Closing::Statement(name),
                closed,
            });
        }
        self.session.portals.remove("");
        put_close(b'P', "", &mut self.out);
        let statement = Arc::new(Forwarded {
            text: Arc::from(deallocation.command_tag()),
            sql: Arc::from(sql),
            effect: None,
            param_types: bytes::Bytes::new(),
            access: self.session.access.id(),
        });
        shared.push(Item::completed(
            statement,
            started,
            deallocation.command_tag(),
        ));
        wire::put_message(b'S', &[], &mut self.out);
        shared.push(Item::Sync);
    }

    /// A `SET search_path` runs alone in a transaction of its own, which upstream commits
    /// unless the SET itself fails: nothing sent before it may still open a transaction block
    /// or fail one, and nothing may follow it before Sync. Then tablegate knows the path
    /// upstream follows once upstream answers.
    async fn effect_may_run(&self) -> Result<(), Refusal> {
        if self.session.executed_in_batch {
            return Err(Refusal::new(
                crate::refusal::RefusalKind::Setting,
                "SET search_path must be the first statement after Sync",
            )
            .with_hint("send Sync before SET search_path"));
        }
        // Statements sent before it, in earlier batches, may still open or end a transaction.
        self.wait_for_ready(Shared::transaction_status_is_current)
            .await;
        let status = self
            .shared
            .lock()
            .expect("session state")
            .transaction_status;
        effect_allowed(true, status)
    }

    /// A `SET search_path` is on its way: the next statement waits for upstream's answer.
    fn await_effect(&mut self) {
        self.shared.lock().expect("session state").awaiting_effect = true;
        self.session.effect_unsettled = true;
    }

    /// Waits until upstream has answered the `SET search_path` sent, then follows the path it
    /// committed, if it did. Its ReadyForQuery comes without more from the client: the SET
    /// went upstream alone, with its Sync.
    async fn settle_effect(&mut self) {
        self.wait_for_ready(|shared| !shared.awaiting_effect).await;
        let committed = self
            .shared
            .lock()
            .expect("session state")
            .committed_effect
            .take();
        if let Some(effect) = committed {
            self.session.apply(&effect);
        }
        self.session.effect_unsettled = false;
    }

    /// Waits for ReadyForQuery messages until `done` holds. Only for answers to messages
    /// already sent upstream, which come without more from the client.
    async fn wait_for_ready(&self, done: impl Fn(&Shared) -> bool) {
        let ready = {
            let shared = self.shared.lock().expect("session state");
            // Usually so at once: no waiter to register (this runs at every batch).
            if done(&shared) {
                return;
            }
            shared.ready.clone()
        };
        loop {
            let notified = ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.shared.lock().expect("session state")) {
                return;
            }
            notified.await;
        }
    }

    /// Before a batch uses the client's prepared statements: waits for the answers to Parses
    /// and Closes of earlier batches (already sent, so they come), then undoes, newest first,
    /// what the session recorded for those upstream did not carry out. Within a batch nothing
    /// needs undoing for the batch's own sake: after an error upstream skips the rest of it.
    async fn undo_unapplied(&mut self) {
        self.wait_for_ready(|shared| !shared.changes_statements())
            .await;
        let unapplied = std::mem::take(&mut self.shared.lock().expect("session state").unapplied);
        let statements = &mut self.session.statements;
        for undo in unapplied.into_iter().rev() {
            match undo {
                // Upstream did not take it, and may still hold the unnamed statement it replaced.
                Unapplied::Parse {
                    name,
                    statement,
                    kept,
                } => {
                    if statements
                        .get(&name)
                        .is_some_and(|s| Arc::ptr_eq(&s.text, &statement))
                    {
                        statements.remove(&name);
                    }
                    if let Some(text) = kept {
                        statements.insert(name, Statement::stale(text));
                    }
                }
                // Upstream still holds it, perhaps rewritten for an older access: rewrite it
                // again before it next runs.
                Unapplied::Close {
                    name,
                    closed: Some(text),
                } => {
                    statements.insert(name, Statement::stale(text));
                }
                Unapplied::Close { closed: None, .. } => {}
            }
        }
    }

    /// Counts and audits a refused statement; `length` is its whole length in bytes (`sql` may
    /// be only its start).
    fn record_refusal(&self, sql: &str, length: usize, refusal: &Refusal) {
        self.session.gate.metrics.refused(refusal.kind);
        audit::record(
            &self.session.subject,
            &audit::refused_sql(sql, length),
            None,
            Outcome::Refused {
                reason: &refusal.message,
                kind: refusal.kind.as_str(),
            },
            Duration::ZERO,
        );
    }

    /// Sends a refusal marker as a simple query; the relay answers with the refusal.
    fn refuse_simple(&mut self, sql: &str, refusal: Refusal) {
        self.record_refusal(sql, sql.len(), &refusal);
        self.send_simple_refusal(refusal);
    }

    fn send_simple_refusal(&mut self, refusal: Refusal) {
        wire::query(&self.marker(), &mut self.out);
        let mut shared = self.shared.lock().expect("session state");
        shared.push(Item::Refused(refusal));
        shared.push(Item::Sync);
    }

    /// Refuses a Query or Parse the reader cut (see [`MAX_QUERY_BODY`]) as the rewriter refuses
    /// a statement past [`MAX_STATEMENT_BYTES`], auditing the start of its text.
    fn refuse_cut(&mut self, frame: &Frame, length: usize) {
        let mut text: &[u8] = &frame.body;
        if frame.tag == b'P' {
            // Past the statement's name, if the part kept holds all of it.
            text = text.splitn(2, |&b| b == 0).nth(1).unwrap_or_default();
        }
        let text = text.split(|&b| b == 0).next().unwrap_or_default();
        let sql = String::from_utf8_lossy(text);
        let refusal = Refusal::new(
            crate::refusal::RefusalKind::Unsupported,
            format!(
                "the statement is longer than the {MAX_STATEMENT_BYTES} bytes tablegate checks at once (its message is {length} bytes long)"
            ),
        )
        .with_hint("split it, or put long lists of values in a table");
        self.record_refusal(sql.trim_end_matches('\u{FFFD}'), length, &refusal);
        if frame.tag == b'Q' {
            self.send_simple_refusal(refusal);
        } else {
            self.send_extended_refusal(refusal);
        }
    }

    fn marker(&self) -> String {
        format!("TABLEGATE_REFUSED_{}", self.session.nonce)
    }

    fn parse(&mut self, mut body: BytesMut) -> Result<(), Fatal> {
        if self.skipping() {
            return Ok(());
        }
        let name = take_cstring(&mut body).map_err(Fatal::read)?;
        let sql = take_cstring(&mut body).map_err(Fatal::read)?;
        self.prepare(name, Arc::from(sql), body.freeze(), false);
        Ok(())
    }

    /// Rewrites a statement for Parse and sends the Parse upstream (with the client's declared
    /// parameter types), or a refusal marker. `own`: tablegate re-prepares a statement the
    /// client prepared earlier, so upstream's ParseComplete is not the client's to see.
    fn prepare(&mut self, name: String, sql: Arc<str>, param_types: bytes::Bytes, own: bool) {
        let status = self
            .shared
            .lock()
            .expect("session state")
            .transaction_status;
        let prepared = self
            .session
            .rewrite(&sql)
            .and_then(single_statement)
            .and_then(not_deallocate)
            .and_then(|p| effect_allowed(p.effect.is_some(), status).map(|()| p))
            .and_then(|p| declared_types_allowed(&param_types).map(|()| p));
        // Upstream answers 42P05 and keeps the statement it has: so does tablegate. (Its
        // Parse, if in an earlier batch, was answered: see `undo_unapplied`.)
        let tracked = own || name.is_empty() || !self.session.statements.contains_key(&name);
        match prepared {
            Ok(prepared) => {
                let mut message = BytesMut::with_capacity(
                    name.len() + prepared.sql.len() + param_types.len() + 2,
                );
                message.extend_from_slice(name.as_bytes());
                message.extend_from_slice(&[0]);
                message.extend_from_slice(prepared.sql.as_bytes());
                message.extend_from_slice(&[0]);
                message.extend_from_slice(&param_types);
                wire::put_message(b'P', &message, &mut self.out);
                let statement = Arc::new(Forwarded {
                    sql,
                    text: Arc::from(prepared.sql),
                    effect: prepared.effect,
                    param_types,
                    access: self.session.access.id(),
                });
                let replaced = match name.as_str() {
                    "" => self.session.statements.get("").map(|s| s.text.clone()),
                    _ => None,
                };
                let mut shared = self.shared.lock().expect("session state");
                shared.notices.extend(prepared.notices.iter().cloned());
                shared.push(Item::Parsed {
                    own,
                    name: name.clone(),
                    statement: statement.clone(),
                    tracked,
                    replaced,
                });
                drop(shared);
                if tracked {
                    self.session.statements.insert(
                        name,
                        Statement {
                            text: statement,
                            stale: false,
                        },
                    );
                }
            }
            // A named statement upstream already holds stays, there and here.
            Err(refusal) => self.refuse_extended(&sql, refusal),
        }
    }

    /// Sends a refusal marker as an unnamed Parse; the relay answers with the refusal, and the
    /// rest of the batch is skipped until Sync, as after any error in the extended protocol.
    fn refuse_extended(&mut self, sql: &str, refusal: Refusal) {
        self.record_refusal(sql, sql.len(), &refusal);
        self.send_extended_refusal(refusal);
    }

    fn send_extended_refusal(&mut self, refusal: Refusal) {
        // The marker is an unnamed Parse: upstream drops its unnamed statement — unless it is
        // skipping after an error of its own, and keeps it. Either way, rewrite it again before
        // it runs.
        if let Some(unnamed) = self.session.statements.get_mut("") {
            unnamed.stale = true;
        }
        let mut message = BytesMut::new();
        message.extend_from_slice(&[0]);
        message.extend_from_slice(self.marker().as_bytes());
        message.extend_from_slice(&[0, 0, 0]);
        wire::put_message(b'P', &message, &mut self.out);
        self.push(Item::Refused(refusal));
        self.session.skipping = true;
    }

    /// Before a statement the client prepared earlier is bound or described: if its rewrite was
    /// made for an access that is no longer current (a policy reload, a new catalog), make it
    /// again and re-prepare it upstream under the same name — or refuse it now.
    fn refresh_statement(&mut self, name: &str) {
        if self.skipping() {
            return;
        }
        self.session.refresh_access();
        let current = self.session.access.id();
        let Some(statement) = self.session.statements.get(name) else {
            return;
        };
        if !statement.stale && statement.text.access == current {
            return;
        }
        let text = statement.text.clone();
        put_close(b'S', name, &mut self.out);
        let (sql, param_types) = (text.sql.clone(), text.param_types.clone());
        self.push(Item::Closed {
            own: true,
            object: Closing::Statement(name.to_owned()),
            closed: Some(text),
        });
        self.prepare(name.to_owned(), sql, param_types, true);
    }
}

/// A Close of the statement (`S`) or portal (`P`) `name`, which tablegate sends itself.
fn put_close(kind: u8, name: &str, out: &mut BytesMut) {
    wire::put_message(b'C', &[&[kind], name.as_bytes(), b"\0"].concat(), out);
}

/// A prepared `DEALLOCATE` would drop statements when executed, past the session's record of
/// them (see `deallocate`).
fn not_deallocate(prepared: crate::cache::Prepared) -> Result<crate::cache::Prepared, Refusal> {
    match prepared.deallocation {
        Some(_) => Err(Refusal::new(
            crate::refusal::RefusalKind::Statement,
            "DEALLOCATE cannot be prepared",
        )
        .with_hint(
            "send DEALLOCATE as a simple query, or close the statement with a Close message",
        )),
        None => Ok(prepared),
    }
}

/// PostgreSQL keys prepared statements and portals on the first 63 bytes of their names
/// (NAMEDATALEN - 1), tablegate on whole names: two longer names alike in those bytes would be
/// one object upstream and two here, and a statement prepared under an old policy could be
/// bound under the other name (found in review). Such names are refused.
const MAX_NAME_BYTES: usize = 63;

/// The statement and portal names an extended-protocol message refers to (those that end in
/// their NUL; a malformed message is the handlers' to refuse).
fn named_objects(tag: u8, body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (skip, count) = match tag {
        b'P' | b'E' => (0, 1),
        b'B' => (0, 2),
        b'D' | b'C' => (1, 1),
        _ => (0, 0),
    };
    let mut rest = body.get(skip..).unwrap_or_default();
    (0..count).map_while(move |_| {
        let end = rest.iter().position(|&b| b == 0)?;
        let name = &rest[..end];
        rest = &rest[end + 1..];
        Some(name)
    })
}

fn single_statement(prepared: crate::cache::Prepared) -> Result<crate::cache::Prepared, Refusal> {
    if prepared.statements > 1 {
        return Err(Refusal::new(
            crate::refusal::RefusalKind::Syntax,
            "cannot insert multiple commands into a prepared statement",
        ));
    }
    Ok(prepared)
}

/// Parameter types are declared by OID, past the rewriter: a table's row type or a catalog
/// lookup type there would do what the same cast in the text is refused for.
fn declared_types_allowed(param_types: &[u8]) -> Result<(), Refusal> {
    let oids = param_types.get(2..).unwrap_or_default().chunks_exact(4);
    for oid in oids.map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) {
        if let Some(what) = crate::rewrite::functions::refused_parameter_type(oid) {
            return Err(Refusal::new(
                crate::refusal::RefusalKind::Function,
                format!("parameters of {what} are not allowed"),
            )
            .with_hint("declare parameters with PostgreSQL's built-in types, or leave them untyped (OID 0)"));
        }
    }
    Ok(())
}

/// SET search_path is tracked by tablegate, so it may only run outside transaction blocks
/// (inside one, a rollback would undo it upstream but not in tablegate).
fn effect_allowed(has_effect: bool, status: u8) -> Result<(), Refusal> {
    if has_effect && status != b'I' {
        return Err(Refusal::new(
            crate::refusal::RefusalKind::Setting,
            "SET search_path is only allowed outside a transaction block",
        )
        .with_hint("set the search_path before BEGIN"));
    }
    Ok(())
}

impl Fatal {
    pub async fn send_to(&self, out: &mut (impl tokio::io::AsyncWrite + Unpin)) {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        let _ = wire::send(out, &buf).await;
        let _ = out.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_split_like_libpq() {
        assert_eq!(
            split_options(r"-c a=b  -c c=d\ e --f=g"),
            ["-c", "a=b", "-c", "c=d e", "--f=g"]
        );
    }

    #[test]
    fn startup_settings_come_from_parameters_and_options() {
        let params: BTreeMap<String, String> = [
            ("user", "u"),
            ("DateStyle", "ISO"),
            ("options", "-c tablegate.act_as=alice --search-path=public"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = startup_settings(&params).unwrap();
        assert_eq!(settings["datestyle"], "ISO");
        assert_eq!(settings["tablegate.act_as"], "alice");
        assert_eq!(settings["search_path"], "public");
        assert!(startup_settings(&[("options".to_string(), "-X".to_string())].into()).is_err());
    }
}
