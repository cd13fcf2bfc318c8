//! Client side of the opening handshake: the request (RFC 6455 §4.1) and the checks on the
//! server's response.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};

use super::{accept_key, header_has_token};
use crate::error::HandshakeError;
use crate::handshake::head::write_headers;

/// What the client asks for.
#[derive(Debug, Clone)]
pub struct ClientRequest<'a> {
    /// The `ws://` or `wss://` URL.
    pub uri: &'a Uri,
    /// `Sec-WebSocket-Key`.
    pub key: &'a str,
    /// 13 (default) or 8.
    pub version: u8,
    /// Subprotocols to offer.
    pub protocols: &'a [String],
    /// The origin, sent as `Origin` (13) or `Sec-WebSocket-Origin` (8).
    pub origin: Option<&'a str>,
    /// Extra headers; they replace generated ones of the same name (other than the
    /// WebSocket headers).
    pub headers: &'a HeaderMap,
    /// The `Sec-WebSocket-Extensions` offer, if any.
    pub extensions: Option<&'a str>,
}

/// The `Host` header value for a URL: the host, with the port unless it is the scheme's
/// default.
pub fn host_header(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("");
    let default_port = match uri.scheme_str() {
        Some("wss") | Some("https") => 443,
        _ => 80,
    };
    match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    }
}

/// The path and query a request asks for (`/` when the URL has none).
fn request_target(uri: &Uri) -> &str {
    uri.path_and_query()
        .map(|pq| pq.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("/")
}

/// The bytes of the upgrade request.
pub fn build_request(req: &ClientRequest<'_>) -> Vec<u8> {
    let target = request_target(req.uri);
    let mut out = format!("GET {target} HTTP/1.1\r\n").into_bytes();
    let mut headers = HeaderMap::new();
    if let Ok(host) = HeaderValue::from_str(&host_header(req.uri)) {
        headers.insert(header::HOST, host);
    }
    for (name, value) in req.headers {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(key) = HeaderValue::from_str(req.key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, key);
    }
    add_websocket_headers(&mut headers, req);
    write_headers(&mut out, &headers);
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg_attr(not(feature = "http2"), allow(dead_code))]
/// The head of the HTTP/2 extended CONNECT (RFC 8441 §4): CONNECT to the URL's authority and
/// path (`:scheme` https for `wss://`, http for `ws://`), the same WebSocket headers as
/// HTTP/1.1 but no key, `Upgrade` or `Connection`. The HTTP/2 layer adds `:protocol`.
pub fn build_connect_request(req: &ClientRequest<'_>) -> Result<Request<()>, HandshakeError> {
    let scheme = match req.uri.scheme_str() {
        Some("wss") | Some("https") => "https",
        _ => "http",
    };
    let authority = host_header(req.uri);
    let target = request_target(req.uri);
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(authority.as_str())
        .path_and_query(target)
        .build()
        .map_err(|_| HandshakeError::Malformed("URL not valid as an HTTP/2 request target"))?;
    let mut headers = HeaderMap::new();
    for (name, value) in req.headers {
        headers.append(name.clone(), value.clone());
    }
    headers.remove(header::HOST);
    crate::handshake::server::remove_connection_headers(&mut headers);
    add_websocket_headers(&mut headers, req);
    let mut request = Request::new(());
    *request.method_mut() = Method::CONNECT;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The headers both forms of the request carry: version, subprotocols, extensions, origin.
fn add_websocket_headers(headers: &mut HeaderMap, req: &ClientRequest<'_>) {
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from(u16::from(req.version)),
    );
    if !req.protocols.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&req.protocols.join(", ")) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    if let Some(offer) = req.extensions.and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, offer);
    }
    if let Some(origin) = req.origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        let name = if req.version == 8 {
            "sec-websocket-origin"
        } else {
            "origin"
        };
        headers.insert(name, origin);
    }
}

/// Checks a `101` response: `Upgrade: websocket`, `Connection: upgrade`, the accept value for
/// `key`, a subprotocol among those offered (or none), and no extension unless
/// `extensions_offered` (the caller then checks the answer to its offer). Returns the chosen
/// subprotocol.
///
/// # Errors
/// The first check that fails. A status other than 101 is
/// [`HandshakeError::UnexpectedStatus`]; the caller reads the body to report it.
pub fn validate_response(
    response: &Response<()>,
    key: &str,
    offered: &[String],
    extensions_offered: bool,
) -> Result<Option<String>, HandshakeError> {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(HandshakeError::UnexpectedStatus(response.status().as_u16()));
    }
    let headers = response.headers();
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let expected = accept_key(key.as_bytes());
    match headers.get(header::SEC_WEBSOCKET_ACCEPT) {
        Some(value) if value.as_bytes() == expected.as_bytes() => {}
        _ => return Err(HandshakeError::InvalidAccept),
    }
    check_choices(headers, offered, extensions_offered)
}

