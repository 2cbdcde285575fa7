//! Byte streams on both sides, and how they split so a session can read from the client while
//! it relays upstream responses.

use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::stream_enum::delegate_io;
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

delegate_io!(AsyncRead + AsyncWrite for ClientStream { Plain, Tls });

pub enum ClientRead {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<ClientStream>),
}

pub enum ClientWrite {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<ClientStream>),
}

delegate_io!(AsyncRead for ClientRead { Plain, Tls });
delegate_io!(AsyncWrite for ClientWrite { Plain, Tls });

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

delegate_io!(AsyncRead for UpstreamRead { Tcp, Tls, Unix });
delegate_io!(AsyncWrite for UpstreamWrite { Tcp, Tls, Unix });
