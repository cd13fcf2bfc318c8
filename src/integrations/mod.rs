//! WebSockets inside other HTTP servers, behind cargo features: [`hyper`] (feature `hyper`)
//! upgrades requests of a hyper 1 server, [`axum`] (feature `axum`) is an extractor on top.
//!
//! Both run the standalone server's decision path (path filter, RFC 6455 validation, the
//! verification hook, subprotocol choice, permessage-deflate negotiation): a
//! [`ServerBuilder`](crate::server::ServerBuilder) holds the options for either.

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "hyper")]
pub mod hyper;
