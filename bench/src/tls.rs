//! `--tls`: one self-signed certificate for `localhost`, made at start-up with rcgen, written
//! to a temporary folder for the server processes, and trusted by the load generator. Ours
//! terminates TLS with the library's `ServerTls`, the others with tokio-rustls, on one rustls
//! configuration (ring).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// The bench's certificate: its files and a client configuration that trusts it.
pub struct Certificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    client: Arc<rustls::ClientConfig>,
}

impl Certificate {
    pub fn generate() -> Result<Certificate, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let dir = std::env::temp_dir().join(format!("elo-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let cert_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&cert_file, cert.pem()).map_err(|e| e.to_string())?;
        std::fs::write(&key_file, key.serialize_pem()).map_err(|e| e.to_string())?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Certificate {
            cert_file,
            key_file,
            client: Arc::new(client),
        })
    }

    pub async fn connect(
        &self,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("valid name");
        tokio_rustls::TlsConnector::from(self.client.clone())
            .connect(name, tcp)
            .await
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        if let Some(dir) = self.cert_file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
