//! Tokens: the credential a request offers (`Authorization: Bearer`, or a `token` query
//! parameter where a browser cannot set headers), and the tokens Switchboard generates on first
//! start and keeps in the store (the custom face's and the HTTP face's admin token).

use std::path::Path;

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::config::Secret;
use crate::store::{Store, StoreError};

/// The `Authorization: Bearer` credential, when that header is present.
pub fn bearer(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get(header::AUTHORIZATION)?;
    let (scheme, credential) = value.to_str().ok()?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim().to_owned())
}

/// The first `token` query parameter.
pub fn query(request: &HttpRequest) -> Option<String> {
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    query
        .into_iter()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value)
}

/// A new token: 32 bytes from the operating system's CSPRNG, base64url without padding.
pub fn generate() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the operating system provides random bytes");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A face's token: `configured` when set, else the one kept in the store under `key`
/// (generated on first use). Answers the token and how the banner names where it comes from.
///
/// A generated token is also written to the file `key` in the data dir, readable by its owner
/// only: `switchboard token` prints it from there while Switchboard runs and holds the store.
pub async fn kept(
    store: &Store,
    key: &str,
    configured: &Secret,
    setting: &str,
) -> Result<(Secret, String), StoreError> {
    if !configured.is_empty() {
        return Ok((configured.clone(), format!("from {setting}")));
    }
    let token = store.meta_string_or_insert(key, generate).await?;
    let copy = store.dir().join(key);
    if let Err(error) = write_copy(&copy, &token) {
        log::warn!(
            "cannot write {}: {error}; `switchboard token` prints the token only while Switchboard is stopped",
            copy.display()
        );
    }
    Ok((Secret(token), "generated, kept in the data dir".to_owned()))
}

/// Writes `token` to `path`, readable and writable by its owner only (on Unix): into a new file
/// beside it, then renamed over it, so that whatever was at `path` (a file of wider permissions,
/// a link elsewhere) is replaced, never written through.
pub fn write_copy(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = std::path::PathBuf::from(temporary);
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
