//! Client connections through proxies: HTTP `CONNECT` (RFC 9110 §9.3.6) with basic
//! authentication, and SOCKS5 (RFC 1928) with username/password (RFC 1929) and remote DNS.
//!
//! The tunnel is opened first; TLS for `wss://` then runs inside it, end to end with the
//! WebSocket server, so the proxy sees only the target's name and port.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::url::{basic_token, percent_decode_bytes};
use super::Dial;
use crate::config::HandshakeLimits;
use crate::error::{Error, ProxyFailure, Result};
use crate::handshake::head::{parse_response, HeadReader};

/// The protocol a proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy, asked to open a tunnel with `CONNECT`.
    Http,
    /// A SOCKS5 proxy; the target's host name is sent to it unresolved (remote DNS).
    Socks5,
}

/// A proxy for client connections ([`ClientBuilder::proxy`](super::ClientBuilder::proxy)).
///
/// ```
/// use enim_labore_occaecati::client::Proxy;
///
/// let proxy = Proxy::parse("socks5h://user:secret@127.0.0.1:1080").unwrap();
/// assert_eq!(proxy.address(), "127.0.0.1:1080");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("address", &self.address())
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

impl Proxy {
    /// An HTTP proxy at `host:port`.
    pub fn http(host: impl Into<String>, port: u16) -> Proxy {
        Proxy {
            kind: ProxyKind::Http,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// A SOCKS5 proxy at `host:port`.
    pub fn socks5(host: impl Into<String>, port: u16) -> Proxy {
        Proxy {
            kind: ProxyKind::Socks5,
            ..Proxy::http(host, port)
        }
    }

    /// A proxy from a URL: `http://[user:pass@]host[:port]` (default port 80),
    /// `socks5://` or `socks5h://` (default port 1080; both resolve names on the proxy). A
    /// bare `host:port` is taken as an HTTP proxy, as curl does.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for another scheme or a
    /// malformed URL.
    pub fn parse(url: &str) -> Result<Proxy> {
        let invalid = || Error::invalid_input(format!("invalid proxy URL: {url:?}"));
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_owned(), url),
        };
        let (kind, default_port) = match scheme.as_str() {
            "http" => (ProxyKind::Http, 80),
            "socks5" | "socks5h" => (ProxyKind::Socks5, 1080),
            _ => {
                return Err(Error::invalid_input(format!(
                    "unsupported proxy scheme {scheme:?} (http, socks5 or socks5h)"
                )))
            }
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let uri: http::uri::Authority = hostport.parse().map_err(|_| invalid())?;
        let host = uri.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid());
        }
        let mut proxy = Proxy {
            kind,
            host: host.to_owned(),
            port: uri.port_u16().unwrap_or(default_port),
            credentials: None,
        };
        if let Some(userinfo) = userinfo {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            proxy.credentials = Some((percent_decode(user), percent_decode(pass)));
        }
        Ok(proxy)
    }

    /// Authenticates with a username and password (HTTP basic authentication, or RFC 1929
    /// for SOCKS5).
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Proxy {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// The protocol this proxy speaks.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's `host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Connects to the proxy (with the client's local address and address family, `dial`)
    /// and opens a tunnel to `host:port`.
    pub(crate) async fn connect(
        &self,
        host: &str,
        port: u16,
        limits: &HandshakeLimits,
        dial: &Dial,
    ) -> Result<TcpStream> {
        let mut stream = dial.connect(&self.host, self.port).await?;
        let _ = stream.set_nodelay(true);
        match self.kind {
            ProxyKind::Http => {
                http_connect(&mut stream, host, port, self.credentials.as_ref(), limits).await?;
                Ok(stream)
            }
            ProxyKind::Socks5 => {
                socks5_connect(stream, host, port, self.credentials.as_ref()).await
            }
        }
    }
}

/// Decodes `%XX` escapes in the user part of a proxy URL (a password may hold `@` or `:`).
fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s)).into_owned()
}

/// Asks an HTTP proxy for a tunnel and checks its answer (any 2xx opens it).
pub(crate) async fn http_connect<S>(
    stream: &mut S,
    host: &str,
    port: u16,
    credentials: Option<&(String, String)>,
    limits: &HandshakeLimits,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, pass)) = credentials {
        let token = basic_token(user.as_bytes(), pass.as_bytes());
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut reader = HeadReader::new();
    let end = loop {
        if let Some(end) = reader
            .find_end(limits)
            .map_err(|e| Error::proxy(ProxyFailure::Malformed(e.to_string())))?
        {
            break end;
        }
        let buf = reader.buffer();
        buf.reserve(1024);
        if stream.read_buf(buf).await? == 0 {
            return Err(Error::proxy(ProxyFailure::Malformed(
                "the proxy closed the connection before answering CONNECT".into(),
            )));
        }
    };
    let (head, leftover) = reader.take(end);
    let response = parse_response(&head, limits)
        .map_err(|e| Error::proxy(ProxyFailure::Malformed(e.to_string())))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(Error::proxy(ProxyFailure::HttpStatus(status)));
    }
    if !leftover.is_empty() {
        // Nothing was sent through the tunnel yet, so nothing may come back through it.
        return Err(Error::proxy(ProxyFailure::Malformed(
            "data after the CONNECT answer".into(),
        )));
    }
    Ok(())
}

