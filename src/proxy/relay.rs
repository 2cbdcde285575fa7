//! Upstream responses back to the client, as bytes.
//!
//! Rows and row descriptions are never decoded: the relay reads message headers only, to know
//! where each message ends, to count rows, and to act on the few messages it must:
//! ReadyForQuery (the transaction status), completions (audit), ParameterStatus (the service
//! account's identity is not reported), and ErrorResponse — the refusal marker's error is
//! replaced by the refusal, and positions into rewritten text are dropped. Messages larger than
//! the buffer stream through without being held whole, except errors and notices, which are
//! cut to their first 64 KiB.
//!
//! Upstream's answers are also the only exact record of what it holds: which prepared
//! statements and portals exist (a Parse or Bind can fail there after tablegate sent it), and
//! whether a `SET search_path` committed. The relay keeps that record in answer order, so audit
//! records name the statement a portal really ran, the session checks a portal of an earlier
//! batch against the policy as upstream holds it, and follows the search path upstream
//! committed — or ends, when upstream ran one tablegate did not expect.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use pgwire::messages::response::ErrorResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::stream::{ClientWrite, UpstreamRead};
use crate::audit::{self, Outcome, Subject};
use crate::metrics::ProxyMetrics;
use crate::refusal::Refusal;
use crate::rewrite::SessionEffect;
use crate::wire::{self, Report, take_cstring};

/// Messages above this size are streamed rather than buffered whole.
const STREAM_ABOVE: usize = 64 * 1024;

/// At most this many answers are awaited at once: past it the session waits for upstream's
/// answers before it reads more from the client, so a pipeline without Sync does not grow the
/// queue without bound.
pub const MAX_QUEUED: usize = 4096;

/// The longest error message an audit record keeps.
const AUDITED_ERROR: usize = 4 * 1024;

/// A statement as tablegate forwarded it.
pub struct Forwarded {
    /// As the client sent it.
    pub sql: Arc<str>,
    /// As upstream runs it.
    pub text: Arc<str>,
    pub effect: Option<SessionEffect>,
    /// The parameter types the client declared, as sent (empty for a simple Query).
    pub param_types: bytes::Bytes,
    /// The access `text` was rewritten for.
    pub access: u64,
}

/// A portal upstream holds, as its answers confirm it.
pub struct BoundPortal {
    pub statement: Arc<Forwarded>,
    /// The access its statement is known to be rewritten right for: its own, or a later one
    /// under which a rewrite came out the same.
    pub access: u64,
}

/// A statement upstream is running for the client.
pub struct Run {
    /// What runs: for an Execute, found from `portal` when upstream answers it.
    statement: Option<Arc<Forwarded>>,
    portal: Option<String>,
    /// The session sent it as a `SET search_path` and waits for it to settle.
    expects_effect: bool,
    /// When the client's message arrived (audit duration: rewrite and upstream).
    started: Instant,
    /// When the statement was queued for upstream (upstream latency).
    sent: Instant,
    rows: u64,
    error: Option<String>,
}

impl Run {
    /// `statement`, its text sent upstream now.
    fn of(statement: Arc<Forwarded>, started: Instant) -> Run {
        Run {
            expects_effect: statement.effect.is_some(),
            statement: Some(statement),
            portal: None,
            started,
            sent: Instant::now(),
            rows: 0,
            error: None,
        }
    }
}

