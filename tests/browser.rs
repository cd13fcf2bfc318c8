//! Drives the `browser` example with headless Chromium: the page served on `/` connects to
//! `/ws` with the browser's native `WebSocket`, sends a message and shows the echo. The DOM
//! Chromium dumps must hold the echo, and the server must have printed the message.
//!
//! Without `/usr/bin/chromium` the test is skipped with a message, except under CI (`CI` set),
//! where it fails: `scripts/test.sh` installs Chromium.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn browser_page_round_trips_through_the_server() {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{CHROMIUM} is missing under CI (scripts/test.sh installs it)");
        }
        eprintln!("skipped: {CHROMIUM} is missing (apt-get install chromium)");
        return;
    }
    let mut server = support::start("browser", &["127.0.0.1:0"]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );

    let profile = std::env::temp_dir().join(format!("elo-chromium-{}", std::process::id()));
    let output = support::run_command(
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                // Virtual time runs the page's async work (the socket's events) before the dump.
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(&server.url),
        Duration::from_secs(60),
    );
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dom.contains("<li>echo: hello from the browser</li>"),
        "no echo in the DOM:\n{dom}"
    );
    // The server saw the message too.
    server.wait_for_line("received: hello from the browser");
}
