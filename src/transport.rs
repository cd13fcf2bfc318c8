//! The transports the server accepts and the client connects over: TCP, TLS over TCP, and
//! Unix domain sockets, and HTTP/2 streams, each as one enum that is `AsyncRead + AsyncWrite`.

use tokio::net::TcpStream;

/// Implements `AsyncRead` and `AsyncWrite` for a transport enum with the variants `Plain`,
/// `Tls` (feature `tls`), `Unix` (Unix only) and `Http2` (feature `http2`) by forwarding to the variant's stream.
macro_rules! forward_io {
    ($name:ident) => {
        impl $name {
            fn project(
                self: std::pin::Pin<&mut Self>,
            ) -> std::pin::Pin<&mut dyn crate::transport::AsyncIo> {
                match self.get_mut() {
                    $name::Plain(s) => std::pin::Pin::new(s),
                    #[cfg(feature = "tls")]
                    $name::Tls(s) => std::pin::Pin::new(&mut **s),
                    #[cfg(unix)]
                    $name::Unix(s) => std::pin::Pin::new(s),
                    #[cfg(feature = "http2")]
                    $name::Http2(s) => std::pin::Pin::new(&mut **s),
                }
            }

            fn inner(&self) -> &dyn crate::transport::AsyncIo {
                match self {
                    $name::Plain(s) => s,
                    #[cfg(feature = "tls")]
                    $name::Tls(s) => &**s,
                    #[cfg(unix)]
                    $name::Unix(s) => s,
                    #[cfg(feature = "http2")]
                    $name::Http2(s) => &**s,
                }
            }
        }

        impl tokio::io::AsyncRead for $name {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.project().poll_read(cx, buf)
            }
        }

        impl tokio::io::AsyncWrite for $name {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.project().poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.project().poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner().is_write_vectored()
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.project().poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.project().poll_shutdown(cx)
            }
        }
    };
}

/// What the forwarding needs of a variant's stream.
pub(crate) trait AsyncIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> AsyncIo for T {}

/// A client's transport: what `ws://`, `wss://` and `ws+unix:` URLs connect over.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStream {
    /// Plain TCP (`ws://`), possibly a proxy tunnel.
    Plain(TcpStream),
    /// TLS over TCP (`wss://`), possibly inside a proxy tunnel.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A Unix domain socket (`ws+unix:`).
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    /// A stream of an HTTP/2 connection (RFC 8441), shared with other WebSockets to the same
    /// origin ([`ClientBuilder::http2`](crate::ClientBuilder::http2)).
    #[cfg(feature = "http2")]
    Http2(Box<crate::http2::Http2Stream>),
}

forward_io!(ClientStream);

// The TLS and HTTP/2 variants are boxed: the enum is in every connection's state, and plain
// TCP (the common case) is a few words.

/// A server's transport: a TCP connection, TLS over it (with
/// [`ServerBuilder::tls`](crate::server::ServerBuilder::tls)), or a Unix domain socket (with
/// [`ServerBuilder::bind_unix`](crate::server::ServerBuilder::bind_unix)).
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::ServerTlsStream<TcpStream>>),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    /// A stream of an HTTP/2 connection, opened by an extended CONNECT (RFC 8441).
    #[cfg(feature = "http2")]
    Http2(Box<crate::http2::Http2Stream>),
}

forward_io!(ServerStream);
