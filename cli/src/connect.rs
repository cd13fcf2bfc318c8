//! `elo connect`: an interactive client like `wscat`, and a scripted one (`-x`, `-w`).

use std::time::Duration;

use clap::Args;
use enim_labore_occaecati::client::ClientStream;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::{ClientBuilder, CloseCode, CloseFrame, Config, Message, WebSocket};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::util::{
    chain, describe_connect_error, escape, format_message, parse_header, parse_seconds, say,
    CliError, CliResult,
};

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The server's URL, such as ws://127.0.0.1:8080/.
    url: String,
    /// A request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// A subprotocol to offer (repeatable, in order of preference).
    #[arg(short = 's', long = "subprotocol", value_name = "PROTOCOL")]
    protocols: Vec<String>,
    /// The Origin header to send.
    #[arg(long)]
    origin: Option<String>,
    /// Send MESSAGE as text instead of reading stdin (repeatable); then wait for replies,
    /// close with 1000 and exit.
    #[arg(short = 'x', long = "execute", value_name = "MESSAGE")]
    execute: Vec<String>,
    /// With -x: how many messages to wait for and print before closing (default: as many
    /// as were sent). Alone: wait for N messages without sending any.
    #[arg(short = 'w', long = "wait", value_name = "N")]
    wait: Option<usize>,
    /// Time allowed for the handshake and, with -x / -w, for the replies.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    timeout: Duration,
    /// Offer permessage-deflate (compression).
    #[arg(long)]
    deflate: bool,
    #[command(flatten)]
    transport: crate::util::ClientTransport,
}

pub async fn run(args: ConnectArgs) -> CliResult<()> {
    let scripted = !args.execute.is_empty() || args.wait.is_some();
    let mut config = Config::default();
    // Interactive sessions show pings, pongs and the server's close frame.
    config.receive_control_frames = !scripted;
    let mut builder = ClientBuilder::new()
        .config(config)
        .handshake_timeout(args.timeout)
        .deflate(args.deflate.then(DeflateConfig::default));
    for (name, value) in &args.headers {
        builder = builder.header(name, value);
    }
    for protocol in &args.protocols {
        builder = builder.protocol(protocol.clone());
    }
    if let Some(origin) = &args.origin {
        builder = builder.origin(origin.clone());
    }
    builder = args.transport.apply(builder)?;
    let (ws, response) = builder
        .connect(&args.url)
        .await
        .map_err(|e| describe_connect_error(&args.url, &e))?;
    let protocol = ws
        .protocol()
        .map(|p| format!(", subprotocol {}", escape(p)))
        .unwrap_or_default();
    let extensions = if ws.extensions().is_empty() {
        String::new()
    } else {
        format!(", {}", escape(ws.extensions()))
    };
    let over = match ws.get_ref() {
        ClientStream::Http2(stream) => format!("HTTP/2 stream {}, ", stream.stream_id()),
        _ => String::new(),
    };
    eprintln!(
        "connected to {} ({over}HTTP {}{protocol}{extensions})",
        args.url,
        response.status().as_u16()
    );
    if scripted {
        scripted_session(ws, &args).await
    } else {
        eprintln!(
            "type a line to send it; /ping [data], /close [code] [reason]; Ctrl-D or Ctrl-C closes"
        );
        interactive(ws).await
    }
}

/// `-x` / `-w`: send, wait for the replies, close with 1000.
async fn scripted_session(mut ws: WebSocket<ClientStream>, args: &ConnectArgs) -> CliResult<()> {
    let wanted = args.wait.unwrap_or(args.execute.len());
    for message in &args.execute {
        ws.feed(message.as_str())
            .await
            .map_err(|e| CliError(format!("cannot send: {}", chain(&e))))?;
    }
    ws.flush()
        .await
        .map_err(|e| CliError(format!("cannot send: {}", chain(&e))))?;
    let mut received = 0;
    let waiting = async {
        while received < wanted {
            match ws.recv().await {
                Ok(Some(message)) => {
                    say(format_args!("{}", format_message(&message)));
                    received += 1;
                }
                Ok(None) => return Err(closed_early(ws.close_frame(), received, wanted)),
                Err(e) => return Err(CliError(format!("connection failed: {}", chain(&e)))),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(args.timeout, waiting).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(CliError(format!(
                "timed out after {:?} waiting for replies ({received} of {wanted} received)",
                args.timeout
            )))
        }
    }
    match ws.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))).await {
        Ok(()) => Ok(()),
        // The server may drop the connection right after our close frame: that's fine.
        Err(e) if e.is_closed() => Ok(()),
        Err(e) => Err(CliError(format!("close failed: {}", chain(&e)))),
    }
}