/// What upstream will answer next, in order.
pub enum Item {
    /// A simple Query: its answer ends with ReadyForQuery.
    Query(Run),
    /// An Execute: its answer ends with a completion, an error, or suspension.
    Execute(Run),
    /// A refusal marker: its syntax error is replaced by this refusal.
    Refused(Refusal),
    /// A Sync (or the end of a refusal marker's simple query): ends with ReadyForQuery.
    Sync,
    /// A Parse: ends with ParseComplete, which is not passed on if tablegate sent the Parse
    /// itself (re-preparing a statement after a policy change). `tracked`: the session
    /// recorded the statement under `name`, and hears if upstream refused it; `replaced`: the
    /// unnamed statement the session forgot for it.
    Parsed {
        own: bool,
        name: String,
        statement: Arc<Forwarded>,
        tracked: bool,
        replaced: Option<Arc<Forwarded>>,
    },
    /// A Bind: ends with BindComplete.
    Bound { portal: String, statement: String },
    /// A Describe: ends with RowDescription or NoData. It has its item so that an error it
    /// causes is not taken for the next message's (which upstream then skipped, not refused).
    Described,
    /// A Close: ends with CloseComplete, which is not passed on if tablegate sent it.
    /// `closed`: the statement the session forgot when it sent the Close.
    Closed {
        own: bool,
        object: Closing,
        closed: Option<Arc<Forwarded>>,
    },
    /// A statement the session carried out with messages of its own (`DEALLOCATE`, as Closes),
    /// ended by its Close of the unnamed portal (as a simple Query ends it): that CloseComplete
    /// reaches the client as the statement's CommandComplete with `tag`.
    Completed { run: Run, tag: &'static str },
}

/// A Parse or Close the session counted on that upstream did not carry out: it failed, or came
/// after an error and was skipped. The session undoes what it recorded, newest first. What
/// upstream may still hold comes back as stale, to be checked again before it runs: a stale
/// record of something upstream dropped costs a check, a missing or fresh record of something
/// it kept would let it run unchecked.
pub enum Unapplied {
    /// `kept`: the unnamed statement upstream may still hold (one a failed Parse replaced is
    /// gone, a skipped one's is not: kept either way).
    Parse {
        name: String,
        statement: Arc<Forwarded>,
        kept: Option<Arc<Forwarded>>,
    },
    Close {
        name: String,
        closed: Option<Arc<Forwarded>>,
    },
}

impl Unapplied {
    /// What the session must undo for `item`, which upstream did not carry out.
    fn of(item: Item) -> Option<Unapplied> {
        match item {
            Item::Parsed {
                own,
                name,
                statement,
                tracked,
                replaced,
            } if own || tracked => Some(Unapplied::Parse {
                name,
                statement,
                kept: replaced,
            }),
            Item::Closed {
                object: Closing::Statement(name),
                closed,
                ..
            } => Some(Unapplied::Close { name, closed }),
            _ => None,
        }
    }
}

/// What a Close closes.
pub enum Closing {
    Statement(String),
    Portal(String),
}

impl Item {
    pub fn query(statement: Arc<Forwarded>, started: Instant) -> Item {
        Item::Query(Run::of(statement, started))
    }

    pub fn completed(statement: Arc<Forwarded>, started: Instant, tag: &'static str) -> Item {
        Item::Completed {
            run: Run::of(statement, started),
            tag,
        }
    }

