//! Bounded, incremental reading of an HTTP/1.1 head.
//!
//! [`HeadReader`] remembers how far it has looked for the blank line that ends the head, so a
//! head trickled in one byte per packet costs linear time in total. The head is parsed (by
//! `httparse`) once, when complete; its size and header count are bounded.

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};

use crate::config::HandshakeLimits;
use crate::error::HandshakeError;

/// Accumulates bytes until a complete head is there.
#[derive(Debug, Default)]
pub struct HeadReader {
    buf: BytesMut,
    scanned: usize,
}

impl HeadReader {
    /// An empty reader.
    pub fn new() -> HeadReader {
        HeadReader::default()
    }

    /// The buffer to read into.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Looks for the end of the head in the bytes received so far. Returns its length (the
    /// blank line included) once found.
    ///
    /// # Errors
    /// [`HandshakeError::HeadTooLarge`] when `max_head_size` bytes came without a blank line;
    /// [`HandshakeError::Malformed`] at once when the first byte can't start an HTTP head
    /// (every method and `HTTP/` start with a letter), such as a TLS handshake sent to a plain
    /// server, so the peer doesn't wait out a timeout.
    pub fn find_end(&mut self, limits: &HandshakeLimits) -> Result<Option<usize>, HandshakeError> {
        if self.buf.first().is_some_and(|b| !b.is_ascii_alphabetic()) {
            return Err(HandshakeError::Malformed(
                "not an HTTP head (TLS sent to a plain-text port?)",
            ));
        }
        // Resume three bytes back: the terminator may straddle the previous scan's end.
        let from = self.scanned.saturating_sub(3);
        let window = &self.buf[from..self.buf.len().min(limits.max_head_size)];
        if let Some(pos) = window.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(from + pos + 4));
        }
        self.scanned = self.buf.len();
        if self.buf.len() >= limits.max_head_size {
            return Err(HandshakeError::HeadTooLarge);
        }
        Ok(None)
    }

    /// Splits off the head (`len` bytes from [`find_end`](HeadReader::find_end)) and returns
    /// it with whatever followed it (bytes the peer sent after the head, such as first frames).
    pub fn take(mut self, len: usize) -> (BytesMut, BytesMut) {
        let head = self.buf.split_to(len);
        (head, self.buf)
    }
}

fn to_header_map(headers: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for h in headers {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HandshakeError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| HandshakeError::Malformed("invalid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

fn httparse_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders,
        httparse::Error::Version => HandshakeError::UnsupportedHttpVersion,
        httparse::Error::Status => HandshakeError::Malformed("invalid status"),
        httparse::Error::Token => HandshakeError::Malformed("invalid token"),
        httparse::Error::HeaderName => HandshakeError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HandshakeError::Malformed("invalid header value"),
        httparse::Error::NewLine => HandshakeError::Malformed("invalid line ending"),
    }
}

/// Parses a complete request head.
///
/// # Errors
/// Malformed HTTP, or more than `max_headers` headers.
pub fn parse_request(head: &[u8], limits: &HandshakeLimits) -> Result<Request<()>, HandshakeError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head).map_err(httparse_error)? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => return Err(HandshakeError::Malformed("incomplete head")),
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HandshakeError::Malformed("invalid method"))?;
    let version = match req.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let uri: http::Uri = req
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| HandshakeError::Malformed("invalid request target"))?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = to_header_map(req.headers)?;
    Ok(request)
}

/// Parses a complete response head.
///
/// # Errors
/// Malformed HTTP, or more than `max_headers` headers.
pub fn parse_response(
    head: &[u8],
    limits: &HandshakeLimits,
) -> Result<Response<()>, HandshakeError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(head).map_err(httparse_error)? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => return Err(HandshakeError::Malformed("incomplete head")),
    }
    let status = StatusCode::from_u16(res.code.unwrap_or(0))
        .map_err(|_| HandshakeError::Malformed("invalid status"))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = match res.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    *response.headers_mut() = to_header_map(res.headers)?;
    Ok(response)
}

/// Appends the header lines of `headers` to `out`.
pub(crate) fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tungstenite CVE-2023-43669 re-parsed a long head on every read. Here a 256 KiB head
    /// arriving a byte at a time has each byte examined a bounded number of times (the scan
    /// resumes where the last one ended), where re-scanning would examine ~32 G bytes.
    #[test]
    fn a_head_trickled_a_byte_at_a_time_is_scanned_once() {
        let limits = HandshakeLimits {
            max_head_size: 1 << 20,
            ..HandshakeLimits::default()
        };
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
        head.resize(256 << 10, b'p');
        head.extend_from_slice(b"\r\n\r\n");
        let mut reader = HeadReader::new();
        let mut examined = 0;
        for (i, byte) in head.iter().enumerate() {
            reader.buffer().extend_from_slice(&[*byte]);
            // What this call's window holds, as find_end computes it.
            examined += reader.buf.len() - reader.scanned.saturating_sub(3);
            match reader.find_end(&limits).unwrap() {
                Some(len) => {
                    assert_eq!((i + 1, len), (head.len(), head.len()));
                    break;
                }
                None => assert!(i + 1 < head.len()),
            }
        }
        assert!(examined <= 5 * head.len(), "{examined} bytes examined");
    }

    #[test]
    fn refuses_what_cannot_be_http_at_the_first_byte() {
        let limits = HandshakeLimits::default();
        let mut reader = HeadReader::new();
        // The first bytes of a TLS ClientHello record.
        reader.buffer().extend_from_slice(&[0x16, 0x03, 0x01, 0x02]);
        assert!(matches!(
            reader.find_end(&limits),
            Err(HandshakeError::Malformed(_))
        ));
        let mut reader = HeadReader::new();
        reader.buffer().extend_from_slice(b"GE");
        assert_eq!(reader.find_end(&limits), Ok(None));
    }

    #[test]
    fn finds_the_end_across_byte_by_byte_feeding() {
        let limits = HandshakeLimits::default();
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nEXTRA";
        let mut reader = HeadReader::new();
        let mut found = None;
        for &b in head.iter() {
            reader.buffer().extend_from_slice(&[b]);
            if let Some(n) = reader.find_end(&limits).unwrap() {
                found = Some(n);
                break;
            }
        }
        assert_eq!(found, Some(head.len() - 5));
    }

    #[test]
    fn head_size_is_bounded() {
        let limits = HandshakeLimits::default();
        let mut reader = HeadReader::new();
        reader
            .buffer()
            .extend_from_slice(&vec![b'a'; limits.max_head_size]);
        assert_eq!(reader.find_end(&limits), Err(HandshakeError::HeadTooLarge));
    }

    #[test]
    fn header_count_is_bounded() {
        let limits = HandshakeLimits::default();
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=limits.max_headers {
            head.extend_from_slice(format!("x-{i}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_request(&head, &limits).unwrap_err(),
            HandshakeError::TooManyHeaders
        );
    }

    #[test]
    fn parses_request_and_response() {
        let limits = HandshakeLimits::default();
        let req = parse_request(
            b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX: 1\r\nX: 2\r\n\r\n",
            &limits,
        )
        .unwrap();
        assert_eq!(req.uri().path(), "/a");
        assert_eq!(req.uri().query(), Some("b=1"));
        assert_eq!(req.headers().get_all("x").iter().count(), 2);
        let res = parse_response(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            &limits,
        )
        .unwrap();
        assert_eq!(res.status(), 101);
        assert!(parse_request(b"GARBAGE\r\n\r\n", &limits).is_err());
    }
}
