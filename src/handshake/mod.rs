//! The HTTP opening handshake (RFC 6455 §4), shared by the server, the client and any HTTP
//! server integration: one validation path for every way a connection is accepted.

pub(crate) mod client;
pub(crate) mod head;
pub(crate) mod server;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::HeaderMap;
use sha1::{Digest, Sha1};

use crate::error::HandshakeError;

/// The GUID RFC 6455 §1.3 appends to the key.
pub(crate) const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The protocol versions we speak: 13 (RFC 6455) and 8 (HyBi drafts 07-12).
pub(crate) const SUPPORTED_VERSIONS: &str = "13, 8";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
///
/// ```
/// use enim_labore_occaecati::handshake::accept_key;
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A fresh random `Sec-WebSocket-Key`: 16 random bytes in base64.
pub fn generate_key() -> String {
    BASE64.encode(rand::random::<[u8; 16]>())
}

/// Whether `key` is 16 bytes in base64 (RFC 6455 §4.1, item 7).
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && BASE64
            .decode(key)
            .map(|decoded| decoded.len() == 16)
            .unwrap_or(false)
}

/// Whether any `name` header lists `token` (case-insensitive) among its comma-separated
/// elements.
pub(crate) fn header_has_token(
    headers: &HeaderMap,
    name: impl http::header::AsHeaderName,
    token: &str,
) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|element| element.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Appends a header given as strings; an invalid name or value is ignored, so builder methods
/// taking strings never panic.
pub(crate) fn append_header(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        http::HeaderName::from_bytes(name.as_bytes()),
        http::HeaderValue::from_str(value),
    ) {
        headers.append(name, value);
    }
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty RFC 7230 token.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Parses `Sec-WebSocket-Protocol` (all of its headers) into the offered subprotocols, in
/// order. One left-to-right pass per header, no backtracking.
///
/// # Errors
/// [`HandshakeError::InvalidSubprotocol`] for an empty element, an element that is not a token,
/// or a protocol listed twice.
pub(crate) fn parse_subprotocols(headers: &HeaderMap) -> Result<Vec<String>, HandshakeError> {
    let mut protocols: Vec<String> = Vec::new();
    for value in headers.get_all(http::header::SEC_WEBSOCKET_PROTOCOL) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let element = element.trim_ascii();
            if !is_token(element) {
                return Err(HandshakeError::InvalidSubprotocol);
            }
            // Tokens are ASCII, so this conversion can't fail.
            let element = String::from_utf8_lossy(element).into_owned();
            if protocols.contains(&element) {
                return Err(HandshakeError::InvalidSubprotocol);
            }
            protocols.push(element);
        }
    }
    Ok(protocols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn rfc_accept_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn keys() {
        let key = generate_key();
        assert!(is_valid_key(key.as_bytes()));
        assert_ne!(key, generate_key());
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZSE="));
        assert!(!is_valid_key(b""));
    }

    #[test]
    fn tokens_in_lists() {
        let mut h = HeaderMap::new();
        h.append(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(header_has_token(&h, "connection", "upgrade"));
        assert!(!header_has_token(&h, "connection", "close"));
        h.insert("connection", HeaderValue::from_static("upgraded"));
        assert!(!header_has_token(&h, "connection", "upgrade"));
    }

    #[test]
    fn subprotocols() {
        let mut h = HeaderMap::new();
        h.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("chat, superchat"),
        );
        h.append("sec-websocket-protocol", HeaderValue::from_static("v2"));
        assert_eq!(parse_subprotocols(&h).unwrap(), ["chat", "superchat", "v2"]);
        h.insert("sec-websocket-protocol", HeaderValue::from_static("a, a"));
        assert!(parse_subprotocols(&h).is_err());
        h.insert("sec-websocket-protocol", HeaderValue::from_static("a,,b"));
        assert!(parse_subprotocols(&h).is_err());
        h.insert("sec-websocket-protocol", HeaderValue::from_static("a b"));
        assert!(parse_subprotocols(&h).is_err());
        h.insert("sec-websocket-protocol", HeaderValue::from_static("a;b"));
        assert!(parse_subprotocols(&h).is_err());
    }

    #[test]
    fn long_protocol_lists_parse_in_linear_time() {
        let mut h = HeaderMap::new();
        let value = vec!["x"; 50_000].join(" , ") + " ,";
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&value).unwrap(),
        );
        let start = std::time::Instant::now();
        assert!(parse_subprotocols(&h).is_err());
        // Not a benchmark: a quadratic parser would take minutes here.
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
