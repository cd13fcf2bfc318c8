//! Client URLs: `ws://`, `wss://` (and `http(s)://` taken as such), `ws+unix:`; their user info
//! as Basic credentials; where they say to connect.

use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, Uri};

use crate::error::{Error, Result};

/// Where a URL says to connect.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Tcp {
        host: String,
        port: u16,
        secure: bool,
    },
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix(std::path::PathBuf),
}

pub(crate) fn is_secure(uri: &Uri) -> bool {
    matches!(uri.scheme_str(), Some("wss") | Some("https"))
}

/// The URL's port, or its scheme's default.
pub(crate) fn effective_port(uri: &Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if is_secure(uri) { 443 } else { 80 })
}

pub(crate) fn tcp_target(uri: &Uri) -> Target {
    Target::Tcp {
        host: uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: effective_port(uri),
        secure: is_secure(uri),
    }
}

/// The URL a connection was made to, for [`WebSocket::url`](crate::WebSocket::url): the request URL, or the
/// `ws+unix:` spelling for a Unix socket.
pub(crate) fn display_url(target: &Target, uri: &Uri) -> String {
    match target {
        Target::Unix(path) => {
            let request = uri.path_and_query().map_or("/", |pq| pq.as_str());
            format!("ws+unix:{}:{request}", path.display())
        }
        Target::Tcp { .. } => uri.to_string(),
    }
}

/// A user name and password from a URL's user info, percent-decoded.
pub(crate) type Credentials = (Vec<u8>, Vec<u8>);

/// Splits the user info (`user:password@`) off a URL: the URL without it, and the
/// percent-decoded user name and password (empty when missing, as in `ws://user@host/`).
pub(crate) fn take_user_info(uri: Uri) -> Result<(Uri, Option<Credentials>)> {
    let Some((user_info, host)) = uri
        .authority()
        .and_then(|authority| authority.as_str().rsplit_once('@'))
    else {
        return Ok((uri, None));
    };
    let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
    let credentials = (percent_decode_bytes(user), percent_decode_bytes(password));
    let invalid = || Error::invalid_input("invalid host after the user info of a URL");
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(host.parse().map_err(|_| invalid())?);
    let uri = Uri::from_parts(parts).map_err(|_| invalid())?;
    Ok((uri, Some(credentials)))
}

/// Sends URL credentials as `Authorization: Basic …`, unless an `Authorization` header is
/// already there (the caller's, or an earlier hop's): the first one wins, as in curl.
pub(crate) fn add_basic_auth(headers: &mut HeaderMap, credentials: Option<Credentials>) {
    let Some((user, password)) = credentials else {
        return;
    };
    if headers.contains_key(header::AUTHORIZATION) {
        return;
    }
    let token = basic_token(&user, &password);
    if let Ok(mut value) = HeaderValue::from_str(&format!("Basic {token}")) {
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
    }
}

/// Where to connect and the URL to request: `ws+unix:/path/to/socket:/request/path` (the
/// seed's spelling; the request path defaults to `/`) names a Unix socket, anything else goes
/// through [`parse_url`].
pub(crate) fn parse_target(url: &str) -> Result<(Target, Uri)> {
    if let Some(rest) = url.strip_prefix("ws+unix:") {
        let (socket, path) = match rest.split_once(':') {
            Some((socket, path)) => (socket, path),
            None => (rest, "/"),
        };
        if socket.is_empty() {
            return Err(Error::invalid_input(format!(
                "no socket path in {url:?} (ws+unix:/path/to/socket:/request/path)"
            )));
        }
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let uri = format!("ws://localhost{path}")
            .parse()
            .map_err(|_| Error::invalid_input(format!("invalid request path in {url:?}")))?;
        return Ok((Target::Unix(socket.into()), uri));
    }
    let uri = parse_url(url)?;
    Ok((tcp_target(&uri), uri))
}

/// Parses a `ws://`/`wss://` URL (`http://` and `https://` are taken as their WebSocket
/// equivalents, as in the seed).
pub(crate) fn parse_url(url: &str) -> Result<Uri> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::invalid_input(format!("invalid URL: {url:?}")))?;
    match uri.scheme_str() {
        Some("ws") | Some("wss") | Some("http") | Some("https") => {}
        _ => {
            return Err(Error::invalid_input(format!(
                "URL scheme must be ws or wss: {url:?}"
            )))
        }
    }
    if uri.host().map_or(true, str::is_empty) {
        return Err(Error::invalid_input(format!("URL has no host: {url:?}")));
    }
    Ok(uri)
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits stays as it is).
pub(crate) fn percent_decode_bytes(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The token of `Basic` authentication (RFC 7617): base64 of `user:password`.
pub(crate) fn basic_token(user: &[u8], password: &[u8]) -> String {
    let mut pair = Vec::with_capacity(user.len() + 1 + password.len());
    pair.extend_from_slice(user);
    pair.push(b':');
    pair.extend_from_slice(password);
    base64::engine::general_purpose::STANDARD.encode(pair)
}
