//! The client-to-upstream half of a session: reads client messages, rewrites every statement
//! (simple Query and Parse) and sends the result upstream, or a refusal marker in its place.
//!
//! Besides forwarding, it keeps the session's record of the client's prepared statements and
//! portals, and tells the [`relay`](super::relay) through [`Shared`] what upstream will answer,
//! in order. A message upstream would skip (after an error, until Sync) is dropped here too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

use super::Fatal;
use super::relay::{Closing, Forwarded, Item, MAX_QUEUED, Shared, Unapplied};
use super::session::{Batch, Session, Statement};
use super::stream::{ClientRead, UpstreamWrite};
use crate::audit::{self, Outcome};
use crate::refusal::Refusal;
use crate::rewrite::{Deallocation, MAX_STATEMENT_BYTES};
use crate::wire::{self, Frame, FrameReader, take_cstring};

/// How a session's two halves ended: the first to finish decides.
pub(super) enum Ending {
    Client(Result<(), Fatal>),
    Upstream(std::io::Error),
    /// See [`RelayEnd::Untracked`](super::relay::RelayEnd::Untracked).
    Untracked,
}

/// Messages for upstream are written at Query, Sync and Flush, or once they pass this size:
/// PostgreSQL reads a pipeline as it comes, and TCP's backpressure then bounds what waits.
const SEND_ABOVE: usize = 64 * 1024;

pub(super) struct Forwarder<'s> {
    pub(super) session: &'s mut Session,
    pub(super) client: ClientRead,
    pub(super) upstream: UpstreamWrite,
    /// Messages for upstream, written at Query, Sync and Flush, or past [`SEND_ABOVE`].
    pub(super) out: BytesMut,
    pub(super) shared: Arc<Mutex<Shared>>,
}

impl Forwarder<'_> {
    pub(super) async fn run(
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
                if self.session.batch.effect && frame.tag != b'C' {
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
                if self.session.effect_unsettled && !self.session.batch.effect {
                    self.settle_effect().await;
                }
                if !self.session.batch.undone && matches!(frame.tag, b'P' | b'B' | b'D' | b'C') {
                    self.undo_unapplied().await;
                    self.session.batch.undone = true;
                }
            }
            if !self.skipping()
                && named_objects(frame.tag, &frame.body).any(|name| name.len() > MAX_NAME_BYTES)
            {
                self.session.batch.open = true;
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
                b'Q' | b'F' if self.session.batch.open => {
                    self.drain_to(0).await?;
                    if !self.skipping() {
                        return Err(Fatal::protocol(
                            "a simple Query or FunctionCall inside an unfinished extended-protocol batch is not supported: send Sync first",
                        ));
                    }
                }
                b'Q' => {
                    self.session.batch.portals.clear();
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
                    self.session.batch.open = true;
                    match frame.cut {
                        Some(length) if !self.skipping() => self.refuse_cut(&frame, length),
                        Some(_) => {}
                        None => self.parse(frame.body)?,
                    }
                }
                b'B' => {
                    self.session.recheck_user().await?;
                    self.session.batch.open = true;
                    let mut body = frame.body.clone();
                    let portal = take_cstring(&mut body).map_err(Fatal::read)?;
                    let statement = take_cstring(&mut body).map_err(Fatal::read)?;
                    self.refresh_statement(&statement);
                    if !self.skipping() {
                        match self.session.statements.get(&statement) {
                            Some(s) => self
                                .session
                                .batch
                                .portals
                                .insert(portal.clone(), s.text.clone()),
                            None => self.session.batch.portals.remove(&portal),
                        };
                        self.push(Item::Bound { portal, statement });
                        wire::put_message(b'B', &frame.body, &mut self.out);
                    }
                }
                b'E' => {
                    // A suspended portal is fetched from by Execute alone.
                    self.session.recheck_user().await?;
                    self.session.batch.open = true;
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
                            self.session.batch.effect = true;
                            self.await_effect();
                        }
                        self.session.batch.executed = true;
                        self.push(Item::execute(portal, effect.is_some()));
                        wire::put_message(b'E', &frame.body, &mut self.out);
                    }
                }
                b'D' => {
                    self.session.batch.open = true;
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
                    self.session.batch.open = true;
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
                                self.session.batch.portals.remove(&name);
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
                    self.session.batch = Batch::default();
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
        self.session.batch.skipping
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
        let bound = match self.session.batch.portals.get(portal) {
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
            .rewrite(&statement.sql, &statement.param_types)
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
        if !self.session.batch.portals.contains_key(portal)
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
                    self.session.batch.skipping = true;
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
        let mut prepared = self.session.rewrite(&sql, &[]);
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
        self.session.batch.portals.remove("");
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
        if self.session.batch.executed {
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

    /// Refuses a Query or Parse the reader cut (see
    /// [`MAX_QUERY_BODY`](super::session::MAX_QUERY_BODY)) as the rewriter refuses a statement
    /// past [`MAX_STATEMENT_BYTES`], auditing the start of its text.
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
            .rewrite(&sql, &param_types)
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
        self.session.batch.skipping = true;
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
    for oid in declared_oids(param_types) {
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

/// The type OIDs a Parse declares: its parameter types as in the message (a count, then OIDs).
pub(super) fn declared_oids(param_types: &[u8]) -> impl Iterator<Item = u32> + '_ {
    param_types
        .get(2..)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
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