    pub fn execute(portal: String, expects_effect: bool) -> Item {
        let now = Instant::now();
        Item::Execute(Run {
            statement: None,
            portal: Some(portal),
            expects_effect,
            started: now,
            sent: now,
            rows: 0,
            error: None,
        })
    }
}

/// Upstream ran a `SET search_path` tablegate did not expect, or inside a transaction block
/// whose end would decide it: the path tablegate resolves names along may no longer be
/// upstream's.
pub struct Untracked;

/// Session state both halves see.
pub struct Shared {
    /// From the last ReadyForQuery: `I`dle, in a `T`ransaction, or in a failed one (`E`).
    pub transaction_status: u8,
    items: VecDeque<Item>,
    /// How many of the newest `items` are for messages not yet sent upstream.
    unsent: usize,
    /// NOTICEs for the client, sent before more upstream output.
    pub notices: Vec<String>,
    marker: String,
    subject: Subject,
    metrics: Arc<ProxyMetrics>,
    /// Upstream's prepared statements and portals, as its answers confirm them.
    statements: HashMap<String, Arc<Forwarded>>,
    portals: HashMap<String, BoundPortal>,
    /// Parses and Closes upstream did not carry out, oldest first.
    pub unapplied: Vec<Unapplied>,
    /// How many of the newest `items` came after the last Sync or Query: the current batch.
    since_batch_end: usize,
    /// A `SET search_path` ran in the transaction upstream is in.
    effect_ran: Option<SessionEffect>,
    /// The session sent a `SET search_path` and waits for the next ReadyForQuery.
    pub awaiting_effect: bool,
    /// A `SET search_path` upstream committed, for the session to follow.
    pub committed_effect: Option<SessionEffect>,
    /// Wakes the session at each ReadyForQuery.
    pub ready: Arc<Notify>,
    /// An error came since the last ReadyForQuery.
    errored: bool,
    /// The session waits for the queue to shrink to this length (or upstream to skip the
    /// batch); woken through `room`.
    room_wanted: Option<usize>,
    pub room: Arc<Notify>,
}

impl Shared {
    pub fn new(nonce: String, subject: Subject, metrics: Arc<ProxyMetrics>) -> Shared {
        Shared {
            transaction_status: b'I',
            items: VecDeque::new(),
            unsent: 0,
            notices: Vec::new(),
            marker: format!("TABLEGATE_REFUSED_{nonce}"),
            subject,
            metrics,
            statements: HashMap::new(),
            portals: HashMap::new(),
            unapplied: Vec::new(),
            since_batch_end: 0,
            effect_ran: None,
            awaiting_effect: false,
            committed_effect: None,
            ready: Arc::new(Notify::new()),
            errored: false,
            room_wanted: None,
            room: Arc::new(Notify::new()),
        }
    }

    /// How many answers are awaited.
    pub fn queued(&self) -> usize {
        self.items.len()
    }

    /// Upstream is skipping to Sync after an error in the batch the session has not yet ended:
    /// whatever more the session sends before Sync is ignored there, and answered by nothing
    /// until the Sync's ReadyForQuery. (Every Sync or Query sent was answered, so the error
    /// came after the last of them.)
    pub fn upstream_skips_batch(&self) -> bool {
        self.errored
            && !self
                .items
                .iter()
                .any(|item| matches!(item, Item::Query(_) | Item::Sync))
    }

    /// The session waits until at most `at_most` items are queued, or upstream skips the
    /// batch (its queue shrinks only at Sync then).
    pub fn wait_for_room(&mut self, at_most: usize) {
        self.room_wanted = Some(at_most);
    }

    fn offer_room(&mut self) {
        if let Some(at_most) = self.room_wanted
            && (self.items.len() <= at_most || self.upstream_skips_batch())
        {
            self.room_wanted = None;
            self.room.notify_one();
        }
    }

    pub fn push(&mut self, item: Item) {
        self.since_batch_end = match item {
            Item::Query(_) | Item::Sync => 0,
            _ => self.since_batch_end + 1,
        };
        self.items.push_back(item);
        self.unsent += 1;
    }

    /// Every batch before the current one is answered, so the record of portals is upstream's
    /// as of the current batch's start. Each ended with a Sync or Query, which went upstream at
    /// once.
    pub fn earlier_batches_answered(&self) -> bool {
        self.items.len() <= self.since_batch_end
    }

    /// The portal upstream holds under `name`, as far as its answers so far tell.
    pub fn portal_mut(&mut self, name: &str) -> Option<&mut BoundPortal> {
        self.portals.get_mut(name)
    }

    /// The messages of every item so far went upstream: they will be answered.
    pub fn sent(&mut self) {
        self.unsent = 0;
    }

    /// Forgets the items whose messages never went upstream, which no answer will come for.
    pub fn forget_unsent(&mut self) {
        let sent = self.items.len().saturating_sub(self.unsent);
        self.items.truncate(sent);
        self.unsent = 0;
    }

    /// Nothing is in flight: upstream is between statements.
    pub fn is_quiet(&self) -> bool {
        self.items.is_empty()
    }

    /// A statement is running upstream, or queued there, rather than only a Parse, Close or
    /// Sync being answered.
    pub fn runs_a_statement(&self) -> bool {
        self.items
            .iter()
            .any(|item| matches!(item, Item::Query(_) | Item::Execute(_)))
    }