#[cfg_attr(not(feature = "http2"), allow(dead_code))]
/// Checks the answer to an HTTP/2 extended CONNECT (RFC 8441 §5): a 2xx status, then the
/// subprotocol and extension checks of [`validate_response`]. Returns the chosen subprotocol.
///
/// # Errors
/// As [`validate_response`]; any status but 2xx is [`HandshakeError::UnexpectedStatus`].
pub fn validate_connect_response(
    response: &Response<()>,
    offered: &[String],
    extensions_offered: bool,
) -> Result<Option<String>, HandshakeError> {
    if !response.status().is_success() {
        return Err(HandshakeError::UnexpectedStatus(response.status().as_u16()));
    }
    check_choices(response.headers(), offered, extensions_offered)
}

/// The server's subprotocol must be one offered, and extensions only if some were.
fn check_choices(
    headers: &HeaderMap,
    offered: &[String],
    extensions_offered: bool,
) -> Result<Option<String>, HandshakeError> {
    let mut protocols = headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
    let protocol = match (protocols.next(), protocols.next()) {
        (None, _) => None,
        (Some(value), None) => {
            let value = value
                .to_str()
                .map_err(|_| HandshakeError::UnexpectedSubprotocol)?;
            if !offered.iter().any(|p| p == value) {
                return Err(HandshakeError::UnexpectedSubprotocol);
            }
            Some(value.to_owned())
        }
        (Some(_), Some(_)) => return Err(HandshakeError::UnexpectedSubprotocol),
    };
    if !extensions_offered && headers.contains_key(header::SEC_WEBSOCKET_EXTENSIONS) {
        return Err(HandshakeError::UnexpectedExtension);
    }
    Ok(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HandshakeLimits;
    use crate::handshake::head::{parse_request, parse_response};
    use crate::handshake::server::{accept_response, validate_request};

    #[test]
    fn request_round_trips_through_server_validation() {
        let uri: Uri = "ws://example.com:8080/chat?room=1".parse().unwrap();
        let protocols = vec!["chat".to_owned(), "v2".to_owned()];
        let mut extra = HeaderMap::new();
        extra.insert("x-token", HeaderValue::from_static("abc"));
        let key = crate::handshake::generate_key();
        let bytes = build_request(&ClientRequest {
            uri: &uri,
            key: &key,
            version: 13,
            protocols: &protocols,
            origin: Some("http://example.com"),
            headers: &extra,
            extensions: None,
        });
        let req = parse_request(&bytes, &HandshakeLimits::default()).unwrap();
        assert_eq!(req.uri().to_string(), "/chat?room=1");
        assert_eq!(req.headers()["host"], "example.com:8080");
        assert_eq!(req.headers()["x-token"], "abc");
        let up = validate_request(&req).unwrap();
        assert_eq!(up.protocols, protocols);
        assert_eq!(up.origin.as_deref(), Some("http://example.com"));

        let response = accept_response(&up.key, Some("v2"), &HeaderMap::new());
        let response = parse_response(&response, &HandshakeLimits::default()).unwrap();
        assert_eq!(
            validate_response(&response, &key, &protocols, false),
            Ok(Some("v2".into()))
        );
        assert_eq!(
            validate_response(&response, "AAAAAAAAAAAAAAAAAAAAAA==", &protocols, false),
            Err(HandshakeError::InvalidAccept)
        );
        assert_eq!(
            validate_response(&response, &key, &[], false),
            Err(HandshakeError::UnexpectedSubprotocol)
        );
    }

    #[test]
    fn host_header_omits_default_ports() {
        assert_eq!(host_header(&"ws://a.b/".parse().unwrap()), "a.b");
        assert_eq!(host_header(&"ws://a.b:80/".parse().unwrap()), "a.b");
        assert_eq!(host_header(&"wss://a.b:443/".parse().unwrap()), "a.b");
        assert_eq!(host_header(&"ws://a.b:443/".parse().unwrap()), "a.b:443");
        assert_eq!(host_header(&"ws://[::1]:9/".parse().unwrap()), "[::1]:9");
    }

    #[test]
    fn unrequested_extension_is_refused() {
        let key = crate::handshake::generate_key();
        let mut extra = HeaderMap::new();
        extra.insert(
            "sec-websocket-extensions",
            HeaderValue::from_static("permessage-deflate"),
        );
        let response = accept_response(&key, None, &extra);
        let response = parse_response(&response, &HandshakeLimits::default()).unwrap();
        assert_eq!(
            validate_response(&response, &key, &[], false),
            Err(HandshakeError::UnexpectedExtension)
        );
        assert_eq!(validate_response(&response, &key, &[], true), Ok(None));
    }
}
