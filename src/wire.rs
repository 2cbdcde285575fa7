//! PostgreSQL wire-protocol framing shared by the client and upstream sides.
//!
//! Messages are a type byte, a big-endian length that counts itself, and a body. tablegate
//! decodes only what it must act on (startup, authentication, queries, and the few response
//! types it watches); everything else moves as bytes. Messages tablegate writes itself are
//! encoded with pgwire's message types.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pgwire::messages::Message;
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// No client message tablegate accepts is larger (PostgreSQL's own limit is 1 GB).
pub const MAX_MESSAGE_LENGTH: usize = 1 << 30;

/// The client message types PostgreSQL reads up to its 1 GB limit (Bind, FunctionCall, Parse,
/// Query, CopyData); every other type is at most [`MAX_SMALL_MESSAGE_LENGTH`] bytes long.
const LARGE_MESSAGE_TYPES: &[u8] = b"BFPQd";

/// PostgreSQL's `PQ_SMALL_MESSAGE_LIMIT`: what a Sync, Execute, Describe or Close can need.
const MAX_SMALL_MESSAGE_LENGTH: usize = 10_000;

/// How long a client has to send the rest of a message that claimed room in a
/// [`MessageBudget`].
const LARGE_MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Before authentication, no message is larger (PostgreSQL's limit for authentication tokens):
/// a stranger must not make tablegate hold a gigabyte.
pub const MAX_AUTHENTICATION_MESSAGE_LENGTH: usize = 65_535;

/// The buffer grows by at most this much ahead of the bytes that actually arrive, whatever
/// length a message announces.
const GROWTH: usize = 1 << 20;

/// Of a message whose body passed its type's limit ([`FrameReader::limit_body`]), the most
/// kept: the rest is read and dropped as it arrives.
pub const KEPT_OF_CUT: usize = 64 * 1024;

/// The buffer's size, and what it shrinks back to after a large message.
const USUAL_CAPACITY: usize = 8192;

/// How much of a message being dropped is read at once.
const DROP_CHUNK: usize = 64 * 1024;

/// One message: its type byte and body (length header removed).
#[derive(Debug)]
pub struct Frame {
    pub tag: u8,
    pub body: BytesMut,
    /// `Some(length)`: the body announced `length` bytes, more than its type's limit; `body`
    /// holds only its first [`KEPT_OF_CUT`] bytes.
    pub cut: Option<usize>,
}

/// Reads whole messages from a stream through a reusable buffer.
pub struct FrameReader {
    buf: BytesMut,
    /// The largest message accepted.
    limit: usize,
    /// Message types whose body may be at most so long: a longer one is not held, but
    /// returned cut (the client gets an answer, the stream stays in step).
    body_limits: Vec<(u8, usize)>,
    /// A message past its body limit, being read and dropped.
    cutting: Option<Cutting>,
    /// The largest message of a type outside [`LARGE_MESSAGE_TYPES`], if less than `limit`.
    small_limit: usize,
    /// Room for large messages, shared with other readers.
    budget: Option<MessageBudget>,
    /// The room the message being read holds in `budget`, and when it must be whole.
    claim: Option<(OwnedSemaphorePermit, Instant)>,
}

/// Bytes of large messages that readers sharing it may hold at once: a message longer than the
/// buffer's growth step claims room for its whole length from its header, waits while there is
/// none, and must then arrive whole within [`LARGE_MESSAGE_TIMEOUT`]. Found by red-team review:
/// clients that announced gigabyte messages and sent them all but their last byte made
/// tablegate hold every byte for as long as they liked.
#[derive(Clone)]
pub struct MessageBudget {
    room: Arc<Semaphore>,
    capacity: usize,
}

impl MessageBudget {
    pub fn new(capacity: usize) -> MessageBudget {
        MessageBudget {
            room: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }
}

struct Cutting {
    tag: u8,
    kept: BytesMut,
    length: usize,
    /// Bytes of the body still to drop.
    remaining: usize,
}

impl Default for FrameReader {
    fn default() -> FrameReader {
        FrameReader::with_limit(MAX_MESSAGE_LENGTH)
    }
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    pub fn with_limit(limit: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::with_capacity(USUAL_CAPACITY),
            limit,
            body_limits: Vec::new(),
            cutting: None,
            small_limit: usize::MAX,
            budget: None,
            claim: None,
        }
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Messages of types PostgreSQL keeps small are at most [`MAX_SMALL_MESSAGE_LENGTH`] bytes
    /// long, as PostgreSQL reads a client's: an announced length past it is a protocol
    /// violation.
    pub fn limit_small_messages(&mut self) {
        self.small_limit = MAX_SMALL_MESSAGE_LENGTH;
    }

    /// Large messages claim room in `budget` before they are read (see [`MessageBudget`]); none
    /// that would be held may be longer than all of it (one cut is never held).
    pub fn share_budget(&mut self, budget: MessageBudget) {
        self.budget = Some(budget);
    }

    /// Messages of type `tag` whose body announces more than `limit` bytes are read without
    /// being held: [`FrameReader::next`] returns them cut ([`Frame::cut`]), decided from the
    /// header, whatever length (within the message limit) they announce.
    pub fn limit_body(&mut self, tag: u8, limit: usize) {
        self.body_limits.retain(|&(t, _)| t != tag);
        self.body_limits.push((tag, limit));
    }

    /// The next message, or `None` at a clean end of stream.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.split_frame()? {
                self.claim = None;
                return Ok(Some(frame));
            }
            if self.cutting.is_some() {
                // Dropped as it arrives: read in chunks, not 64 bytes at a time.
                self.buf.reserve(DROP_CHUNK);
            } else if self.claim.is_none()
                && let Some(budget) = &self.budget
                && let Some(length) = self.announced_length()
                && length > GROWTH
            {
                let room = u32::try_from(length).expect("within the budget's capacity");
                let permit = Arc::clone(&budget.room)
                    .acquire_many_owned(room)
                    .await
                    .expect("the budget's semaphore is never closed");
                self.claim = Some((permit, Instant::now() + LARGE_MESSAGE_TIMEOUT));
            }
            let read = stream.read_buf(&mut self.buf);
            let read = match &self.claim {
                Some((_, deadline)) => tokio::time::timeout_at(*deadline, read)
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "a message of more than {GROWTH} bytes was not sent whole within {} s",
                                LARGE_MESSAGE_TIMEOUT.as_secs()
                            ),
                        )
                    })?,
                None => read.await,
            };
            if read? == 0 {
                return if self.buf.is_empty() && self.cutting.is_none() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed mid-message",
                    ))
                };
            }
        }
    }

    /// Reads the untyped startup-phase packet (SSLRequest, StartupMessage, CancelRequest).
    pub async fn next_startup<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> io::Result<Option<BytesMut>> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
                if !(8..=10_000).contains(&len) {
                    return Err(invalid("invalid startup packet length"));
                }
                if self.buf.len() >= len {
                    let mut packet = self.buf.split_to(len);
                    packet.advance(4);
                    return Ok(Some(packet));
                }
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The length, counting itself, that the message at the start of the buffer announces.
    fn announced_length(&self) -> Option<usize> {
        let header = self.buf.get(1..5)?;
        Some(u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize)
    }

    fn split_frame(&mut self) -> io::Result<Option<Frame>> {
        if let Some(cutting) = &mut self.cutting {
            let take = cutting.remaining.min(self.buf.len());
            let dropped = self.buf.split_to(take);
            let room = KEPT_OF_CUT - cutting.kept.len();
            cutting.kept.extend_from_slice(&dropped[..take.min(room)]);
            cutting.remaining -= take;
            if cutting.remaining > 0 {
                return Ok(None);
            }
            let Cutting {
                tag, kept, length, ..
            } = self.cutting.take().expect("a message being cut");
            return Ok(Some(Frame {
                tag,
                body: kept,
                cut: Some(length),
            }));
        }
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let tag = self.buf[0];
        let len = self.announced_length().expect("a whole header");
        let limit = if LARGE_MESSAGE_TYPES.contains(&tag) {
            self.limit
        } else {
            self.small_limit.min(self.limit)
        };
        if !(4..=limit).contains(&len) {
            return Err(invalid("invalid message length"));
        }
        if self
            .body_limits
            .iter()
            .any(|&(t, limit)| t == tag && len - 4 > limit)
        {
            self.buf.advance(5);
            self.cutting = Some(Cutting {
                tag,
                kept: BytesMut::with_capacity(KEPT_OF_CUT),
                length: len - 4,
                remaining: len - 4,
            });
            return self.split_frame();
        }
        if let Some(budget) = &self.budget
            && len > budget.capacity
        {
            return Err(invalid(&format!(
                "a message of {len} bytes is longer than the {} bytes tablegate holds at once",
                budget.capacity
            )));
        }
        if self.buf.len() < len + 1 {
            self.buf.reserve((len + 1 - self.buf.len()).min(GROWTH));
            return Ok(None);
        }
        let mut frame = self.buf.split_to(len + 1);
        if len >= GROWTH {
            // The rest shares the large message's allocation, which would outlive it: copy the
            // few bytes that follow it into a buffer of the usual size.
            let mut rest = BytesMut::with_capacity(USUAL_CAPACITY.max(self.buf.len()));
            rest.extend_from_slice(&self.buf);
            self.buf = rest;
        }
        let tag = frame[0];
        frame.advance(5);
        Ok(Some(Frame {
            tag,
            body: frame,
            cut: None,
        }))
    }

    /// Bytes read but not yet returned as messages (a client may pipeline).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty() || self.cutting.is_some()
    }

    /// Gives up the buffer, e.g. to hand buffered bytes to a TLS layer (never needed for
    /// plain text: a client must wait for the SSLRequest answer before sending more).
    pub fn into_buffered(self) -> BytesMut {
        self.buf
    }
}

