//! Runs every case of an Autobahn fuzzingserver with this crate's client, echoing each
//! message, then asks the fuzzingserver to write its reports. permessage-deflate is offered
//! for every case, in the form each case needs.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 AGENT [--http2]
//! ```
//!
//! `--http2` makes every connection a stream of cleartext HTTP/2 (RFC 8441, prior knowledge),
//! for running the cases through an HTTP/2 bridge.

use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::http2::Http2Config;
use enim_labore_occaecati::{ClientBuilder, Config};

/// The client every connection uses: HTTP/1.1, or cleartext HTTP/2 with `--http2`.
fn client() -> ClientBuilder {
    let builder = ClientBuilder::new();
    if !std::env::args().any(|a| a == "--http2") {
        return builder;
    }
    builder.http2(Http2Config::with_cleartext())
}

async fn case_count(base: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let (mut ws, _) = client().connect(&format!("{base}/getCaseCount")).await?;
    let count = match ws.recv().await? {
        Some(message) => message.as_text().unwrap_or("0").trim().parse()?,
        None => 0,
    };
    let _ = ws.close(None).await;
    Ok(count)
}

/// The case's id, such as "13.5.1", from the fuzzingserver.
async fn case_id(base: &str, case: u32) -> Option<String> {
    let (mut ws, _) = client()
        .connect(&format!("{base}/getCaseInfo?case={case}"))
        .await
        .ok()?;
    let info = ws.recv().await.ok()??;
    let _ = ws.close(None).await;
    let text = info.as_text()?;
    // {"id": "13.5.1", "description": "..."}: no JSON parser needed for one field.
    let rest = &text[text.find("\"id\"")? + 4..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(rest[start..end].to_owned())
}

/// The permessage-deflate offer a case needs: Autobahn's 13.2, 13.5 and 13.6 cases accept only
/// offers that include `client_no_context_takeover`; everything else gets our default offer. A
/// runner that doesn't tell the case's id (kosoku has no `/getCaseInfo`) gets the offer with
/// `client_no_context_takeover`, which every case accepts.
fn deflate_offer(id: Option<&str>) -> DeflateConfig {
    let mut deflate = DeflateConfig::default();
    deflate.client_no_context_takeover = match id {
        Some(id) => ["13.2.", "13.5.", "13.6."]
            .iter()
            .any(|p| id.starts_with(p)),
        None => true,
    };
    deflate
}

async fn run_case(base: &str, case: u32, agent: &str) -> enim_labore_occaecati::Result<()> {
    let mut config = Config::default();
    config.max_message_size = 64 << 20;
    let id = case_id(base, case).await;
    let client = client()
        .config(config)
        .deflate(Some(deflate_offer(id.as_deref())));
    let (mut ws, _) = client
        .connect(&format!("{base}/runCase?case={case}&agent={agent}"))
        .await?;
    while let Some(message) = ws.recv().await? {
        ws.feed(message).await?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--http2");
    let base = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let agent = args
        .next()
        .unwrap_or_else(|| "enim-labore-occaecati".to_owned());
    let count = case_count(&base).await?;
    eprintln!("running {count} cases against {base} as {agent}");
    for case in 1..=count {
        // Errors are the expected outcome of many cases (the peer breaks the protocol on
        // purpose); the fuzzingserver judges the behaviour.
        if let Err(error) = run_case(&base, case, &agent).await {
            eprintln!("case {case}: {error}");
        }
    }
    let (mut ws, _) = client()
        .connect(&format!("{base}/updateReports?agent={agent}"))
        .await?;
    // Some runners drop the connection without a close frame once the reports are written.
    loop {
        match ws.recv().await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(error) if error.is_closed() => break,
            Err(error) => return Err(error.into()),
        }
    }
    eprintln!("reports updated");
    Ok(())
}
