//! Helpers shared by the subcommands: the error type, one-line descriptions of library errors,
//! escaping of peer-controlled text, and flag parsers.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use enim_labore_occaecati::{Error, ErrorKind, Message};

/// An error for the user: printed as `elo: error: …`, exit status 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        CliError(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        CliError(message.to_owned())
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// Writes a line to stdout, ignoring a closed pipe (`elo connect … | head -1` must not panic).
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Flushes stdout, ignoring errors.
pub fn flush_stdout() {
    let _ = std::io::stdout().flush();
}

/// Text from the network made safe for one terminal line: control characters (newlines,
/// escape sequences) are escaped, so a peer can neither forge log lines nor drive the terminal.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// At most `max` characters of `text` (escaped), with `…` when cut.
pub fn escape_cut(text: &str, max: usize) -> String {
    let escaped = escape(text.trim());
    if escaped.chars().count() <= max {
        escaped
    } else {
        let mut cut: String = escaped.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

/// How `elo connect` prints a message: `< text`, `< [binary] 00ff…` (hex up to 64 bytes),
/// `< <binary N bytes>`, and the control frames when they are shown.
pub fn format_message(message: &Message) -> String {
    match message {
        Message::Text(text) => format!("< {}", escape(text)),
        Message::Binary(data) if data.len() <= 64 => format!("< [binary] {}", hex(data)),
        Message::Binary(data) => format!("< <binary {} bytes>", data.len()),
        Message::Ping(data) => format!("< ping {}", payload_text(data)),
        Message::Pong(data) => format!("< pong {}", payload_text(data)),
        Message::Close(frame) => match frame {
            Some(frame) => format!(
                "< close {} {}",
                frame.code.as_u16(),
                escape(frame.reason.as_str())
            ),
            None => "< close".to_owned(),
        },
        Message::Fragment(f) => format!(
            "< [fragment{}] {}",
            if f.fin { ", last" } else { "" },
            payload_text(&f.data)
        ),
    }
}

fn payload_text(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) => escape(text),
        Err(_) => format!("[binary] {}", hex(data)),
    }
}

/// Lower-case hex digits of `data`.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// An error and its sources, as one line: `Error`'s `Display` leaves the source to `source()`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}

/// A one-line description of a failed connection attempt to `url`.
pub fn describe_connect_error(url: &str, error: &Error) -> CliError {
    if let Some(response) = error.http_response() {
        let status = response.status();
        let mut line = format!(
            "handshake with {url} failed: HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let body = escape_cut(&String::from_utf8_lossy(response.body()), 200);
        if !body.is_empty() {
            line.push_str(": ");
            line.push_str(&body);
        }
        return CliError(line.trim_end().to_owned());
    }
    let message = match error.kind() {
        ErrorKind::InvalidInput => format!("bad URL {url:?}: {}", strip_kind(error)),
        ErrorKind::Io => match io_source(error) {
            Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("cannot connect to {url}: connection refused")
            }
            Some(io) => format!("cannot connect to {url}: {io}"),
            None => format!("cannot connect to {url}: {}", chain(error)),
        },
        ErrorKind::Timeout => format!("cannot connect to {url}: timed out"),
        _ => format!("cannot connect to {url}: {}", chain(error)),
    };
    CliError(message)
}

/// The library's message without its leading "invalid input: ".
fn strip_kind(error: &Error) -> String {
    let text = chain(error);
    match text.strip_prefix("invalid input: ") {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

fn io_source(error: &Error) -> Option<&std::io::Error> {
    std::error::Error::source(error)?.downcast_ref::<std::io::Error>()
}

/// Parses `Name: value` for `-H`.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected 'Name: value', got {s:?}"))?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("invalid header name in {s:?}"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(format!("invalid header value in {s:?}"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Parses a positive number of seconds (`1`, `0.5`).
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {s:?}"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("expected a positive number of seconds, got {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a server path: it must start with `/`.
pub fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.contains(['?', '#', ' ']) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "a path starts with '/' and has no query, got {s:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("a\nb\x1b[2J\tc"), "a\\nb\\u{1b}[2J\tc");
        assert_eq!(escape_cut("  hello  ", 3), "hel…");
    }

    #[test]
    fn headers_and_numbers() {
        assert_eq!(
            parse_header("Authorization: Bearer x").unwrap(),
            ("Authorization".to_owned(), "Bearer x".to_owned())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": empty name").is_err());
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("x").is_err());
        assert!(parse_path("/chat").is_ok());
        assert!(parse_path("chat").is_err());
    }

    #[test]
    fn message_formats() {
        assert_eq!(format_message(&Message::text("hi\n")), "< hi\\n");
        assert_eq!(
            format_message(&Message::binary(vec![0u8, 1, 255])),
            "< [binary] 0001ff"
        );
        assert_eq!(
            format_message(&Message::binary(vec![0u8; 65])),
            "< <binary 65 bytes>"
        );
    }
}

/// The client options `connect` and `bench` share: whom TLS trusts, and HTTP/2.
#[derive(Debug, clap::Args)]
pub struct ClientTransport {
    /// Trust this CA certificate (PEM file) for wss:// too.
    #[arg(long, value_name = "PEM")]
    ca: Option<std::path::PathBuf>,
    /// Don't verify the server's certificate (testing only).
    #[arg(long)]
    insecure: bool,
    /// Use HTTP/2 (RFC 8441): wss:// offers ALPN h2 and every WebSocket to the server shares
    /// one connection (falling back to HTTP/1.1 when the server doesn't do it); ws:// uses
    /// cleartext HTTP/2 with prior knowledge (no fall back: the server must speak h2c).
    #[arg(long)]
    http2: bool,
}

impl ClientTransport {
    /// `builder` with these options.
    pub fn apply(
        &self,
        builder: enim_labore_occaecati::ClientBuilder,
    ) -> Result<enim_labore_occaecati::ClientBuilder, CliError> {
        use enim_labore_occaecati::tls::ClientTls;
        let mut tls = ClientTls::new().danger_accept_invalid_certs(self.insecure);
        if let Some(path) = &self.ca {
            let pem = std::fs::read(path)
                .map_err(|e| CliError(format!("--ca {}: {e}", path.display())))?;
            tls = tls
                .add_root_pem(&pem)
                .map_err(|e| CliError(format!("--ca {}: {e}", path.display())))?;
        }
        let mut builder = builder.tls(tls);
        if self.http2 {
            builder = builder.http2(enim_labore_occaecati::http2::Http2Config::with_cleartext());
        }
        Ok(builder)
    }
}
