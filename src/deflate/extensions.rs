//! Parsing `Sec-WebSocket-Extensions` (RFC 6455 §9.1, RFC 7230 for tokens and quoted strings).
//!
//! One left-to-right pass over each header value, no backtracking, so a hostile header costs
//! linear time. Several header lines are parsed in order, as if joined by commas.

/// One extension offer or answer: a name and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension name, such as `permessage-deflate`.
    pub name: String,
    /// Parameters with their values (unquoted), in order.
    pub params: Vec<(String, Option<String>)>,
}

/// The header is not a valid extension list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidExtensions;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn token(&mut self) -> Result<String, InvalidExtensions> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(InvalidExtensions);
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn quoted(&mut self) -> Result<String, InvalidExtensions> {
        // Opening quote already seen.
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(InvalidExtensions),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let escaped = self.s.get(self.pos + 1).copied().ok_or(InvalidExtensions)?;
                    out.push(escaped);
                    self.pos += 2;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        // RFC 6455 §9.1: a quoted value must itself be a token.
        if out.is_empty() || !out.iter().all(|&b| is_tchar(b)) {
            return Err(InvalidExtensions);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Parses every value of the header, in order.
///
/// # Errors
/// Any syntax error: a missing name, an empty element, an unterminated quoted string, a
/// quoted value that isn't a token.
pub fn parse<'a, I>(values: I) -> Result<Vec<Extension>, InvalidExtensions>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut out = Vec::new();
    for value in values {
        let mut c = Cursor { s: value, pos: 0 };
        loop {
            c.skip_ws();
            let name = c.token()?;
            let mut params = Vec::new();
            c.skip_ws();
            while c.peek() == Some(b';') {
                c.pos += 1;
                c.skip_ws();
                let param = c.token()?;
                c.skip_ws();
                let mut value = None;
                if c.peek() == Some(b'=') {
                    c.pos += 1;
                    c.skip_ws();
                    value = Some(if c.peek() == Some(b'"') {
                        c.quoted()?
                    } else {
                        c.token()?
                    });
                    c.skip_ws();
                }
                params.push((param, value));
            }
            out.push(Extension { name, params });
            match c.peek() {
                None => break,
                Some(b',') => c.pos += 1,
                Some(_) => return Err(InvalidExtensions),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Result<Vec<Extension>, InvalidExtensions> {
        parse([s.as_bytes()])
    }

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> Extension {
        Extension {
            name: name.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn offers_and_params() {
        assert_eq!(
            one("permessage-deflate; client_max_window_bits, permessage-deflate;server_max_window_bits=\"10\" ; x-foo").unwrap(),
            [
                ext("permessage-deflate", &[("client_max_window_bits", None)]),
                ext("permessage-deflate", &[("server_max_window_bits", Some("10")), ("x-foo", None)]),
            ]
        );
        assert_eq!(
            parse(["a".as_bytes(), "b; c=1".as_bytes()]).unwrap(),
            [ext("a", &[]), ext("b", &[("c", Some("1"))])]
        );
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            ",",
            "a,",
            "a;",
            "a; =1",
            "a; b=",
            "a; b=\"1",
            "a; b=\"\"",
            "a; b=\"1 2\"",
            "a b",
            "a; b=1 2",
            "a;;b",
        ] {
            assert_eq!(one(bad), Err(InvalidExtensions), "{bad:?}");
        }
    }

    #[test]
    fn long_hostile_header_is_linear() {
        let header = "a; b=\"c\", ".repeat(100_000) + "a; b=\"";
        let start = std::time::Instant::now();
        assert!(one(&header).is_err());
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
