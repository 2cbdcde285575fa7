//! PostgreSQL wire-protocol framing shared by the client and upstream sides.
//!
//! Messages are a type byte, a big-endian length that counts itself, and a body. tablegate
//! decodes only what it must act on (startup, authentication, queries, and the few response
//! types it watches); everything else moves as bytes. Messages tablegate writes itself are
//! encoded with pgwire's message types.

use std::io;

use bytes::{Buf, BytesMut};
use pgwire::messages::Message;
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// No client message tablegate accepts is larger (PostgreSQL's own limit is 1 GB).
pub const MAX_MESSAGE_LENGTH: usize = 1 << 30;

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
        }
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
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
                return Ok(Some(frame));
            }
            if self.cutting.is_some() {
                // Dropped as it arrives: read in chunks, not 64 bytes at a time.
                self.buf.reserve(DROP_CHUNK);
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
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
        let len = u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize;
        if !(4..=self.limit).contains(&len) {
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
    async fn a_stream_that_ends_inside_a_message_being_cut_is_an_error() {
        let mut reader = FrameReader::new();
        reader.limit_body(b'P', 10);
        let stream = message(b'P', &[b'z'; 100]);
        let mut stream = &stream[..50];
        assert!(reader.next(&mut stream).await.is_err());
    }
}
