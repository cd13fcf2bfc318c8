//! The integration tests, one module per file beside this one, in one test binary: each
//! binary of its own compiled and linked the library's generic code again, which was most of
//! the test build. Every test talks to real peers over loopback, except `guide`, which checks
//! the guide against the code; `cargo test --test integration MODULE::` (or
//! `cargo nextest run -E 'test(/^MODULE::/)'`) runs one file.

mod common;
mod support;

mod browser;
mod byte_stream;
mod cancel_safety;
mod client_options;
mod client_server;
mod config_checks;
mod deflate;
mod events;
mod examples;
mod fanout;
mod fragments;
mod fuzz_inputs;
mod guide;
mod heartbeat;
#[cfg(feature = "http2")]
mod http2;
#[cfg(all(feature = "http2", feature = "hyper"))]
mod http2_browser;
#[cfg(feature = "axum")]
mod hyper_axum;
mod interop_deflate;
mod interop_node;
mod known_attacks;
mod limits;
mod pause;
mod proxy;
mod server_handles;
mod server_hooks;
mod tls;
#[cfg(unix)]
mod unix_socket;
