//! Upstream responses back to the client, as bytes.
//!
//! Rows and row descriptions are never decoded: the relay reads message headers only, to know
//! where each message ends, to count rows, and to act on the few messages it must:
//! ReadyForQuery (the transaction status), completions (audit), ParameterStatus (the service
//! account's identity is not reported), and ErrorResponse — the refusal marker's error is
//! replaced by the refusal, and positions into rewritten text are dropped. Messages larger than
//! the buffer stream through without being held whole.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use pgwire::messages::response::ErrorResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::{ClientWrite, UpstreamRead};
use crate::audit::{self, Outcome, Subject};
use crate::metrics::ProxyMetrics;
use crate::refusal::Refusal;
use crate::wire::{self, Report, take_cstring};

/// Messages above this size are streamed rather than buffered whole.
const STREAM_ABOVE: usize = 64 * 1024;

/// A statement upstream is running for the client.
pub struct Run {
    sql: Arc<str>,
    forwarded: Arc<str>,
    rewritten: bool,
    /// When the client's message arrived (audit duration: rewrite and upstream).
    started: Instant,
    /// When the statement was queued for upstream (upstream latency).
    sent: Instant,
    rows: u64,
    error: Option<String>,
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
    /// itself (re-preparing a statement after a policy change).
    Parsed { own: bool },
    /// A Close: ends with CloseComplete, likewise.
    Closed { own: bool },
}

impl Item {
    pub fn query(sql: String, forwarded: String, rewritten: bool, started: Instant) -> Item {
        Item::Query(Run {
            sql: Arc::from(sql),
            forwarded: Arc::from(forwarded),
            rewritten,
            started,
            sent: Instant::now(),
            rows: 0,
            error: None,
        })
    }

    pub fn execute(statement: Option<(Arc<str>, Arc<str>)>) -> Item {
        let (sql, forwarded) = statement.unwrap_or_else(|| (Arc::from(""), Arc::from("")));
        let now = Instant::now();
        Item::Execute(Run {
            rewritten: sql != forwarded,
            sql,
            forwarded,
            started: now,
            sent: now,
            rows: 0,
            error: None,
        })
    }
}

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
        }
    }

    pub fn push(&mut self, item: Item) {
        self.items.push_back(item);
        self.unsent += 1;
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

    fn current_run(&mut self) -> Option<&mut Run> {
        match self.items.front_mut() {
            Some(Item::Query(run) | Item::Execute(run)) => Some(run),
            _ => None,
        }
    }

    fn finish(&self, run: Run) {
        self.metrics
            .finished(run.error.is_some(), run.sent.elapsed());
        let outcome = match &run.error {
            None => Outcome::Ok { rows: run.rows },
            Some(message) => Outcome::Error { message },
        };
        audit::record(
            &self.subject,
            &run.sql,
            Some(&run.forwarded),
            outcome,
            run.started.elapsed(),
        );
    }

    fn on_row(&mut self) {
        if let Some(run) = self.current_run() {
            run.rows += 1;
        }
    }

    /// A ParseComplete or CloseComplete: whether the client should see it.
    fn on_prepared(&mut self, tag: u8) -> bool {
        match (self.items.front(), tag) {
            (Some(Item::Parsed { own }), b'1') | (Some(Item::Closed { own }), b'3') => {
                let own = *own;
                self.items.pop_front();
                !own
            }
            _ => true,
        }
    }

    fn on_completion(&mut self) {
        if matches!(self.items.front(), Some(Item::Execute(_)))
            && let Some(Item::Execute(run)) = self.items.pop_front()
        {
            self.finish(run);
        }
    }

    /// An ErrorResponse: the bytes to send instead (the same bytes, or a rewritten message).
    fn on_error(&mut self, message: BytesMut) -> BytesMut {
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
                    Item::Query(run) | Item::Execute(run) => self.finish(run),
                    Item::Sync | Item::Parsed { .. } | Item::Closed { .. } => {}
                }
            }
            return message;
        }
        let rewritten = match self.items.front_mut() {
            Some(Item::Query(run)) => {
                run.error.get_or_insert_with(|| text.to_owned());
                run.rewritten
            }
            _ => true,
        };
        match self.items.front() {
            Some(Item::Execute(_)) => {
                if let Some(Item::Execute(mut run)) = self.items.pop_front() {
                    run.error = Some(text.to_owned());
                    self.finish(run);
                }
            }
            // The Parse or Close failed; upstream now skips to Sync.
            Some(Item::Parsed { .. } | Item::Closed { .. }) => {
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

    fn on_ready(&mut self, status: u8) {
        self.transaction_status = status;
        while let Some(item) = self.items.pop_front() {
            match item {
                Item::Query(run) => {
                    self.finish(run);
                    return;
                }
                Item::Sync => return,
                Item::Execute(mut run) => {
                    run.error.get_or_insert_with(|| {
                        "not executed: an earlier message in the pipeline failed".into()
                    });
                    self.finish(run);
                }
                Item::Refused(_) | Item::Parsed { .. } | Item::Closed { .. } => {}
            }
        }
    }
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

pub struct Relay {
    upstream: UpstreamRead,
    client: ClientWrite,
    shared: Arc<Mutex<Shared>>,
    buf: BytesMut,
    out: BytesMut,
    /// Bytes of a large message still to pass through unread.
    passthrough: usize,
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
        }
    }

    pub fn into_parts(self) -> (UpstreamRead, ClientWrite) {
        (self.upstream, self.client)
    }

    /// Relays until upstream closes or fails (it never ends otherwise).
    pub async fn run(&mut self) -> io::Error {
        loop {
            match self.upstream.read_buf(&mut self.buf).await {
                Ok(0) => {
                    return io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the database closed the connection",
                    );
                }
                Ok(_) => {}
                Err(e) => return e,
            }
            self.process();
            if let Err(e) = self.send_out().await {
                return e;
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
                && (self.passthrough > 0 || !self.shared.lock().expect("session state").is_quiet())
                && matches!(self.upstream.read_buf(&mut self.buf).await, Ok(n) if n > 0)
            {
                self.process();
            }
        })
        .await;
        self.out.is_empty() && self.passthrough == 0
    }

    fn process(&mut self) {
        let mut shared = self.shared.lock().expect("session state");
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
        loop {
            if self.passthrough > 0 {
                let take = self.passthrough.min(self.buf.len());
                self.out.extend_from_slice(&self.buf.split_to(take));
                self.passthrough -= take;
                if self.passthrough > 0 {
                    return;
                }
                continue;
            }
            if self.buf.len() < 5 {
                return;
            }
            let tag = self.buf[0];
            let total =
                u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize + 1;
            if self.buf.len() < total {
                if total > STREAM_ABOVE && matches!(tag, b'D' | b'd' | b'T' | b'A') {
                    if tag == b'D' {
                        shared.on_row();
                    }
                    self.passthrough = total - self.buf.len();
                    self.out.extend_from_slice(&self.buf.split());
                }
                return;
            }
            let message = self.buf.split_to(total);
            match tag {
                b'D' => {
                    shared.on_row();
                    self.out.extend_from_slice(&message);
                }
                b'1' | b'3' => {
                    if shared.on_prepared(tag) {
                        self.out.extend_from_slice(&message);
                    }
                }
                b'C' | b'I' | b's' => {
                    shared.on_completion();
                    self.out.extend_from_slice(&message);
                }
                b'E' => {
                    let replaced = shared.on_error(message);
                    self.out.extend_from_slice(&replaced);
                }
                b'Z' => {
                    shared.on_ready(message.get(5).copied().unwrap_or(b'I'));
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