    /// A Parse or Close already sent waits for its answer.
    pub fn changes_statements(&self) -> bool {
        self.items
            .iter()
            .any(|item| matches!(item, Item::Parsed { .. } | Item::Closed { .. }))
    }

    /// No answer still due ends a statement or a transaction: the last ReadyForQuery's status
    /// is upstream's now, whatever Parse, Bind or Close of the current batch is answered.
    pub fn transaction_status_is_current(&self) -> bool {
        !self
            .items
            .iter()
            .any(|item| matches!(item, Item::Query(_) | Item::Execute(_) | Item::Sync))
    }

    fn current_run(&mut self) -> Option<&mut Run> {
        match self.items.front_mut() {
            Some(Item::Query(run) | Item::Execute(run)) => Some(run),
            _ => None,
        }
    }

    /// Finds an Execute's statement: the one upstream bound to its portal.
    fn resolve(&self, run: &mut Run) {
        if let Some(portal) = run.portal.take() {
            run.statement = self.portals.get(&portal).map(|p| p.statement.clone());
        }
    }

    fn finish(&self, mut run: Run) {
        self.resolve(&mut run);
        self.metrics
            .finished(run.error.is_some(), run.sent.elapsed());
        let outcome = match &run.error {
            None => Outcome::Ok { rows: run.rows },
            Some(message) => Outcome::Error { message },
        };
        let (sql, text) = match &run.statement {
            Some(s) => (&*s.sql, &*s.text),
            None => ("", ""),
        };
        audit::record(
            &self.subject,
            sql,
            Some(text),
            outcome,
            run.started.elapsed(),
        );
    }

    fn on_row(&mut self) {
        if let Some(run) = self.current_run() {
            run.rows += 1;
        }
    }

    /// A ParseComplete, BindComplete or CloseComplete: what the client should see of it.
    fn on_prepared(&mut self, tag: u8, message: BytesMut) -> Option<BytesMut> {
        let expected = matches!(
            (self.items.front(), tag),
            (Some(Item::Parsed { .. }), b'1')
                | (Some(Item::Bound { .. }), b'2')
                | (Some(Item::Closed { .. } | Item::Completed { .. }), b'3')
        );
        if !expected {
            return Some(message);
        }
        let shown = match self.items.pop_front() {
            Some(Item::Parsed {
                own,
                name,
                statement,
                ..
            }) => {
                self.statements.insert(name, statement);
                !own
            }
            Some(Item::Bound { portal, statement }) => {
                match self.statements.get(&statement) {
                    Some(s) => {
                        let bound = BoundPortal {
                            statement: s.clone(),
                            access: s.access,
                        };
                        self.portals.insert(portal, bound);
                    }
                    None => {
                        self.portals.remove(&portal);
                    }
                }
                true
            }
            Some(Item::Closed { own, object, .. }) => {
                match object {
                    Closing::Statement(name) => {
                        self.statements.remove(&name);
                    }
                    Closing::Portal(name) => {
                        self.portals.remove(&name);
                    }
                }
                !own
            }
            Some(Item::Completed { run, tag }) => {
                self.portals.remove("");
                self.finish(run);
                let mut complete = BytesMut::new();
                wire::put_message(b'C', format!("{tag}\0").as_bytes(), &mut complete);
                return Some(complete);
            }
            _ => true,
        };
        shown.then_some(message)
    }

    /// A RowDescription or NoData: the end of a Describe's answer (a simple Query's
    /// RowDescription comes with the Query at the front).
    fn on_description(&mut self) {
        if matches!(self.items.front(), Some(Item::Described)) {
            self.items.pop_front();
        }
    }

