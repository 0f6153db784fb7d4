//! A face's TLS: its certificate and key, reloaded when their files change, without a restart.
//!
//! The served certificate sits behind a lock that every handshake reads ([`Certificate`] is the
//! rustls certificate resolver), so a reload affects new connections only; open ones keep the
//! session they negotiated. The files' folders are watched with `notify` rather than the files:
//! editors and certbot replace a file by renaming a new one over it (certbot's `live/` names are
//! symlinks it swaps), which a watch on the old file never reports. Any change in a folder makes
//! the files be read again (after a short debounce, as certbot writes the certificate and the key
//! one after the other); a reload happens only when their contents differ from the last ones
//! tried. New files that do not load, or a key that does not match its certificate, leave the
//! current certificate in place with a warning.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, RwLock};
use std::time::{Duration, Instant};

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

use super::{certificates, private_key, provider, read, TlsError};
use crate::config::TlsFiles;

/// How long a burst of changes to the files is gathered before they are read again…
const DEBOUNCE: Duration = Duration::from_millis(250);
/// …at most (a folder that never stops changing still gets its files read).
const MAX_WAIT: Duration = Duration::from_secs(2);
/// How often the files are compared without news of a change.
const RECHECK: Duration = Duration::from_secs(60);

/// A TLS server configuration for `face` serving the certificate in `files`, and what keeps it
/// reloaded (dropping it stops the reloads). `alpn`: the protocols offered, when the server
/// does not add its own (actix-web adds `http/1.1`).
pub fn config(
    face: &'static str,
    files: &TlsFiles,
    alpn: &[&[u8]],
) -> Result<(ServerConfig, Reloading), TlsError> {
    let certificate = Arc::new(Certificate::load(face, files)?);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok((config, Reloading::start(certificate)))
}

/// The certificate a face serves now, with the digest of the files it came from.
struct Current {
    key: Arc<CertifiedKey>,
    /// The digest of the last contents tried, loaded or not: they are not tried again.
    tried: [u8; 32],
}

/// A face's certificate: the rustls resolver of its server configuration.
pub struct Certificate {
    face: &'static str,
    files: TlsFiles,
    current: RwLock<Current>,
    /// The last warning logged, not repeated while the files stay as they are.
    warned: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Certificate")
            .field("face", &self.face)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.read().key.clone())
    }
}