fn closed_early(frame: Option<&CloseFrame>, received: usize, wanted: usize) -> CliError {
    let how = match frame {
        Some(frame) => format!("{} {}", frame.code.as_u16(), escape(frame.reason.as_str())),
        None => "without a status code".to_owned(),
    };
    CliError(format!(
        "server closed the connection ({}) after {received} of {wanted} replies",
        how.trim_end()
    ))
}

/// Reads stdin lines and sends them; prints what arrives.
async fn interactive(mut ws: WebSocket<ClientStream>) -> CliResult<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            // Both branches are cancel-safe: `next_line` and `recv` lose nothing when the
            // other one wins.
            line = lines.next_line() => {
                let line = line.map_err(|e| CliError(format!("cannot read stdin: {e}")))?;
                let Some(line) = line else {
                    return close(&mut ws, CloseFrame::new(CloseCode::NORMAL, "")).await;
                };
                match parse_command(&line) {
                    Ok(Command::Send(text)) => send(&mut ws, Message::text(text)).await?,
                    Ok(Command::Ping(data)) => send(&mut ws, Message::Ping(data.into())).await?,
                    Ok(Command::Close(frame)) => return close(&mut ws, frame).await,
                    Err(message) => eprintln!("elo: {message}"),
                }
            }
            message = ws.recv() => match message {
                Ok(Some(message)) => say(format_args!("{}", format_message(&message))),
                Ok(None) => {
                    eprintln!("{}", describe_close(ws.close_frame(), "server"));
                    return Ok(());
                }
                Err(e) => return Err(CliError(format!("connection failed: {}", chain(&e)))),
            },
            _ = tokio::signal::ctrl_c() => {
                return close(&mut ws, CloseFrame::new(CloseCode::NORMAL, "")).await;
            }
        }
    }
}

async fn send(ws: &mut WebSocket<ClientStream>, message: Message) -> CliResult<()> {
    ws.send(message)
        .await
        .map_err(|e| CliError(format!("cannot send: {}", chain(&e))))
}

async fn close(ws: &mut WebSocket<ClientStream>, frame: CloseFrame) -> CliResult<()> {
    match ws.close(Some(frame)).await {
        Ok(()) => {
            eprintln!("{}", describe_close(ws.close_frame(), "closed:"));
            Ok(())
        }
        Err(e) if e.is_closed() => Ok(()),
        Err(e) => Err(CliError(format!("close failed: {}", chain(&e)))),
    }
}

fn describe_close(frame: Option<&CloseFrame>, who: &str) -> String {
    let who = if who == "server" {
        "the server closed the connection:"
    } else {
        who
    };
    match frame {
        Some(frame) if frame.reason.is_empty() => format!("{who} {}", frame.code.as_u16()),
        Some(frame) => format!(
            "{who} {} {}",
            frame.code.as_u16(),
            escape(frame.reason.as_str())
        ),
        None => format!("{who} no status code"),
    }
}

#[derive(Debug, PartialEq)]
enum Command {
    Send(String),
    Ping(Vec<u8>),
    Close(CloseFrame),
}

/// `/ping [data]`, `/close [code] [reason]`; every other line is sent as text.
fn parse_command(line: &str) -> Result<Command, String> {
    let (word, rest) = match line.split_once(' ') {
        Some((word, rest)) => (word, rest),
        None => (line, ""),
    };
    match word {
        "/ping" => {
            if rest.len() > 125 {
                return Err("a ping carries at most 125 bytes".to_owned());
            }
            Ok(Command::Ping(rest.as_bytes().to_vec()))
        }
        "/close" => {
            let rest = rest.trim_start();
            let (code, reason) = match rest.split_once(' ') {
                Some((code, reason)) => (code, reason),
                None => (rest, ""),
            };
            let code = if code.is_empty() {
                CloseCode::NORMAL
            } else {
                let code: u16 = code
                    .parse()
                    .map_err(|_| format!("not a close code: {code:?}"))?;
                CloseCode::new(code)
            };
            if !code.is_sendable() {
                return Err(format!("close code {} may not be sent", code.as_u16()));
            }
            if reason.len() > 123 {
                return Err("a close reason has at most 123 bytes".to_owned());
            }
            Ok(Command::Close(CloseFrame::new(code, reason)))
        }
        _ => Ok(Command::Send(line.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_command("hello"), Ok(Command::Send("hello".into())));
        assert_eq!(parse_command("/ping"), Ok(Command::Ping(vec![])));
        assert_eq!(
            parse_command("/ping abc"),
            Ok(Command::Ping(b"abc".to_vec()))
        );
        assert_eq!(
            parse_command("/close"),
            Ok(Command::Close(CloseFrame::new(1000u16, "")))
        );
        assert_eq!(
            parse_command("/close 4000 see you"),
            Ok(Command::Close(CloseFrame::new(4000u16, "see you")))
        );
        assert!(parse_command("/close 1005").is_err());
        assert!(parse_command("/close x").is_err());
        assert_eq!(parse_command("/other"), Ok(Command::Send("/other".into())));
    }
}