    /// A CommandComplete, EmptyQueryResponse or PortalSuspended.
    fn on_completion(&mut self) -> Result<(), Untracked> {
        let effect = match self.items.front() {
            Some(Item::Query(run)) => run.statement.as_ref().and_then(|s| s.effect.clone()),
            Some(Item::Execute(_)) => {
                let Some(Item::Execute(mut run)) = self.items.pop_front() else {
                    unreachable!("the front item is an Execute")
                };
                self.resolve(&mut run);
                // Completed, so upstream knew the portal: so must the relay.
                let Some(statement) = run.statement.clone() else {
                    return Err(Untracked);
                };
                if statement.effect.is_some() && !run.expects_effect {
                    return Err(Untracked);
                }
                self.finish(run);
                statement.effect.clone()
            }
            _ => None,
        };
        if effect.is_some() {
            self.effect_ran = effect;
        }
        Ok(())
    }

    /// An ErrorResponse: the bytes to send instead (the same bytes, or a rewritten message).
    fn on_error(&mut self, message: BytesMut) -> BytesMut {
        // The transaction it ran in fails: a SET search_path in it is undone.
        self.effect_ran = None;
        self.errored = true;
        let fields = match parse_fields(&message) {
            Some(f) => f,
            None => return message,
        };
        let text = fields
            .iter()
            .find(|(k, _)| *k == b'M')
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if text.contains(&self.marker) {
            while let Some(item) = self.items.pop_front() {
                match item {
                    Item::Refused(refusal) => {
                        let mut out = BytesMut::new();
                        Report {
                            severity: "ERROR",
                            code: Refusal::SQLSTATE,
                            message: &refusal.message,
                            detail: None,
                            hint: refusal.hint.as_deref(),
                        }
                        .error(&mut out);
                        return out;
                    }
                    Item::Query(run) | Item::Execute(run) | Item::Completed { run, .. } => {
                        self.finish(run)
                    }
                    Item::Sync
                    | Item::Parsed { .. }
                    | Item::Bound { .. }
                    | Item::Described
                    | Item::Closed { .. } => {}
                }
            }
            return message;
        }
        let rewritten = match self.items.front_mut() {
            Some(Item::Query(run)) => {
                run.error.get_or_insert_with(|| audited(text));
                run.statement.as_ref().is_none_or(|s| s.sql != s.text)
            }
            _ => true,
        };
        match self.items.front() {
            Some(Item::Execute(_)) => {
                if let Some(Item::Execute(mut run)) = self.items.pop_front() {
                    run.error = Some(audited(text));
                    self.finish(run);
                }
            }
            // The Parse, Bind or Close failed; upstream now skips to Sync.
            Some(Item::Parsed { .. } | Item::Bound { .. } | Item::Closed { .. }) => {
                let failed = self.items.pop_front().expect("the front item");
                self.unapplied.extend(Unapplied::of(failed));
            }
            Some(Item::Described) => {
                self.items.pop_front();
            }
            _ => {}
        }
        if rewritten && fields.iter().any(|(k, _)| *k == b'P') {
            // The position points into the rewritten text, not the client's: drop it.
            let kept = fields.into_iter().filter(|(k, _)| *k != b'P').collect();
            let mut out = BytesMut::new();
            wire::encode(&ErrorResponse::new(kept), &mut out);
            return out;
        }
        message
    }

    fn on_ready(&mut self, status: u8) -> Result<(), Untracked> {
        self.transaction_status = status;
        self.errored = false;
        if status == b'I' {
            // Outside a transaction no portal lives on.
            self.portals.clear();
        }
        self.awaiting_effect = false;
        self.ready.notify_waiters();
        if let Some(effect) = self.effect_ran.take() {
            if status != b'I' {
                return Err(Untracked);
            }
            self.committed_effect = Some(effect);
        }
        while let Some(item) = self.items.pop_front() {
            match item {
                Item::Query(run) => {
                    self.finish(run);
                    break;
                }
                Item::Sync => break,
                Item::Execute(mut run) | Item::Completed { mut run, .. } => {
                    run.error.get_or_insert_with(|| {
                        "not executed: an earlier message in the pipeline failed".into()
                    });
                    self.finish(run);
                }
                // Skipped after an error.
                Item::Parsed { .. } | Item::Bound { .. } | Item::Closed { .. } => {
                    self.unapplied.extend(Unapplied::of(item));
                }
                Item::Refused(_) | Item::Described => {}
            }
        }
        Ok(())
    }
}

/// An error message as the audit record keeps it: at most [`AUDITED_ERROR`] bytes.
fn audited(text: &str) -> String {
    if text.len() <= AUDITED_ERROR {
        return text.to_owned();
    }
    let mut end = AUDITED_ERROR;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} …", &text[..end])
}