/// Writes `bytes` and flushes them. Over TLS a write can leave bytes queued in the session when
/// the socket is not yet writable, and nothing sends them until a flush: the peer would wait
/// for the end of a message forever. Every message tablegate sends goes through here.
pub async fn send<W: AsyncWrite + Unpin + ?Sized>(stream: &mut W, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

pub fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// Reads a NUL-terminated string from the front of `buf`.
pub fn take_cstring(buf: &mut BytesMut) -> io::Result<String> {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| invalid("unterminated string in message"))?;
    let s = std::str::from_utf8(&buf[..end])
        .map_err(|_| invalid("message text is not UTF-8"))?
        .to_owned();
    buf.advance(end + 1);
    Ok(s)
}

pub fn encode(message: &impl Message, out: &mut BytesMut) {
    message
        .encode(out)
        .expect("encoding a well-formed message into memory cannot fail");
}

/// Fields of an ErrorResponse or NoticeResponse, as PostgreSQL names them.
pub struct Report<'a> {
    pub severity: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub hint: Option<&'a str>,
}

impl Report<'_> {
    fn fields(&self) -> Vec<(u8, String)> {
        let mut fields = vec![
            (b'S', self.severity.to_owned()),
            (b'V', self.severity.to_owned()),
            (b'C', self.code.to_owned()),
            (b'M', self.message.to_owned()),
        ];
        if let Some(d) = self.detail {
            fields.push((b'D', d.to_owned()));
        }
        if let Some(h) = self.hint {
            fields.push((b'H', h.to_owned()));
        }
        fields
    }

    pub fn error(&self, out: &mut BytesMut) {
        encode(&ErrorResponse::new(self.fields()), out);
    }

    pub fn notice(&self, out: &mut BytesMut) {
        encode(&NoticeResponse::new(self.fields()), out);
    }
}

