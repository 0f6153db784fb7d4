//! What an outbound `wss://` connection trusts: the platform's root certificates, read once per
//! process with `rustls-native-certs` (the system store on Windows and macOS, the distribution's
//! bundle on Linux, or `SSL_CERT_FILE`/`SSL_CERT_DIR` when set), plus the certificates of the
//! connection's own `ca_file`, if any.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, ClientConfig, RootCertStore};

use super::{certificates, provider, read, TlsError};

/// A client configuration trusting the platform's roots and those in `ca_file`. It offers
/// `http/1.1` only: a WebSocket upgrade needs it.
pub fn config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(platform_roots().iter().cloned());
    if let Some(path) = ca_file {
        for certificate in certificates(path, &read(path)?)? {
            roots.add(certificate).map_err(|source| TlsError::Trust {
                path: path.to_owned(),
                source,
            })?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The platform's root certificates, loaded on first use. Certificates that cannot be read
/// are skipped with a warning; none at all leaves only the connections' `ca_file`s.
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            log::warn!("outbound: a platform root certificate cannot be read: {error}");
        }
        if loaded.certs.is_empty() {
            log::warn!(
                "outbound: no platform root certificates found; wss:// connections trust only \
                 their ca_file"
            );
        }
        loaded.certs
    })
}

/// A failed TLS handshake, as a connection's status says it: what went wrong and what to do.
pub fn explain(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate not trusted: the server's certificate is not issued by a certificate \
             authority this machine trusts (self-signed or a private CA?); set ca_file to the \
             PEM file of the CA that issued it"
                .into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "certificate not valid for this host: {error}; dial the name or address the \
             certificate is issued for"
        ),
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            "certificate refused: the server presents a CA certificate (basicConstraints CA:TRUE) \
             as its own; give it a certificate made with CA:FALSE (see docs/tls.md), trusted \
             through ca_file"
                .into()
        }
        rustls::Error::InvalidCertificate(_) => format!("certificate refused: {error}"),
        rustls::Error::InvalidMessage(_) => {
            format!("TLS handshake failed: {error}; is the server speaking TLS at all (try ws://)?")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}
