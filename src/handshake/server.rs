//! Server side of the opening handshake: validating an upgrade request (RFC 6455 §4.2.1) and
//! writing the response.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};

use super::{accept_key, header_has_token, is_valid_key, parse_subprotocols, SUPPORTED_VERSIONS};
use crate::error::HandshakeError;
use crate::handshake::head::write_headers;

/// What a valid upgrade request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// `Sec-WebSocket-Key`.
    pub key: String,
    /// The protocol version: 13, or 8 for HyBi drafts 07-12.
    pub version: u8,
    /// The subprotocols offered, in the client's order of preference.
    pub protocols: Vec<String>,
    /// The origin: `Origin` for version 13, `Sec-WebSocket-Origin` for version 8.
    pub origin: Option<String>,
}

/// The `:protocol` pseudo-header of an HTTP/2 extended CONNECT (RFC 8441 §4), put in the
/// request's extensions by the HTTP/2 layer that read it, so that one validation path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectProtocol(pub(crate) String);

#[cfg_attr(not(any(feature = "http2", feature = "hyper")), allow(dead_code))]
/// An HTTP/2 request head as the one decision path sees it: `:protocol` (read by the HTTP/2
/// library) as [`ConnectProtocol`], and `Host` from `:authority`, for hooks that read it
/// (HTTP/2 carries the authority in the URI).
pub(crate) fn http2_head(mut head: Request<()>, protocol: Option<&str>) -> Request<()> {
    if let Some(protocol) = protocol {
        let protocol = ConnectProtocol(protocol.to_owned());
        head.extensions_mut().insert(protocol);
    }
    if !head.headers().contains_key(header::HOST) {
        let host = head
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(host) = host {
            head.headers_mut().insert(header::HOST, host);
        }
    }
    head
}

/// Validates an upgrade request. The checks, in order: GET (405), HTTP/1.1 or later, `Host`,
/// `Upgrade: websocket`, `Connection: upgrade`, a 16-byte base64 key (all 400), version 13 or 8
/// (426), well-formed subprotocols (400). An HTTP/2 request is an extended CONNECT instead
/// (RFC 8441 §5): CONNECT (405), `:protocol` websocket and an authority (400), then the same
/// version and subprotocol checks; it has no key.
///
/// # Errors
/// The first check that fails; [`HandshakeError::status`] gives the HTTP status to answer.
pub fn validate_request(req: &Request<()>) -> Result<UpgradeRequest, HandshakeError> {
    if req.version() == Version::HTTP_2 {
        return validate_extended_connect(req);
    }
    if req.method() != Method::GET {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if req.version() < Version::HTTP_11 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let headers = req.headers();
    if headers.get(header::HOST).is_none() {
        return Err(HandshakeError::MissingHost);
    }
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.as_bytes()) => key,
        _ => return Err(HandshakeError::InvalidKey),
    };
    // A valid key is base64, hence ASCII.
    upgrade_fields(
        headers,
        String::from_utf8_lossy(key.as_bytes()).into_owned(),
    )
}

/// RFC 8441 §4-5: the HTTP/2 form of the upgrade request.
fn validate_extended_connect(req: &Request<()>) -> Result<UpgradeRequest, HandshakeError> {
    if req.method() != Method::CONNECT {
        return Err(HandshakeError::MethodNotAllowed);
    }
    match req.extensions().get::<ConnectProtocol>() {
        Some(ConnectProtocol(protocol)) if protocol.eq_ignore_ascii_case("websocket") => {}
        _ => return Err(HandshakeError::NotWebSocketConnect),
    }
    match (req.uri().authority(), req.headers().get(header::HOST)) {
        (None, None) => return Err(HandshakeError::MissingHost),
        // RFC 9113 §8.3.1: a Host naming another entity than :authority is malformed (compared
        // normalised: case, a trailing dot, the scheme's default port).
        (Some(authority), Some(host))
            if !same_entity(authority, host.as_bytes(), req.uri().scheme_str()) =>
        {
            return Err(HandshakeError::Malformed("Host differs from :authority"));
        }
        _ => {}
    }
    upgrade_fields(req.headers(), String::new())
}

