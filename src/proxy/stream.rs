//! Byte streams on both sides, and how they split so a session can read from the client while
//! it relays upstream responses.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::upstream::connection::Stream;

/// A client's connection: plain TCP or TLS.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ClientStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }

    pub fn split(self) -> (ClientRead, ClientWrite) {
        match self {
            ClientStream::Plain(s) => {
                let (r, w) = s.into_split();
                (ClientRead::Plain(r), ClientWrite::Plain(w))
            }
            tls => {
                let (r, w) = tokio::io::split(tls);
                (ClientRead::Tls(r), ClientWrite::Tls(w))
            }
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

pub enum ClientRead {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<ClientStream>),
}

pub enum ClientWrite {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<ClientStream>),
}

impl AsyncRead for ClientRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientRead::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientRead::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientWrite::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientWrite::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientWrite::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientWrite::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

pub enum UpstreamRead {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<Stream>),
    Unix(tokio::net::unix::OwnedReadHalf),
}

pub enum UpstreamWrite {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<Stream>),
    Unix(tokio::net::unix::OwnedWriteHalf),
}

pub fn split_upstream(stream: Stream) -> (UpstreamRead, UpstreamWrite) {
    match stream {
        Stream::Tcp(s) => {
            let (r, w) = s.into_split();
            (UpstreamRead::Tcp(r), UpstreamWrite::Tcp(w))
        }
        Stream::Unix(s) => {
            let (r, w) = s.into_split();
            (UpstreamRead::Unix(r), UpstreamWrite::Unix(w))
        }
        tls => {
            let (r, w) = tokio::io::split(tls);
            (UpstreamRead::Tls(r), UpstreamWrite::Tls(w))
        }
    }
}

/// Puts the halves of an upstream connection back together (to return it to the pool).
pub fn reunite(read: UpstreamRead, write: UpstreamWrite) -> Option<Stream> {
    match (read, write) {
        (UpstreamRead::Tcp(r), UpstreamWrite::Tcp(w)) => r.reunite(w).ok().map(Stream::Tcp),
        (UpstreamRead::Unix(r), UpstreamWrite::Unix(w)) => r.reunite(w).ok().map(Stream::Unix),
        (UpstreamRead::Tls(r), UpstreamWrite::Tls(w)) => Some(r.unsplit(w)),
        _ => None,
    }
}

impl AsyncRead for UpstreamRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamRead::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamRead::Tls(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamRead::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamWrite::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamWrite::Tls(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamWrite::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamWrite::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamWrite::Tls(s) => Pin::new(s).poll_flush(cx),
            UpstreamWrite::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamWrite::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamWrite::Tls(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamWrite::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
