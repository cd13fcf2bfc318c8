//! TLS on rustls (feature `tls`, on by default): the client's settings for `wss://` URLs
//! ([`ClientTls`]) and a TLS server's certificate ([`ServerTls`]).
//!
//! Certificates are verified against the webpki roots (Mozilla's list, compiled in), the
//! operating system's roots too with the `native-roots` feature, and any roots added with
//! [`ClientTls::add_root_pem`]. A failed TLS handshake is an [`ErrorKind::Tls`](crate::ErrorKind::Tls) error whose
//! [`Error::tls_failure`](crate::Error::tls_failure) names the cause (unknown issuer, name mismatch, expired, …).
//!
//! ```no_run
//! use enim_labore_occaecati::{tls::ClientTls, ClientBuilder};
//!
//! # async fn run() -> enim_labore_occaecati::Result<()> {
//! let tls = ClientTls::new().add_root_pem(&std::fs::read("ca.pem")?)?;
//! let (ws, _) = ClientBuilder::new().tls(tls).connect("wss://localhost:8443/").await?;
//! # Ok(()) }
//! ```

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};

mod server_stream;
#[cfg(test)]
mod tests;

pub use rustls;
pub use server_stream::ServerTlsStream;

/// Why a TLS handshake failed, in the terms a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The certificate chain doesn't lead to a trusted root (self-signed, private CA not added).
    UnknownIssuer,
    /// The certificate is not valid for the host name connected to.
    NameMismatch,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The certificate was revoked.
    Revoked,
    /// Another certificate problem (bad signature, bad encoding, wrong usage).
    BadCertificate(String),
    /// The peer sent a TLS alert (for example, it refused our client certificate).
    Alert(String),
    /// Any other TLS error (the peer doesn't speak TLS, no shared cipher suite, …).
    Other(String),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::UnknownIssuer => f.write_str("certificate signed by an unknown issuer"),
            TlsFailure::NameMismatch => f.write_str("certificate not valid for this host name"),
            TlsFailure::Expired => f.write_str("certificate expired"),
            TlsFailure::NotYetValid => f.write_str("certificate not valid yet"),
            TlsFailure::Revoked => f.write_str("certificate revoked"),
            TlsFailure::BadCertificate(what) => write!(f, "bad certificate: {what}"),
            TlsFailure::Alert(alert) => write!(f, "peer sent TLS alert {alert}"),
            TlsFailure::Other(what) => f.write_str(what),
        }
    }
}

impl TlsFailure {
    fn from_rustls(error: &rustls::Error) -> TlsFailure {
        match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsFailure::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsFailure::NotYetValid
                }
                CertificateError::Revoked => TlsFailure::Revoked,
                other => TlsFailure::BadCertificate(format!("{other:?}")),
            },
            rustls::Error::AlertReceived(alert) => TlsFailure::Alert(format!("{alert:?}")),
            other => TlsFailure::Other(other.to_string()),
        }
    }
}

/// Turns an I/O error from a TLS handshake into a TLS error when rustls is behind it.
pub(crate) fn handshake_error(error: std::io::Error) -> Error {
    let failure = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(TlsFailure::from_rustls);
    match failure {
        Some(failure) => Error::tls(failure).with_source(error),
        None if error.kind() == std::io::ErrorKind::UnexpectedEof => Error::tls(TlsFailure::Other(
            "the peer closed the connection during the TLS handshake".into(),
        ))
        .with_source(error),
        None => Error::from(error),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid_input(format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid_input("no certificate found in the PEM data"));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::invalid_input(format!("invalid PEM private key: {e}")))
}

/// The client's TLS settings for `wss://` URLs.
///
/// Cloning is cheap once built: the rustls configuration is made once and shared.
#[derive(Clone, Default)]
pub struct ClientTls {
    extra_roots: Vec<CertificateDer<'static>>,
    skip_webpki_roots: bool,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    accept_invalid_certs: bool,
    server_name: Option<String>,
    custom: Option<Arc<rustls::ClientConfig>>,
    built: Arc<OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("extra_roots", &self.extra_roots.len())
            .field("client_certificate", &self.identity.is_some())
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Verifies servers against the webpki roots (and the system's, with `native-roots`).
    pub fn new() -> ClientTls {
        ClientTls::default()
    }

    /// Uses a rustls configuration built by the caller as it is (roots, client certificates,
    /// ALPN, key logging, …).
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> ClientTls {
        ClientTls {
            custom: Some(config),
            ..ClientTls::default()
        }
    }

    /// Trusts the certificates in `pem` (one or more `CERTIFICATE` blocks) as roots too.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when `pem` holds no valid certificate.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<ClientTls> {
        self.extra_roots.extend(parse_certs(pem)?);
        self.reset();
        Ok(self)
    }

    /// Trusts only the roots added with [`add_root_pem`](ClientTls::add_root_pem), not the
    /// built-in ones (for a private CA).
    pub fn only_added_roots(mut self) -> ClientTls {
        self.skip_webpki_roots = true;
        self.reset();
        self
    }

    /// Presents this certificate chain and key when the server asks for a client certificate.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the PEM data holds no certificate or no key.
    pub fn client_certificate_pem(mut self, chain: &[u8], key: &[u8]) -> Result<ClientTls> {
        self.identity = Some((parse_certs(chain)?, Arc::new(parse_key(key)?)));
        self.reset();
        Ok(self)
    }

