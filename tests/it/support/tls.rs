//! Self-signed certificates for the TLS tests (rcgen), the files a server is started with, and
//! clients that trust them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::raw::host_port;
use super::TIMEOUT;

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key.
#[derive(Clone)]
pub struct SelfSigned {
    pub cert_pem: String,
    key_pem: String,
    pub der: CertificateDer<'static>,
}

impl SelfSigned {
    /// A new certificate (and key) whose common name is `name`.
    pub fn new(name: &str) -> SelfSigned {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("valid names");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let cert = params.self_signed(&key).expect("a self-signed certificate");
        SelfSigned {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// The certificate and key files a server serves, in a folder of their own.
#[derive(Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The first certificate as a CA file for the clients (`NODE_EXTRA_CA_CERTS`, `ca_file`).
    pub ca: PathBuf,
    /// The first certificate.
    pub certificate: SelfSigned,
    dir: Arc<TempDir>,
}

impl Files {
    /// Writes `certificate` into a new folder.
    pub fn new(certificate: &SelfSigned) -> Files {
        let dir = TempDir::new().expect("temp dir");
        let files = Files {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            ca: dir.path().join("ca.pem"),
            certificate: certificate.clone(),
            dir: Arc::new(dir),
        };
        files.replace(certificate);
        std::fs::write(&files.ca, &certificate.cert_pem).expect("CA file written");
        files
    }

    /// Replaces the key, then the certificate, each by renaming a new file over it (as editors
    /// and certbot do).
    pub fn replace(&self, certificate: &SelfSigned) {
        self.write(&self.key, &certificate.key_pem);
        self.write(&self.cert, &certificate.cert_pem);
    }

    /// Replaces `path` with `text` by a rename.
    pub fn write(&self, path: &Path, text: &str) {
        let new = self.dir.path().join("new.pem");
        std::fs::write(&new, text).expect("new file written");
        std::fs::rename(&new, path).expect("file replaced");
    }
}

/// A client configuration (ring provider) that trusts `certificates` only.
pub fn trusting(certificates: &[&SelfSigned]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate.der.clone()).expect("a valid root");
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[allow(deprecated)] // rustls 0.23.48: ring has no post-quantum key exchange (see src/tls).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS connection to the `host:port` of `url`, trusting what `config` trusts.
pub async fn connect(url: &str, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let stream = TcpStream::connect(host_port(url)).await.expect("connected");
    handshake(stream, config).await
}

/// A TLS handshake for `localhost` over `stream`, trusting what `config` trusts.
pub async fn handshake(stream: TcpStream, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let name = ServerName::try_from("localhost").expect("a valid name");
    tokio::time::timeout(TIMEOUT, TlsConnector::from(config).connect(name, stream))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake")
}

/// The certificate the server at `url` presents to a new connection now.
pub async fn presented(url: &str, config: Arc<ClientConfig>) -> CertificateDer<'static> {
    let stream = connect(url, config).await;
    let (_, session) = stream.get_ref();
    session.peer_certificates().expect("a certificate")[0].clone()
}