impl Certificate {
    /// Loads `files`; the start fails when they do not.
    fn load(face: &'static str, files: &TlsFiles) -> Result<Certificate, TlsError> {
        let (key, tried) = load(files)?;
        Ok(Certificate {
            face,
            files: files.clone(),
            current: RwLock::new(Current {
                key: Arc::new(key),
                tried,
            }),
            warned: std::sync::Mutex::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the files again and serves them from now on if they changed and load; otherwise
    /// keeps the current certificate (with a warning when the new files do not load).
    fn reload(&self) {
        let (cert, key) = (&self.files.cert, &self.files.key);
        let tried = match (read(cert), read(key)) {
            (Ok(cert), Ok(key)) => digest(&cert, &key),
            // Mid-replacement, or gone: a later change will say when they are back.
            (Err(error), _) | (_, Err(error)) => {
                return self.warn(format!(
                    "{}: kept the current TLS certificate: {}",
                    self.face,
                    error.with_causes()
                ));
            }
        };
        if tried == self.read().tried {
            return;
        }
        let loaded = load(&self.files);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        current.tried = tried;
        match loaded {
            Ok((key, _)) => {
                current.key = Arc::new(key);
                drop(current);
                *self.warned.lock().unwrap_or_else(|e| e.into_inner()) = None;
                log::info!(
                    "{}: TLS certificate reloaded from {}",
                    self.face,
                    cert.display()
                );
            }
            Err(error) => {
                drop(current);
                self.warn(format!(
                    "{}: kept the current TLS certificate, the new files do not load: {}",
                    self.face,
                    error.with_causes()
                ));
            }
        }
    }

    /// Logs `warning` unless it is the one logged last.
    fn warn(&self, warning: String) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.as_deref() != Some(warning.as_str()) {
            log::warn!("{warning}");
            *warned = Some(warning);
        }
    }
}

/// The certificate chain and key in `files`, checked to belong together, and their digest.
fn load(files: &TlsFiles) -> Result<(CertifiedKey, [u8; 32]), TlsError> {
    let cert_bytes = read(&files.cert)?;
    let key_bytes = read(&files.key)?;
    let chain = certificates(&files.cert, &cert_bytes)?;
    let key = private_key(&files.key, &key_bytes)?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|source| TlsError::Key {
            key: files.key.clone(),
            cert: files.cert.clone(),
            source,
        })?;
    Ok((certified, digest(&cert_bytes, &key_bytes)))
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((cert.len() as u64).to_le_bytes());
    hasher.update(cert);
    hasher.update(key);
    hasher.finalize().into()
}

/// Watches a certificate's folders and reloads it on change; dropping it stops both the watch
/// and its thread.
pub struct Reloading {
    _watcher: Option<RecommendedWatcher>,
}

impl Reloading {
    /// Starts watching; without a watch (with a warning) a changed certificate needs a restart.
    fn start(certificate: Arc<Certificate>) -> Reloading {
        let face = certificate.face;
        let watcher = watch(certificate)
            .map_err(|error| {
                log::warn!(
                    "{face}: cannot watch the TLS files for changes ({error}); a new certificate \
                     needs a restart"
                )
            })
            .ok();
        Reloading { _watcher: watcher }
    }
}

fn watch(certificate: Arc<Certificate>) -> Result<RecommendedWatcher, String> {
    // The files as named and, when they are links, what they point to (certbot's `live/` names
    // point into `archive/`): their folders are watched, changes to other files are ignored.
    let mut files: Vec<PathBuf> = vec![
        certificate.files.cert.clone(),
        certificate.files.key.clone(),
    ];
    files.extend(
        files
            .clone()
            .iter()
            .filter_map(|file| std::fs::canonicalize(file).ok()),
    );
    let names: BTreeSet<std::ffi::OsString> = files
        .iter()
        .filter_map(|file| file.file_name().map(ToOwned::to_owned))
        .collect();
    let (changes, received) = mpsc::channel::<()>();
    let handler = move |result: notify::Result<Event>| {
        let Ok(event) = result else { return };
        let ours = event.paths.is_empty()
            || event
                .paths
                .iter()
                .any(|path| path.file_name().is_some_and(|name| names.contains(name)));
        if ours
            && matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            )
        {
            let _ = changes.send(());
        }
    };
    let mut watcher = notify::recommended_watcher(handler).map_err(|error| error.to_string())?;
    let folders: BTreeSet<PathBuf> = files.iter().map(|file| folder(file)).collect();
    for folder in &folders {
        watcher
            .watch(folder, RecursiveMode::NonRecursive)
            .map_err(|error| format!("{}: {error}", folder.display()))?;
    }
    std::thread::Builder::new()
        .name(format!("{}-tls", certificate.face))
        .spawn(move || loop {
            // Ends when the watcher (and with it the sender) is dropped. Without news for a
            // while the files are compared anyway: a folder deleted and made again, or a network
            // filesystem that reports nothing, is caught up with.
            match received.recv_timeout(RECHECK) {
                Ok(()) => {
                    // A burst of changes (certbot writes the certificate, then the key) is read
                    // once, at most MAX_WAIT after it began.
                    let deadline = Instant::now() + MAX_WAIT;
                    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                        if received.recv_timeout(left.min(DEBOUNCE)).is_err() {
                            break;
                        }
                    }
                    certificate.reload();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => certificate.reload(),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        })
        .map_err(|error| error.to_string())?;
    Ok(watcher)
}

/// The folder holding `file` (`.` for a bare file name).
fn folder(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}
