//! `AsyncRead` and `AsyncWrite` for enums of streams, every call passed to the variant's stream.
//!
//! The socket types on both sides are such enums (plain TCP, TLS, a Unix socket, and their split
//! halves); one macro writes their impls, so that adding a variant is one line.

/// `delegate_io!(AsyncRead + AsyncWrite for Enum { A, B })`, or either trait alone: each listed
/// variant holds one stream (boxed or not), and every poll goes to it.
macro_rules! delegate_io {
    (AsyncRead + AsyncWrite for $enum:ident { $($variant:ident),+ $(,)? }) => {
        $crate::stream_enum::delegate_io!(AsyncRead for $enum { $($variant),+ });
        $crate::stream_enum::delegate_io!(AsyncWrite for $enum { $($variant),+ });
    };
    (AsyncRead for $enum:ident { $($variant:ident),+ $(,)? }) => {
        impl ::tokio::io::AsyncRead for $enum {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $($enum::$variant(s) => {
                        ::tokio::io::AsyncRead::poll_read(::std::pin::Pin::new(s), cx, buf)
                    })+
                }
            }
        }
    };
    (AsyncWrite for $enum:ident { $($variant:ident),+ $(,)? }) => {
        impl ::tokio::io::AsyncWrite for $enum {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                match self.get_mut() {
                    $($enum::$variant(s) => {
                        ::tokio::io::AsyncWrite::poll_write(::std::pin::Pin::new(s), cx, buf)
                    })+
                }
            }
            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $($enum::$variant(s) => {
                        ::tokio::io::AsyncWrite::poll_flush(::std::pin::Pin::new(s), cx)
                    })+
                }
            }
            fn poll_shutdown(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $($enum::$variant(s) => {
                        ::tokio::io::AsyncWrite::poll_shutdown(::std::pin::Pin::new(s), cx)
                    })+
                }
            }
        }
    };
}

pub(crate) use delegate_io;
