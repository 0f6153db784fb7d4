//! TLS, with rustls and its `ring` provider only (no OpenSSL, no aws-lc-rs): the PEM files a
//! face serves ([`server`]: a certificate reloaded when its files change) and the roots an
//! outbound `wss://` connection trusts ([`client`]).
//!
//! Faces call [`server::config`] when their listener has `tls = { cert, key }`; outbound calls
//! [`client::config`] for a `wss://` URL. Every configuration is built with [`provider`] given
//! explicitly, so rustls never looks for a process-wide default.

pub mod client;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client may take over its TLS handshake before its connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// TLS handshakes a face has in progress at once; more connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 4096;

/// The most a PEM file may hold: a long chain is a few kilobytes.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why PEM files or a TLS configuration could not be used. Never shows a key's content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read the file", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: larger than {MAX_PEM_BYTES} bytes, not a PEM certificate or key", .path.display())]
    TooLarge { path: PathBuf },
    #[error(
        "{}: the private key is encrypted; write it decrypted (`openssl pkey -in KEY -out KEY.pem`) \
         and keep that file readable by Switchboard's user only",
        .path.display()
    )]
    EncryptedKey { path: PathBuf },
    #[error("{}: not a valid PEM file ({reason})", .path.display())]
    Pem { path: PathBuf, reason: &'static str },
    #[error("{}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)", .path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{}: holds no PEM private key (PKCS#8 `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
        .path.display()
    )]
    NoKey { path: PathBuf },
    #[error("{}: the key cannot be used with the certificate {}: {source}", .key.display(), .cert.display())]
    Key {
        key: PathBuf,
        cert: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{}: a certificate cannot be trusted: {source}", .path.display())]
    Trust {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot set up TLS")]
    Setup(#[source] rustls::Error),
}

impl TlsError {
    /// The error and its causes, on one line (`file: cannot read the file: No such file…`).
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }
}

/// The cryptography every TLS configuration uses: rustls's `ring` provider.
///
/// rustls 0.23.48 deprecated it because *ring* has no post-quantum key exchange; the provider
/// that has one, aws-lc-rs, needs a C toolchain (and NASM on Windows) to build, which this
/// project keeps out so that Windows and macOS builds need nothing but cargo.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The contents of `path`: a regular file (not a pipe or a device, which could block or never
/// end) of at most [`MAX_PEM_BYTES`].
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let failed = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(failed)?;
    if !metadata.is_file() {
        return Err(TlsError::NotAFile {
            path: path.to_owned(),
        });
    }
    let too_large = || TlsError::TooLarge {
        path: path.to_owned(),
    };
    if metadata.len() > MAX_PEM_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Every certificate in the PEM text `bytes` read from `path`, in order (a chain: the
/// certificate first, then its issuers); at least one.
fn certificates(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(path, &error))?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// The first private key (PKCS#8, RSA or SEC1) in the PEM text `bytes` read from `path`.
fn private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|error| match error {
        pem::Error::NoItemsFound if encrypted(bytes) => TlsError::EncryptedKey {
            path: path.to_owned(),
        },
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        other => invalid(path, &other),
    })
}

/// Whether PEM text holds an encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or an
/// OpenSSL-encrypted RSA or EC key).
fn encrypted(bytes: &[u8]) -> bool {
    [
        &b"-----BEGIN ENCRYPTED PRIVATE KEY-----"[..],
        b"Proc-Type: 4,ENCRYPTED",
    ]
    .iter()
    .any(|marker| bytes.windows(marker.len()).any(|window| window == *marker))
}

/// A PEM syntax error, described without the bytes it quotes (they may be part of a key).
fn invalid(path: &Path, error: &pem::Error) -> TlsError {
    let reason = match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "unreadable",
    };
    TlsError::Pem {
        path: path.to_owned(),
        reason,
    }
}