/// Opens a SOCKS5 tunnel; the host name goes to the proxy unresolved.
pub(crate) async fn socks5_connect<S>(
    stream: S,
    host: &str,
    port: u16,
    credentials: Option<&(String, String)>,
) -> Result<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use tokio_socks::tcp::Socks5Stream;
    let target = (host, port);
    let tunnel = match credentials {
        Some((user, pass)) => {
            Socks5Stream::connect_with_password_and_socket(stream, target, user, pass).await
        }
        None => Socks5Stream::connect_with_socket(stream, target).await,
    };
    tunnel.map(Socks5Stream::into_inner).map_err(socks_error)
}

fn socks_error(error: tokio_socks::Error) -> Error {
    use tokio_socks::Error as E;
    let failure = match error {
        E::Io(io) => return io.into(),
        E::NoAcceptableAuthMethods | E::AuthorizationRequired => {
            ProxyFailure::SocksNoAcceptableAuth
        }
        E::PasswordAuthFailure(_) => ProxyFailure::SocksAuthFailed,
        E::GeneralSocksServerFailure => ProxyFailure::SocksReply(1),
        E::ConnectionNotAllowedByRuleset => ProxyFailure::SocksReply(2),
        E::NetworkUnreachable => ProxyFailure::SocksReply(3),
        E::HostUnreachable => ProxyFailure::SocksReply(4),
        E::ConnectionRefused => ProxyFailure::SocksReply(5),
        E::TtlExpired => ProxyFailure::SocksReply(6),
        E::CommandNotSupported => ProxyFailure::SocksReply(7),
        E::AddressTypeNotSupported => ProxyFailure::SocksReply(8),
        other => ProxyFailure::Malformed(other.to_string()),
    };
    Error::proxy(failure)
}

/// The proxy the environment names for a connection to `host` (`ws` or `wss` by `secure`):
/// `HTTPS_PROXY` for `wss://`, `HTTP_PROXY` for `ws://`, then `ALL_PROXY` (lower-case names
/// too), unless `NO_PROXY` lists the host.
///
/// # Errors
/// The variable holds a URL [`Proxy::parse`] refuses.
pub fn proxy_from_env(host: &str, secure: bool) -> Result<Option<Proxy>> {
    proxy_from_vars(host, secure, |name| std::env::var(name).ok())
}