    /// **For testing only**: accepts any server certificate (self-signed, expired, for another
    /// name). Encryption stays on; authentication of the server is gone.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> ClientTls {
        self.accept_invalid_certs = accept;
        self.reset();
        self
    }

    /// The name sent in SNI and checked against the certificate, instead of the URL's host.
    pub fn server_name(mut self, name: impl Into<String>) -> ClientTls {
        self.server_name = Some(name.into());
        self
    }

    fn reset(&mut self) {
        self.built = Arc::default();
    }

    fn config(&self) -> Result<Arc<rustls::ClientConfig>> {
        if let Some(custom) = &self.custom {
            return Ok(custom.clone());
        }
        self.built
            .get_or_init(|| self.build().map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::invalid_input)
    }

    fn build(&self) -> Result<Arc<rustls::ClientConfig>> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid_input(e.to_string()))?;
        let builder = if self.accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
        } else {
            let mut roots = RootCertStore::empty();
            if !self.skip_webpki_roots {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                #[cfg(feature = "native-roots")]
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
            for cert in &self.extra_roots {
                roots
                    .add(cert.clone())
                    .map_err(|e| Error::invalid_input(format!("invalid root certificate: {e}")))?;
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| Error::invalid_input(format!("invalid client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Runs the TLS handshake over `stream` for `host` (or the configured server name),
    /// offering ALPN `h2` before `http/1.1` when `offer_h2` (a new HTTP/2 connection: its
    /// configuration is copied for that, which the pool makes rare).
    pub(crate) async fn connect<S>(
        &self,
        host: &str,
        stream: S,
        offer_h2: bool,
    ) -> Result<tokio_rustls::client::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut config = self.config()?;
        if offer_h2 {
            let mut with_h2 = (*config).clone();
            with_h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            config = Arc::new(with_h2);
        }
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| Error::invalid_input(format!("invalid TLS server name: {name:?}")))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(handshake_error)
    }
}

/// The verifier behind [`ClientTls::danger_accept_invalid_certs`]: signatures are still
/// checked (so the handshake is a real one), the certificate itself is not.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS server's certificate and settings.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    /// Made by `from_pem`, whose ALPN list (`http/1.1`) a server with HTTP/2 extends.
    default_alpn: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A certificate chain and private key in PEM.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the PEM data is invalid or the key doesn't match.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<ServerTls> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid_input(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(parse_certs(chain)?, parse_key(key)?)
            .map_err(|e| Error::invalid_input(format!("invalid certificate or key: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: server_stream::noting_server_names(Arc::new(config)),
            default_alpn: true,
        })
    }

    /// A certificate chain and private key from PEM files.
    ///
    /// # Errors
    /// A file can't be read, or as [`from_pem`](ServerTls::from_pem).
    pub fn from_pem_files(
        chain: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<ServerTls> {
        ServerTls::from_pem(&std::fs::read(chain)?, &std::fs::read(key)?)
    }

    /// A rustls configuration built by the caller (client authentication, SNI resolver, …).
    /// Its ALPN list is used as it is: list `h2` in it for WebSockets over HTTP/2.
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> ServerTls {
        ServerTls {
            config: server_stream::noting_server_names(config),
            default_alpn: false,
        }
    }

    /// The rustls configuration, for a TLS stack of your own (tokio-rustls) on the same
    /// certificate and settings.
    pub fn rustls_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// The protocols offered by ALPN, in order of preference: `["h2", "http/1.1"]` for an HTTP
    /// server of your own (hyper) that serves HTTP/2 and HTTP/1.1 on one port. A `Server` sets
    /// this itself.
    pub fn alpn_protocols<P: AsRef<[u8]>>(
        self,
        protocols: impl IntoIterator<Item = P>,
    ) -> ServerTls {
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        ServerTls {
            config: Arc::new(config),
            default_alpn: false,
        }
    }

    /// For a server with HTTP/2 off: `h2` taken out of the ALPN list, which would otherwise
    /// agree on a protocol the server won't speak.
    #[cfg(feature = "http2")]
    pub(crate) fn without_h2(self) -> ServerTls {
        if !self.config.alpn_protocols.iter().any(|p| p == b"h2") {
            return self;
        }
        let mut config = (*self.config).clone();
        config.alpn_protocols.retain(|p| p != b"h2");
        ServerTls {
            config: Arc::new(config),
            default_alpn: self.default_alpn,
        }
    }

    /// For a server with HTTP/2 on: `h2` offered before `http/1.1` when the ALPN list is
    /// `from_pem`'s (a `from_rustls` configuration keeps its own). `ServerTls` used on its own
    /// (with `accept`, or under hyper) offers `http/1.1` only.
    #[cfg(feature = "http2")]
    pub(crate) fn with_h2(self) -> ServerTls {
        if !self.default_alpn {
            return self;
        }
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        ServerTls {
            config: Arc::new(config),
            default_alpn: false,
        }
    }

    /// Runs the server side of the TLS handshake over `stream`.
    ///
    /// # Errors
    /// An [`ErrorKind::Tls`](crate::ErrorKind::Tls) error naming the failure, or an I/O error.
    pub async fn accept<S>(&self, stream: S) -> Result<ServerTlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        ServerTlsStream::accept(stream, self.config.clone())
            .await
            .map_err(handshake_error)
    }
}