pub fn ready_for_query(status: u8, out: &mut BytesMut) {
    let status = match status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    encode(&ReadyForQuery::new(status), out);
}

/// Appends a message with a type byte and body.
pub fn put_message(tag: u8, body: &[u8], out: &mut BytesMut) {
    out.reserve(5 + body.len());
    out.extend_from_slice(&[tag]);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// A simple Query message for `sql`.
pub fn query(sql: &str, out: &mut BytesMut) {
    out.reserve(6 + sql.len());
    out.extend_from_slice(b"Q");
    out.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.extend_from_slice(&[0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_message(tag, body, &mut out);
        out.to_vec()
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_dropped_as_it_arrives_and_the_stream_stays_in_step() {
        let mut reader = FrameReader::new();
        reader.limit_body(b'Q', 1 << 20);
        let mut stream = message(b'Q', &vec![b'x'; 3 << 20]);
        stream.extend(message(b'B', &vec![b'y'; 2 << 20]));
        stream.extend(message(b'Q', b"SELECT 1\0"));
        let mut stream = &stream[..];
        let cut = reader.next(&mut stream).await.unwrap().unwrap();
        assert_eq!(
            (cut.tag, cut.cut, cut.body.len()),
            (b'Q', Some(3 << 20), KEPT_OF_CUT)
        );
        assert!(
            reader.buf.capacity() <= 2 * DROP_CHUNK,
            "never held: {}",
            reader.buf.capacity()
        );
        let bind = reader.next(&mut stream).await.unwrap().unwrap();
        assert_eq!((bind.tag, bind.cut, bind.body.len()), (b'B', None, 2 << 20));
        drop(bind);
        let query = reader.next(&mut stream).await.unwrap().unwrap();
        assert_eq!(
            (query.tag, query.cut, &query.body[..]),
            (b'Q', None, &b"SELECT 1\0"[..])
        );
        assert!(
            reader.buf.capacity() < 1 << 20,
            "a large message's buffer does not outlive it: {}",
            reader.buf.capacity()
        );
        assert!(reader.next(&mut stream).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn messages_postgres_keeps_small_are_small() {
        let mut reader = FrameReader::new();
        reader.limit_small_messages();
        let mut stream = message(b'B', &[b'x'; 20_000]);
        stream.extend(message(b'E', &[b'x'; 20_000]));
        let mut stream = &stream[..];
        let bind = reader.next(&mut stream).await.unwrap().unwrap();
        assert_eq!((bind.tag, bind.body.len()), (b'B', 20_000));
        let execute = reader.next(&mut stream).await.unwrap_err();
        assert_eq!(execute.to_string(), "invalid message length");
    }

    #[tokio::test(start_paused = true)]
    async fn large_messages_wait_for_room_and_must_arrive_whole_in_time() {
        let budget = MessageBudget::new(3 << 20);
        let bind = message(b'B', &vec![b'y'; 2 << 20]);
        let read = |budget: &MessageBudget, mut stream: tokio::io::DuplexStream| {
            let mut reader = FrameReader::new();
            reader.share_budget(budget.clone());
            tokio::spawn(async move {
                let frame = reader.next(&mut stream).await?;
                Ok::<_, io::Error>(frame.map(|f| f.body.len()))
            })
        };
        // The first client sends all of its message but the last byte, and stalls.
        let (mut stalling, stream) = tokio::io::duplex(4 << 20);
        stalling.write_all(&bind[..bind.len() - 1]).await.unwrap();
        let stalled = read(&budget, stream);
        // The second's message waits for the room the first holds...
        let (mut second, stream) = tokio::io::duplex(4 << 20);
        second.write_all(&bind).await.unwrap();
        let waiting = read(&budget, stream);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiting.is_finished(), "read while the room was held");
        // ...until the first has had its time.
        let error = stalled.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert_eq!(waiting.await.unwrap().unwrap(), Some(2 << 20));
        // No message may be longer than all the room there is.
        let (mut third, stream) = tokio::io::duplex(64);
        third
            .write_all(&message(b'B', &vec![b'z'; 3 << 20])[..5])
            .await
            .unwrap();
        let error = read(&budget, stream).await.unwrap().unwrap_err();
        assert!(
            error.to_string().contains("longer than the 3145728 bytes"),
            "{error}"
        );
        drop((stalling, second, third));
    }

    #[tokio::test]
    async fn a_stream_that_ends_inside_a_message_being_cut_is_an_error() {
        let mut reader = FrameReader::new();
        reader.limit_body(b'P', 10);
        let stream = message(b'P', &[b'z'; 100]);
        let mut stream = &stream[..50];
        assert!(reader.next(&mut stream).await.is_err());
    }
}