pub(crate) fn proxy_from_vars(
    host: &str,
    secure: bool,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>> {
    let get = |name: &str| {
        var(name)
            .or_else(|| var(&name.to_ascii_lowercase()))
            .filter(|v| !v.trim().is_empty())
    };
    if let Some(no_proxy) = get("NO_PROXY") {
        if no_proxy_matches(&no_proxy, host) {
            return Ok(None);
        }
    }
    let scheme_var = if secure { "HTTPS_PROXY" } else { "HTTP_PROXY" };
    match get(scheme_var).or_else(|| get("ALL_PROXY")) {
        Some(url) => Proxy::parse(url.trim()).map(Some),
        None => Ok(None),
    }
}

/// `NO_PROXY`: a comma-separated list of host names (matching the host and its subdomains,
/// with or without a leading dot), IP addresses, or `*` for every host.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',').map(str::trim).any(|entry| {
        let entry = entry.to_ascii_lowercase();
        let entry = entry.trim_start_matches("*.").trim_start_matches('.');
        entry == "*"
            || host == entry
            || (host.len() > entry.len()
                && host.ends_with(entry)
                && host.as_bytes()[host.len() - entry.len() - 1] == b'.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_urls() {
        let p = Proxy::parse("http://user:p%40ss@proxy.example:3128").unwrap();
        assert_eq!(p.kind(), ProxyKind::Http);
        assert_eq!(p.address(), "proxy.example:3128");
        assert_eq!(p.credentials, Some(("user".into(), "p@ss".into())));
        assert_eq!(
            Proxy::parse("socks5h://[::1]").unwrap().address(),
            "[::1]:1080"
        );
        assert_eq!(
            Proxy::parse("10.0.0.1:8080").unwrap().kind(),
            ProxyKind::Http
        );
        assert!(Proxy::parse("ftp://x").is_err());
        assert!(Proxy::parse("http://").is_err());
        assert!(!format!("{p:?}").contains("p@ss"));
    }

    #[test]
    fn environment_rules() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let env = vars(&[
            ("HTTP_PROXY", "http://h:1"),
            ("https_proxy", "socks5://s:2"),
            ("NO_PROXY", "internal.example, .corp,10.0.0.1"),
        ]);
        let addr = |host, secure| {
            proxy_from_vars(host, secure, env)
                .unwrap()
                .map(|p| p.address())
        };
        assert_eq!(addr("example.com", false).as_deref(), Some("h:1"));
        assert_eq!(addr("example.com", true).as_deref(), Some("s:2"));
        assert_eq!(addr("internal.example", false), None);
        assert_eq!(addr("a.internal.example", false), None);
        assert_eq!(addr("xinternal.example", false).as_deref(), Some("h:1"));
        assert_eq!(addr("db.corp", true), None);
        assert_eq!(addr("10.0.0.1", true), None);
        let all = vars(&[("ALL_PROXY", "socks5h://a:3"), ("no_proxy", "*")]);
        assert_eq!(proxy_from_vars("x", true, all).unwrap(), None);
        let all = vars(&[("ALL_PROXY", "socks5h://a:3")]);
        assert_eq!(
            proxy_from_vars("x", true, all).unwrap().map(|p| p.kind()),
            Some(ProxyKind::Socks5)
        );
    }

    /// Runs `client` against a scripted proxy that expects `expect` and answers `answer`.
    async fn scripted<F, T>(expect: &'static [u8], answer: &'static [u8], client: F) -> T
    where
        F: FnOnce(
            tokio::io::DuplexStream,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>,
    {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let proxy = async move {
            // The whole answer goes out first (the pipe buffers it), so the client's steps
            // never wait on the script; then everything the client sent is checked.
            theirs.write_all(answer).await.unwrap();
            let mut got = vec![0; expect.len()];
            theirs.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expect, "{}", String::from_utf8_lossy(&got));
            theirs
        };
        let (result, _theirs) = tokio::join!(client(ours), proxy);
        result
    }

    #[tokio::test]
    async fn http_connect_with_basic_auth() {
        let creds = ("elo".to_owned(), "s3cret".to_owned());
        let ok = scripted(
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic ZWxvOnMzY3JldA==\r\n\r\n",
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            |mut s| {
                let limits = HandshakeLimits::default();
                Box::pin(async move {
                    http_connect(&mut s, "example.com", 443, Some(&creds), &limits).await
                })
            },
        )
        .await;
        assert!(ok.is_ok(), "{ok:?}");
        let refused = scripted(
            b"CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
            |mut s| {
                let limits = HandshakeLimits::default();
                Box::pin(async move { http_connect(&mut s, "::1", 80, None, &limits).await })
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            refused.proxy_failure(),
            Some(&ProxyFailure::HttpStatus(407))
        );
    }

    #[tokio::test]
    async fn socks5_remote_dns_and_password() {
        // Greeting (no auth or user/pass), RFC 1929 auth, CONNECT with a domain name.
        let expect: &[u8] =
            b"\x05\x02\x00\x02\x01\x03elo\x06s3cret\x05\x01\x00\x03\x09localhost\x1f\x90";
        let answer: &[u8] = b"\x05\x02\x01\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x1f\x90";
        let creds = ("elo".to_owned(), "s3cret".to_owned());
        let ok = scripted(expect, answer, |s| {
            Box::pin(async move { socks5_connect(s, "localhost", 8080, Some(&creds)).await })
        })
        .await;
        assert!(ok.is_ok(), "{ok:?}");
        let creds = ("elo".to_owned(), "wrong".to_owned());
        let refused = scripted(
            b"\x05\x02\x00\x02\x01\x03elo\x05wrong",
            b"\x05\x02\x01\x01",
            |s| Box::pin(async move { socks5_connect(s, "localhost", 8080, Some(&creds)).await }),
        )
        .await
        .unwrap_err();
        assert_eq!(
            refused.proxy_failure(),
            Some(&ProxyFailure::SocksAuthFailed)
        );
        let no_method = scripted(b"\x05\x01\x00", b"\x05\xff", |s| {
            Box::pin(async move { socks5_connect(s, "localhost", 8080, None).await })
        })
        .await
        .unwrap_err();
        assert_eq!(
            no_method.proxy_failure(),
            Some(&ProxyFailure::SocksNoAcceptableAuth)
        );
    }
}