/// An ErrorResponse or NoticeResponse from the start of a longer one: its complete fields, and
/// the one it stops in, marked as cut.
fn cut_short(start: &[u8]) -> BytesMut {
    let mut fields = BytesMut::new();
    for field in start[5..].split_inclusive(|&b| b == 0) {
        if field.len() < 2 {
            break;
        }
        if field.last() == Some(&0) {
            fields.extend_from_slice(field);
        } else {
            // Cut perhaps inside a UTF-8 sequence: keep whole characters only.
            fields.extend_from_slice(&field[..1]);
            let text = String::from_utf8_lossy(&field[1..]);
            fields.extend_from_slice(text.trim_end_matches('\u{FFFD}').as_bytes());
            fields.extend_from_slice(" … (cut short by tablegate)\0".as_bytes());
        }
    }
    fields.extend_from_slice(&[0]);
    let mut message = BytesMut::with_capacity(fields.len() + 5);
    message.extend_from_slice(&[start[0]]);
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    message
}

/// The fields of an ErrorResponse or NoticeResponse message (type byte and length included).
fn parse_fields(message: &[u8]) -> Option<Vec<(u8, String)>> {
    let mut body = BytesMut::from(message.get(5..)?);
    let mut fields = Vec::new();
    while !body.is_empty() && body[0] != 0 {
        let key = body.get_u8();
        fields.push((key, take_cstring(&mut body).ok()?));
    }
    Some(fields)
}

/// Why relaying stopped.
pub enum RelayEnd {
    Upstream(io::Error),
    Untracked,
}

pub struct Relay {
    upstream: UpstreamRead,
    client: ClientWrite,
    shared: Arc<Mutex<Shared>>,
    buf: BytesMut,
    out: BytesMut,
    /// Bytes of a large message still to pass through unread.
    passthrough: usize,
    /// Bytes of a large error or notice still to drop: the client got it cut short.
    discard: usize,
}

impl Relay {
    pub fn new(upstream: UpstreamRead, client: ClientWrite, shared: Arc<Mutex<Shared>>) -> Relay {
        Relay {
            upstream,
            client,
            shared,
            buf: BytesMut::with_capacity(16 * 1024),
            out: BytesMut::with_capacity(16 * 1024),
            passthrough: 0,
            discard: 0,
        }
    }

    pub fn into_parts(self) -> (UpstreamRead, ClientWrite) {
        (self.upstream, self.client)
    }

