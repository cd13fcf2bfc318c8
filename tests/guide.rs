//! `docs/guide.md` against the code: every variant of the public error enums, every field of
//! the option structs and every method of the builders and of `WebSocket` must appear in its
//! section of the guide. The names are read from the source, so a new one fails this test
//! until the guide says what it does.

use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The text of the `{` … `}` block that follows `opening` in `source`.
fn block<'a>(source: &'a str, opening: &str) -> &'a str {
    let start = source
        .find(opening)
        .unwrap_or_else(|| panic!("`{opening}` not found"));
    let body = &source[start..];
    let open = body.find('{').expect("a block");
    let mut depth = 0;
    for (i, c) in body[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &body[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced block after `{opening}`")
}

/// Identifiers that start a line at the block's top level, after attributes and doc comments:
/// enum variants, `pub` fields or `pub fn` names.
fn members(block: &str, what: Member) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0i32;
    for line in block.lines() {
        let trimmed = line.trim();
        if depth == 0 && !trimmed.starts_with("//") && !trimmed.starts_with('#') {
            let rest = match what {
                Member::Variant => Some(trimmed),
                Member::Field => trimmed.strip_prefix("pub "),
                Member::Method => trimmed
                    .strip_prefix("pub async fn ")
                    .or_else(|| trimmed.strip_prefix("pub fn "))
                    .or_else(|| trimmed.strip_prefix("pub const fn ")),
            };
            if let Some(rest) = rest {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let is_name = name.chars().next().is_some_and(|c| c.is_alphabetic());
                let fits = match what {
                    Member::Variant => name.starts_with(|c: char| c.is_uppercase()),
                    Member::Field => rest[name.len()..].starts_with(':'),
                    Member::Method => true,
                };
                if is_name && fits {
                    names.push(name);
                }
            }
        }
        depth += line.matches(['{', '(', '[']).count() as i32;
        depth -= line.matches(['}', ')', ']']).count() as i32;
    }
    names
}

#[derive(Clone, Copy)]
enum Member {
    Variant,
    Field,
    Method,
}

/// The guide's section that starts with the heading `heading`, up to the next `## `.
fn section<'a>(guide: &'a str, heading: &str) -> &'a str {
    let start = guide
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("guide section `{heading}` not found"));
    let body = &guide[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// Each name must appear in `text` in backticks, alone or followed by `(` or `::`.
fn missing(names: &[String], text: &str) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            !["`", "(", "::", "`,", " "]
                .iter()
                .any(|after| text.contains(&format!("`{name}{after}")))
        })
        .cloned()
        .collect()
}

struct Check {
    file: &'static str,
    opening: &'static str,
    what: Member,
    section: &'static str,
    /// Items the guide need not list: receivers' plumbing, not options.
    skip: &'static [&'static str],
}

const CHECKS: &[Check] = &[
    Check {
        file: "src/error.rs",
        opening: "pub enum ErrorKind",
        what: Member::Variant,
        section: "Errors",
        skip: &[],
    },
    Check {
        file: "src/error.rs",
        opening: "pub enum HandshakeError",
        what: Member::Variant,
        section: "Errors",
        skip: &[],
    },
    Check {
        file: "src/error.rs",
        opening: "pub enum ProxyFailure",
        what: Member::Variant,
        section: "Client",
        skip: &[],
    },
    Check {
        file: "src/proto/error.rs",
        opening: "pub enum ProtocolError",
        what: Member::Variant,
        section: "Errors",
        skip: &[],
    },
    Check {
        file: "src/proto/error.rs",
        opening: "pub enum SendError",
        what: Member::Variant,
        section: "Errors",
        skip: &[],
    },
    Check {
        file: "src/proto/error.rs",
        opening: "pub enum Failure",
        what: Member::Variant,
        section: "Errors",
        skip: &[],
    },
    Check {
        file: "src/config.rs",
        opening: "pub struct Config",
        what: Member::Field,
        section: "Options: `Config`",
        skip: &[],
    },
    Check {
        file: "src/config.rs",
        opening: "pub struct HandshakeLimits",
        what: Member::Field,
        section: "Handshake limits",
        skip: &[],
    },
    Check {
        file: "src/deflate/mod.rs",
        opening: "pub struct DeflateConfig",
        what: Member::Field,
        section: "Compression",
        skip: &[],
    },
    Check {
        file: "src/client/mod.rs",
        opening: "impl ClientBuilder",
        what: Member::Method,
        section: "Client",
        skip: &["new"],
    },
    Check {
        file: "src/server/mod.rs",
        opening: "impl ServerBuilder",
        what: Member::Method,
        section: "Server",
        skip: &["new"],
    },
    Check {
        file: "src/server/mod.rs",
        opening: "impl ServerHandle",
        what: Member::Method,
        section: "Server",
        skip: &[],
    },
    Check {
        file: "src/io/websocket.rs",
        opening: "impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S>",
        what: Member::Method,
        section: "The connection",
        skip: &[],
    },
];

#[test]
fn guide_lists_every_public_option_and_error() {
    let guide = read("docs/guide.md");
    let mut report = Vec::new();
    for check in CHECKS {
        let source = read(check.file);
        let names: Vec<String> = members(block(&source, check.opening), check.what)
            .into_iter()
            .filter(|name| !check.skip.contains(&name.as_str()))
            .collect();
        assert!(
            !names.is_empty(),
            "nothing read from `{}` in {}",
            check.opening,
            check.file
        );
        let absent = missing(&names, section(&guide, check.section));
        if !absent.is_empty() {
            report.push(format!(
                "`{}` ({}): not in the guide's \"{}\" section: {}",
                check.opening,
                check.file,
                check.section,
                absent.join(", ")
            ));
        }
    }
    assert!(
        report.is_empty(),
        "docs/guide.md is out of date:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_reader_finds_what_it_should() {
    let source =
        "pub enum E {\n    /// doc\n    A,\n    B(u16),\n    #[doc(hidden)]\n    C { x: u8 },\n}";
    assert_eq!(
        members(block(source, "pub enum E"), Member::Variant),
        ["A", "B", "C"]
    );
    let source = "pub struct S {\n    pub a: u8,\n    b: u8,\n    pub c: Option<(u8, u8)>,\n}";
    assert_eq!(
        members(block(source, "pub struct S"), Member::Field),
        ["a", "c"]
    );
    let source = "impl T {\n    pub fn a(&self) {\n        if x { pub fn no() {} }\n    }\n    fn b() {}\n    pub async fn c() {}\n}";
    assert_eq!(members(block(source, "impl T"), Member::Method), ["a", "c"]);
    assert_eq!(missing(&["a".into(), "b".into()], "x `a(y)` z"), ["b"]);
}
