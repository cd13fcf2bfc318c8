//! Helpers for tests that run the example binaries (`target/<profile>/examples/NAME`) as
//! child processes: build them if needed, start them, read the URL they print, and kill them
//! when the test ends.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::Duration;

/// How long a test waits for an example's next output line.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// `target/<profile>/`, found from this test binary's path (`target/<profile>/deps/NAME-HASH`),
/// so `CARGO_TARGET_DIR` and `--release` are followed.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// Builds the examples once per test binary. `cargo test` already builds them (examples are
/// compiled by default), so this is a no-op then; it matters for `cargo test --test NAME`,
/// which builds only that test, and keeps the binaries from being stale after an edit.
fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        // scripts/test.sh builds every target first; under nextest each test is a process of
        // its own, and each would ask cargo again.
        if std::env::var_os("ELO_EXAMPLES_BUILT").is_some() {
            return;
        }
        let Ok(cargo) = std::env::var("CARGO") else {
            return; // not run by cargo: use the binaries that are there
        };
        let dir = profile_dir();
        let mut command = Command::new(cargo);
        command
            .args([
                "build",
                "--quiet",
                "--examples",
                "--all-features",
                "--target-dir",
            ])
            .arg(dir.parent().expect("target dir"))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                command.arg("--release");
            }
            Some(profile) => {
                command.args(["--profile", profile]);
            }
            None => {}
        }
        let status = command.status().expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
    });
}

/// The path of example `name`'s binary, built if needed.
pub fn example(name: &str) -> PathBuf {
    ensure_built();
    let path = profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A running example, killed when dropped.
pub struct Running {
    pub child: Child,
    /// The URL from its first stdout line (`listening on URL`).
    pub url: String,
    /// Its stdout lines, read by a thread so a silent example can't hang a test.
    lines: Receiver<String>,
}

impl Running {
    /// The next stdout line (without the newline); panics at EOF or after 30 s.
    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no output from the example in time"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the example ended its output"),
        }
    }

    /// Reads stdout lines until one equals `expected` (lines before it are ignored).
    pub fn wait_for_line(&mut self, expected: &str) {
        while self.line() != expected {}
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts example `name` with `args`, its stdout piped (`url` is empty).
pub fn spawn(name: &str, args: &[&str]) -> Running {
    let mut child = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        url: String::new(),
        lines,
    }
}

/// Starts server example `name` with `args` and reads the URL of its first line,
/// `listening on URL`.
pub fn start(name: &str, args: &[&str]) -> Running {
    let mut running = spawn(name, args);
    let first = running.line();
    running.url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{name} printed {first:?} first"))
        .to_owned();
    running
}

/// Runs example `name` to completion and answers its output; past `limit` it is killed (the
/// test then fails on its exit status instead of hanging).
pub fn run(name: &str, args: &[&str], limit: Duration) -> Output {
    run_command(Command::new(example(name)).args(args), limit)
}

/// Runs `command` with captured output, killing it past `limit`.
pub fn run_command(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait for the killed child");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