    /// Relays until upstream closes or fails, or its session state leaves what tablegate
    /// tracks (it never ends otherwise).
    pub async fn run(&mut self) -> RelayEnd {
        loop {
            match self.upstream.read_buf(&mut self.buf).await {
                Ok(0) => {
                    return RelayEnd::Upstream(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the database closed the connection",
                    ));
                }
                Ok(_) => {}
                Err(e) => return RelayEnd::Upstream(e),
            }
            let processed = self.process();
            self.shared.lock().expect("session state").offer_room();
            if let Err(e) = self.send_out().await {
                return RelayEnd::Upstream(e);
            }
            if let Err(Untracked) = processed {
                return RelayEnd::Untracked;
            }
        }
    }

    /// Sends what [`Relay::process`] produced. Safe to cancel at any await: `out` holds
    /// exactly what the client has not been sent, so the stream's framing stays known.
    async fn send_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        while !self.out.is_empty() {
            let written = self.client.write(&self.out).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.out.advance(written);
        }
        self.client.flush().await
    }

    /// Once the session's end is decided: relays the answers upstream still owes for messages
    /// the client sent before the one that ended it, so the client reads them before the
    /// FATAL, in the order PostgreSQL would have sent them. Gives up at `deadline` (a long
    /// statement, a client that does not read). Returns whether the client's stream ends on a
    /// message boundary, where a FATAL may follow.
    pub async fn deliver_owed(&mut self, deadline: tokio::time::Instant) -> bool {
        let _ = tokio::time::timeout_at(deadline, async {
            // Ends when the client cannot be written to, nothing more is owed, or upstream
            // fails: only the first two leave the client's stream mid-message.
            while self.send_out().await.is_ok()
                && (self.passthrough > 0
                    || self.discard > 0
                    || !self.shared.lock().expect("session state").is_quiet())
                && matches!(self.upstream.read_buf(&mut self.buf).await, Ok(n) if n > 0)
                && self.process().is_ok()
            {}
        })
        .await;
        self.out.is_empty() && self.passthrough == 0
    }

    /// Turns what upstream sent into what the client is sent, up to where upstream's session
    /// state leaves what tablegate tracks, if it does: nothing from there on reaches the client.
    fn process(&mut self) -> Result<(), Untracked> {
        let mut shared = self.shared.lock().expect("session state");
        loop {
            if self.passthrough > 0 {
                let take = self.passthrough.min(self.buf.len());
                self.out.extend_from_slice(&self.buf.split_to(take));
                self.passthrough -= take;
                if self.passthrough > 0 {
                    return Ok(());
                }
                continue;
            }
            if self.discard > 0 {
                let take = self.discard.min(self.buf.len());
                self.buf.advance(take);
                self.discard -= take;
                if self.discard > 0 {
                    return Ok(());
                }
                continue;
            }
            // Only between messages: inside a streamed one, a NOTICE would corrupt it.
            for notice in shared.notices.drain(..) {
                Report {
                    severity: "NOTICE",
                    code: "01000",
                    message: &notice,
                    detail: None,
                    hint: None,
                }
                .notice(&mut self.out);
            }
            if self.buf.len() < 5 {
                return Ok(());
            }
            let tag = self.buf[0];
            let total =
                u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize + 1;
            let message = if self.buf.len() >= total {
                self.buf.split_to(total)
            } else if total > STREAM_ABOVE && matches!(tag, b'D' | b'd' | b'T' | b'A') {
                match tag {
                    b'D' => shared.on_row(),
                    b'T' => shared.on_description(),
                    _ => {}
                }
                self.passthrough = total - self.buf.len();
                self.out.extend_from_slice(&self.buf.split());
                return Ok(());
            } else if matches!(tag, b'E' | b'N') && self.buf.len() >= STREAM_ABOVE {
                // `repeat('x', 200000000)::int` quotes its 200 MB input: held whole (and written
                // to the audit log), a few such errors would exhaust memory (found by red-team
                // review).
                let kept = self.buf.split_to(STREAM_ABOVE);
                self.discard = total - STREAM_ABOVE;
                cut_short(&kept)
            } else {
                return Ok(());
            };
            match tag {
                b'D' => {
                    shared.on_row();
                    self.out.extend_from_slice(&message);
                }
                b'T' | b'n' => {
                    shared.on_description();
                    self.out.extend_from_slice(&message);
                }
                b'1' | b'2' | b'3' => {
                    if let Some(shown) = shared.on_prepared(tag, message) {
                        self.out.extend_from_slice(&shown);
                    }
                }
                b'C' | b'I' | b's' => {
                    shared.on_completion()?;
                    self.out.extend_from_slice(&message);
                }
                b'E' => {
                    let replaced = shared.on_error(message);
                    self.out.extend_from_slice(&replaced);
                }
                b'Z' => {
                    shared.on_ready(message.get(5).copied().unwrap_or(b'I'))?;
                    self.out.extend_from_slice(&message);
                }
                b'S' => {
                    // The upstream login is the service account: never report who it is.
                    let name = message
                        .get(5..)
                        .and_then(|b| b.split(|&c| c == 0).next())
                        .unwrap_or(b"");
                    if name != b"session_authorization" && name != b"is_superuser" {
                        self.out.extend_from_slice(&message);
                    }
                }
                _ => self.out.extend_from_slice(&message),
            }
        }
    }
}