/// Whether a `Host` value names the same host and port as `:authority`.
fn same_entity(authority: &http::uri::Authority, host: &[u8], scheme: Option<&str>) -> bool {
    let Ok(host) = http::uri::Authority::try_from(host) else {
        return false;
    };
    let default = if scheme == Some("http") { 80 } else { 443 };
    let name = |a: &http::uri::Authority| a.host().trim_end_matches('.').to_ascii_lowercase();
    name(authority) == name(&host)
        && authority.port_u16().unwrap_or(default) == host.port_u16().unwrap_or(default)
}

/// The checks both forms share: the version, the subprotocols, the origin.
fn upgrade_fields(headers: &HeaderMap, key: String) -> Result<UpgradeRequest, HandshakeError> {
    let version = match headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
    {
        Some(b"13") => 13,
        Some(b"8") => 8,
        _ => return Err(HandshakeError::UnsupportedVersion),
    };
    let protocols = parse_subprotocols(headers)?;
    let origin_header = if version == 8 {
        "sec-websocket-origin"
    } else {
        "origin"
    };
    let origin = headers
        .get(origin_header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(UpgradeRequest {
        key,
        version,
        protocols,
        origin,
    })
}

#[cfg_attr(not(any(feature = "http2", feature = "hyper")), allow(dead_code))]
/// The headers of the `200` that accepts an extended CONNECT (RFC 8441 §5): the chosen
/// subprotocol and the application's headers, without the connection-specific ones HTTP/2
/// forbids (RFC 9113 §8.2.2).
pub fn connect_accept_headers(protocol: Option<&str>, extra: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    for (name, value) in extra {
        headers.append(name.clone(), value.clone());
    }
    remove_connection_headers(&mut headers);
    headers
}

#[cfg_attr(not(any(feature = "http2", feature = "hyper")), allow(dead_code))]
/// Removes the headers HTTP/2 forbids (RFC 9113 §8.2.2), which an HTTP/2 library refuses to
/// send.
pub(crate) fn remove_connection_headers(headers: &mut HeaderMap) {
    // The names `Connection` lists are connection-specific too.
    let listed: Vec<http::header::HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|name| http::header::HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    // `TE` only as `trailers` (lowercase, once: HTTP/2 libraries compare it byte for byte).
    let trailers = headers.get_all(header::TE).iter().any(|te| {
        te.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    });
    headers.remove(header::TE);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    for name in [
        header::CONNECTION,
        header::UPGRADE,
        header::TRANSFER_ENCODING,
        http::header::HeaderName::from_static("keep-alive"),
        http::header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// The headers of a `101 Switching Protocols` answer to `key`, plus the chosen subprotocol and
/// any extra headers of the application.
pub fn accept_headers(key: &str, protocol: Option<&str>, extra: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(value) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    for (name, value) in extra {
        headers.append(name.clone(), value.clone());
    }
    headers
}

/// The bytes of a `101 Switching Protocols` response.
pub fn accept_response(key: &str, protocol: Option<&str>, extra: &HeaderMap) -> Vec<u8> {
    let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    write_headers(&mut out, &accept_headers(key, protocol, extra));
    out.extend_from_slice(b"\r\n");
    out
}

/// The headers every refusal carries: `Connection: close`, a text body, and for 426 the
/// versions we speak (RFC 6455 §4.4). Shared by the raw responses below and by servers that
/// answer through an HTTP library.
pub fn rejection_headers(status: StatusCode) -> HeaderMap {
    let mut all = HeaderMap::new();
    all.insert(header::CONNECTION, HeaderValue::from_static("close"));
    all.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if status == StatusCode::UPGRADE_REQUIRED {
        all.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static(SUPPORTED_VERSIONS),
        );
    }
    all
}

/// The status of the answer to a failed validation.
pub fn error_status(error: &HandshakeError) -> StatusCode {
    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST)
}

/// An error response that ends the connection: the status, the [`rejection_headers`], the
/// application's headers and a body (by default the status's reason phrase, as the seed
/// library does). Servers built on an HTTP library send this; the standalone server sends its
/// bytes ([`reject_response`]).
pub fn rejection(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Response<Bytes> {
    let body = if body.is_empty() {
        Bytes::from_static(status.canonical_reason().unwrap_or("").as_bytes())
    } else {
        Bytes::copy_from_slice(body)
    };
    let mut all = rejection_headers(status);
    for (name, value) in headers {
        all.insert(name.clone(), value.clone());
    }
    all.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = all;
    response
}

/// The bytes of [`rejection`].
pub fn reject_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let response = rejection(status, headers, body);
    let reason = status.canonical_reason().unwrap_or("");
    let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), reason).into_bytes();
    write_headers(&mut out, response.headers());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(response.body());
    out
}

/// The error response for a failed validation.
#[cfg(test)]
fn error_response(error: &HandshakeError) -> Vec<u8> {
    reject_response(error_status(error), &HeaderMap::new(), b"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HandshakeLimits;
    use crate::handshake::head::parse_request;

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn check(head: &str) -> Result<UpgradeRequest, HandshakeError> {
        validate_request(&parse_request(head.as_bytes(), &HandshakeLimits::default()).unwrap())
    }

    #[test]
    fn rfc_example_request() {
        let up = check(GOOD).unwrap();
        assert_eq!(up.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(up.version, 13);
        assert_eq!(up.protocols, ["chat", "superchat"]);
        assert_eq!(up.origin.as_deref(), Some("http://example.com"));
        let response =
            String::from_utf8(accept_response(&up.key, Some("chat"), &HeaderMap::new())).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(response.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(response.contains("sec-websocket-protocol: chat\r\n"));
    }

    #[test]
    fn each_check_and_its_status() {
        let cases: [(&str, &str, u16); 9] = [
            ("GET /chat", "POST /chat", 405),
            ("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost", 400),
            ("Host: server.example.com\r\n", "", 400),
            ("Upgrade: websocket", "Upgrade: h2c", 400),
            ("keep-alive, Upgrade", "keep-alive", 400),
            ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j", 400),
            ("Version: 13", "Version: 12", 426),
            ("chat, superchat", "chat, chat", 400),
            ("chat, superchat", "chat, sup erchat", 400),
        ];
        for (from, to, status) in cases {
            let err = check(&GOOD.replace(from, to)).unwrap_err();
            assert_eq!(err.status(), status, "{from} -> {to}: {err:?}");
        }
        let v8 = GOOD
            .replace("Version: 13", "Version: 8")
            .replace("Origin:", "Sec-WebSocket-Origin:");
        let up = check(&v8).unwrap();
        assert_eq!(
            (up.version, up.origin.as_deref()),
            (8, Some("http://example.com"))
        );
    }

    #[test]
    fn host_and_authority_compare_normalised() {
        let authority: http::uri::Authority = "Example.com".parse().unwrap();
        for (host, same) in [
            (&b"example.com"[..], true),
            (b"EXAMPLE.com.", true),
            (b"example.com:80", true),
            (b"example.com:8080", false),
            (b"other.example", false),
            (b"bad host", false),
        ] {
            assert_eq!(
                same_entity(&authority, host, Some("http")),
                same,
                "{host:?}"
            );
        }
        let with_port: http::uri::Authority = "example.com:443".parse().unwrap();
        assert!(same_entity(&with_port, b"example.com", Some("https")));
    }

    #[test]
    fn only_trailers_survives_as_te_over_http2() {
        let mut headers = HeaderMap::new();
        headers.append(header::TE, HeaderValue::from_static("Trailers, gzip"));
        headers.append(header::TE, HeaderValue::from_static("deflate"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("x-hop, close"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_connection_headers(&mut headers);
        assert_eq!(headers.get_all(header::TE).iter().count(), 1);
        assert_eq!(headers[header::TE], "trailers");
        assert!(!headers.contains_key("x-hop") && !headers.contains_key(header::CONNECTION));
        assert!(headers.contains_key("x-kept"));
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        remove_connection_headers(&mut headers);
        assert!(!headers.contains_key(header::TE));
    }

    #[test]
    fn upgrade_required_names_versions() {
        let text = String::from_utf8(error_response(&HandshakeError::UnsupportedVersion)).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("sec-websocket-version: 13, 8\r\n"));
    }
}
