//! Configuration: `switchboard.toml` parsed as [`RawConfig`] (every key optional, unknown keys
//! refused with their path), then resolved with the command-line flags into [`Config`], which
//! has a value for everything the runtime reads. Defaults are written once, in [`Config::resolve`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Why a configuration could not be used; `main` prints it and exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {key}: {reason}")]
    Invalid {
        path: String,
        key: String,
        reason: String,
    },
}

/// A password, token or API key: never printed by `Debug`, compared in constant time.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, comparing SHA-256 digests in constant time so that
    /// neither the content nor the length leaks.
    pub fn matches(&self, candidate: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let expected = Sha256::digest(self.0.as_bytes());
        let candidate = Sha256::digest(candidate.as_bytes());
        expected.ct_eq(&candidate).into()
    }
}

/// `switchboard.toml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<PathBuf>,
    pub rules_dir: Option<PathBuf>,
    pub http: Option<RawHttp>,
    pub streamerbot: Option<RawStreamerbot>,
    pub custom: Option<RawCustom>,
    pub astro: Option<RawAstro>,
    pub socketio: Option<RawSocketio>,
    #[serde(default)]
    pub outbound: Vec<RawOutbound>,
    pub limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub enabled: Option<bool>,
    pub bind: Option<String>,
    pub tls: Option<TlsFiles>,
    /// The admin token; empty or absent: generated on first start and kept in the data dir.
    pub token: Option<Secret>,
    /// Pages of other sites allowed to change things (with the token); absent: none.
    pub allowed_origins: Option<Vec<String>>,
}

/// `tls = { cert = "…", key = "…" }`: the PEM files a face serves TLS with (docs/tls.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate, then any intermediate certificates of its chain.
    pub cert: PathBuf,
    /// The private key: PKCS#8, RSA (PKCS#1) or SEC1.
    pub key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreamerbot {
    pub enabled: Option<bool>,
    pub bind: Option<String>,
    pub tls: Option<TlsFiles>,
    /// Browser pages allowed to connect (`Origin`); absent: every page.
    pub allowed_origins: Option<Vec<String>>,
    /// Listen beyond loopback with no credential, knowingly.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    pub endpoint: Option<String>,
    pub password: Option<Secret>,
    /// Platform → the broadcaster's identity, in Streamer.bot's own field names.
    #[serde(default)]
    pub broadcaster: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustom {
    pub enabled: Option<bool>,
    pub bind: Option<String>,
    pub tls: Option<TlsFiles>,
    /// Browser pages allowed to connect (`Origin`); absent: every page.
    pub allowed_origins: Option<Vec<String>>,
    pub token: Option<Secret>,
    pub max_connections: Option<u32>,
    pub rate_limit_per_second: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAstro {
    pub enabled: Option<bool>,
    pub bind: Option<String>,
    pub tls: Option<TlsFiles>,
    /// Browser pages allowed to connect (`Origin`); absent: every page.
    pub allowed_origins: Option<Vec<String>>,
    /// Listen beyond loopback with no credential, knowingly.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    #[serde(default)]
    pub tokens: Vec<AstroToken>,
}

/// Who may subscribe on the Astro face, to which room, with which scopes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AstroToken {
    pub token: Secret,
    pub room: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSocketio {
    pub enabled: Option<bool>,
    pub bind: Option<String>,
    pub tls: Option<TlsFiles>,
    /// Browser pages allowed to connect (`Origin`); absent: every page.
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default)]
    pub api_keys: Vec<Secret>,
    pub max_connections: Option<u32>,
}

/// One outbound custom WebSocket client connection (docs/custom.md, part 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    pub name: String,
    pub url: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub source: Option<String>,
    pub auth: Option<OutboundAuth>,
    #[serde(default)]
    pub mapping: serde_json::Map<String, Value>,
    pub default_type: Option<String>,
    /// PEM certificates a `wss://` server's certificate may also be issued by (a private CA,
    /// or the server's own self-signed certificate), besides the platform's roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundAuth {
    pub token: Secret,
    #[serde(default)]
    pub mode: AuthMode,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Header,
    Query,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_frame_bytes: Option<usize>,
    pub send_queue: Option<usize>,
    pub unauthenticated_bytes: Option<usize>,
    pub close_timeout_ms: Option<u64>,
    pub outbound_queue_bytes: Option<usize>,
    pub chain_events: Option<u32>,
    pub chain_runs: Option<u32>,
    pub template_fuel: Option<u64>,
    pub template_bytes: Option<usize>,
    pub variable_bytes: Option<usize>,
}

fn default_true() -> bool {
    true
}

/// Command-line values that beat the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub rules_dir: Option<PathBuf>,
}

/// A face's listener: off, or on at an address (port 0 picks a free port), with TLS or not.
#[derive(Debug, Clone)]
pub struct Listener {
    pub enabled: bool,
    pub bind: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Browser origins allowed (lower case, `null` for local files); `None`: every origin.
    pub allowed_origins: Option<Vec<String>>,
    /// Set when the user means to listen beyond loopback with no credential.
    pub allow_unauthenticated: bool,
}

impl Listener {
    /// Whether machines other than this one can connect.
    pub fn exposed(&self) -> bool {
        !self.bind.ip().is_loopback()
    }
}

/// The HTTP face: its listener and its admin token.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listener: Listener,
    /// Empty: generated on first start and kept in the store.
    pub token: Secret,
}

#[derive(Debug, Clone)]
pub struct StreamerbotConfig {
    pub listener: Listener,
    /// The upgrade path, starting with `/`.
    pub endpoint: String,
    /// Empty: no authentication handshake.
    pub password: Secret,
    /// Platform (`twitch`, `youtube`, …) → the broadcaster's identity, answered by
    /// `GetBroadcaster` as written.
    pub broadcaster: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct CustomConfig {
    pub listener: Listener,
    /// Empty: generated on first start and kept in the store.
    pub token: Secret,
    pub max_connections: u32,
    pub rate_limit_per_second: u32,
}

#[derive(Debug, Clone)]
pub struct AstroConfig {
    pub listener: Listener,
    pub tokens: Vec<AstroToken>,
}

#[derive(Debug, Clone)]
pub struct SocketioConfig {
    pub listener: Listener,
    pub api_keys: Vec<Secret>,
    /// Open TCP connections to the face at most (each may hold a message of up to 1 MB).
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Larger messages are refused with the protocol's error.
    pub max_frame_bytes: usize,
    /// Outgoing frames buffered per session before it is dropped as too slow.
    pub send_queue: usize,
    /// What unfinished messages of unauthenticated connections may hold, all together.
    pub unauthenticated_bytes: usize,
    /// How long a closed connection's peer has to read the close before it is reset.
    pub close_timeout: std::time::Duration,
    /// Bytes of `ws.send` frames one outbound link may hold unwritten; beyond it a frame is
    /// refused.
    pub outbound_queue_bytes: usize,
    /// Events the runs of one causal chain may publish (docs/rules.md §6.3).
    pub chain_events: u32,
    /// Runs one causal chain may start.
    pub chain_runs: u32,
    /// Instructions one template field may run (docs/rules.md §5.3).
    pub template_fuel: u64,
    /// Bytes one template field may read and build.
    pub template_bytes: usize,
    /// The largest value, as JSON, a `global.*` or `user.*` variable may hold.
    pub variable_bytes: usize,
}

/// The resolved configuration: defaults, then the file, then the flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file the configuration came from (`defaults` when none), for error messages.
    pub origin: String,
    pub data_dir: PathBuf,
    pub rules_dir: PathBuf,
    pub http: HttpConfig,
    pub streamerbot: StreamerbotConfig,
    pub custom: CustomConfig,
    pub astro: AstroConfig,
    pub socketio: SocketioConfig,
    pub outbound: Vec<RawOutbound>,
    pub limits: Limits,
}

/// A face's listener keys as written, and its default address.
struct ListenerKeys {
    enabled: Option<bool>,
    bind: Option<String>,
    tls: Option<TlsFiles>,
    allowed_origins: Option<Vec<String>>,
    allow_unauthenticated: bool,
    default: &'static str,
}

/// An origin as browsers send it: `null` (a local file), or `scheme://host[:port]` in lower case
/// without a path.
fn normalise_origin(origin: &str) -> Result<String, String> {
    let lower = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let host = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match host {
        _ if lower == "null" => Ok(lower),
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '*']) => Ok(lower),
        _ => Err(format!(
            "`{origin}` is not an origin like https://overlays.example.com or null"
        )),
    }
}

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "switchboard.toml";

impl Config {
    /// Reads `file` (or `./switchboard.toml` when it exists) and resolves it with `overrides`.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let (raw, origin) = match file {
            Some(path) => (read_file(path)?, path.display().to_string()),
            None if Path::new(DEFAULT_FILE).is_file() => {
                (read_file(Path::new(DEFAULT_FILE))?, DEFAULT_FILE.to_owned())
            }
            None => (RawConfig::default(), "defaults".to_owned()),
        };
        Config::resolve(raw, overrides, &origin)
    }

    /// Applies defaults, then `raw`, then `overrides`; `origin` names the file in errors.
    pub fn resolve(
        raw: RawConfig,
        overrides: Overrides,
        origin: &str,
    ) -> Result<Config, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: origin.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let listener = |key: &str, face: ListenerKeys| -> Result<Listener, ConfigError> {
            let text = face.bind.unwrap_or_else(|| face.default.to_owned());
            let bind = text.parse().map_err(|_| {
                invalid(
                    &format!("{key}.bind"),
                    format!("`{text}` is not an address like 127.0.0.1:8080"),
                )
            })?;
            let allowed_origins = match face.allowed_origins {
                Some(list) => Some(
                    list.iter()
                        .map(|origin| normalise_origin(origin))
                        .collect::<Result<_, _>>()
                        .map_err(|reason| invalid(&format!("{key}.allowed_origins"), reason))?,
                ),
                None => None,
            };
            Ok(Listener {
                enabled: face.enabled.unwrap_or(true),
                bind,
                tls: face.tls,
                allowed_origins,
                allow_unauthenticated: face.allow_unauthenticated,
            })
        };

        let http = raw.http.unwrap_or_default();
        let streamerbot = raw.streamerbot.unwrap_or_default();
        let endpoint = streamerbot.endpoint.unwrap_or_else(|| "/".to_owned());
        if !endpoint.starts_with('/') {
            return Err(invalid(
                "streamerbot.endpoint",
                format!("`{endpoint}` must start with `/`"),
            ));
        }
        for (platform, identity) in &streamerbot.broadcaster {
            if !identity.is_object() {
                return Err(invalid(
                    &format!("streamerbot.broadcaster.{platform}"),
                    "must be a table of Streamer.bot's broadcaster fields".into(),
                ));
            }
        }
        let custom = raw.custom.unwrap_or_default();
        let astro = raw.astro.unwrap_or_default();
        let mut tokens = std::collections::HashSet::new();
        for (index, token) in astro.tokens.iter().enumerate() {
            let key = |field: &str| format!("astro.tokens[{index}].{field}");
            if token.token.is_empty() || !tokens.insert(token.token.expose()) {
                return Err(invalid(&key("token"), "is empty or used twice".into()));
            }
            if token.room.is_empty() {
                return Err(invalid(&key("room"), "must not be empty".into()));
            }
        }
        let socketio = raw.socketio.unwrap_or_default();
        let limits = raw.limits.unwrap_or_default();
        let max_frame_bytes = limits.max_frame_bytes.unwrap_or(1_048_576);
        if max_frame_bytes == 0 {
            return Err(invalid(
                "limits.max_frame_bytes",
                "must be at least 1".into(),
            ));
        }
        let send_queue = limits.send_queue.unwrap_or(1024);
        if custom.max_connections == Some(0) {
            return Err(invalid(
                "custom.max_connections",
                "must be at least 1".into(),
            ));
        }
        if custom.rate_limit_per_second == Some(0) {
            return Err(invalid(
                "custom.rate_limit_per_second",
                "must be at least 1".into(),
            ));
        }
        if send_queue == 0 {
            return Err(invalid("limits.send_queue", "must be at least 1".into()));
        }
        if socketio.max_connections == Some(0) {
            return Err(invalid(
                "socketio.max_connections",
                "must be at least 1".into(),
            ));
        }
        let unauthenticated_bytes = limits.unauthenticated_bytes.unwrap_or(64 << 20);
        if unauthenticated_bytes < max_frame_bytes {
            return Err(invalid(
                "limits.unauthenticated_bytes",
                format!("must be at least limits.max_frame_bytes ({max_frame_bytes})"),
            ));
        }
        let close_timeout_ms = limits.close_timeout_ms.unwrap_or(5000);
        if !(1..=3_600_000).contains(&close_timeout_ms) {
            return Err(invalid(
                "limits.close_timeout_ms",
                "must be between 1 and 3600000".into(),
            ));
        }
        let outbound_queue_bytes = limits.outbound_queue_bytes.unwrap_or(8 << 20);
        if outbound_queue_bytes == 0 {
            return Err(invalid(
                "limits.outbound_queue_bytes",
                "must be at least 1".into(),
            ));
        }
        let chain_events = limits.chain_events.unwrap_or(1000);
        let chain_runs = limits.chain_runs.unwrap_or(1000);
        let template_fuel = limits.template_fuel.unwrap_or(50_000);
        let template_bytes = limits.template_bytes.unwrap_or(4 * 1024 * 1024);
        let variable_bytes = limits.variable_bytes.unwrap_or(256 * 1024);
        for (key, value) in [
            ("limits.chain_events", u64::from(chain_events)),
            ("limits.chain_runs", u64::from(chain_runs)),
            ("limits.template_fuel", template_fuel),
            ("limits.template_bytes", template_bytes as u64),
            ("limits.variable_bytes", variable_bytes as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (index, outbound) in raw.outbound.iter().enumerate() {
            if outbound.name.trim().is_empty() || !names.insert(outbound.name.clone()) {
                return Err(invalid(
                    &format!("outbound[{index}].name"),
                    format!("`{}` is empty or used twice", outbound.name),
                ));
            }
        }

        Ok(Config {
            origin: origin.to_owned(),
            data_dir: overrides
                .data_dir
                .or(raw.data_dir)
                .unwrap_or_else(|| "./data".into()),
            rules_dir: overrides
                .rules_dir
                .or(raw.rules_dir)
                .unwrap_or_else(|| "./rules".into()),
            http: HttpConfig {
                listener: listener(
                    "http",
                    ListenerKeys {
                        enabled: http.enabled,
                        bind: http.bind,
                        tls: http.tls,
                        allowed_origins: http.allowed_origins,
                        allow_unauthenticated: false,
                        default: "127.0.0.1:7474",
                    },
                )?,
                token: http.token.unwrap_or_default(),
            },
            streamerbot: StreamerbotConfig {
                listener: listener(
                    "streamerbot",
                    ListenerKeys {
                        enabled: streamerbot.enabled,
                        bind: streamerbot.bind,
                        tls: streamerbot.tls,
                        allowed_origins: streamerbot.allowed_origins,
                        allow_unauthenticated: streamerbot.allow_unauthenticated,
                        default: "127.0.0.1:8080",
                    },
                )?,
                endpoint,
                password: streamerbot.password.unwrap_or_default(),
                broadcaster: streamerbot.broadcaster,
            },
            custom: CustomConfig {
                listener: listener(
                    "custom",
                    ListenerKeys {
                        enabled: custom.enabled,
                        bind: custom.bind,
                        tls: custom.tls,
                        allowed_origins: custom.allowed_origins,
                        allow_unauthenticated: false,
                        default: "127.0.0.1:7895",
                    },
                )?,
                token: custom.token.unwrap_or_default(),
                max_connections: custom.max_connections.unwrap_or(10),
                rate_limit_per_second: custom.rate_limit_per_second.unwrap_or(60),
            },
            astro: AstroConfig {
                listener: listener(
                    "astro",
                    ListenerKeys {
                        enabled: astro.enabled,
                        bind: astro.bind,
                        tls: astro.tls,
                        allowed_origins: astro.allowed_origins,
                        allow_unauthenticated: astro.allow_unauthenticated,
                        default: "127.0.0.1:7896",
                    },
                )?,
                tokens: astro.tokens,
            },
            socketio: SocketioConfig {
                listener: listener(
                    "socketio",
                    ListenerKeys {
                        enabled: socketio.enabled,
                        bind: socketio.bind,
                        tls: socketio.tls,
                        allowed_origins: socketio.allowed_origins,
                        allow_unauthenticated: false,
                        default: "127.0.0.1:3000",
                    },
                )?,
                api_keys: socketio.api_keys,
                max_connections: socketio.max_connections.unwrap_or(256),
            },
            outbound: raw.outbound,
            limits: Limits {
                max_frame_bytes,
                send_queue,
                unauthenticated_bytes,
                close_timeout: std::time::Duration::from_millis(close_timeout_ms),
                outbound_queue_bytes,
                chain_events,
                chain_runs,
                template_fuel,
                template_bytes,
                variable_bytes,
            },
        })
    }
}

/// Parses a configuration file, reporting errors as `path: key: reason`.
pub fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses configuration text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = error.path().to_string();
        let inner = error.into_inner();
        // A syntax error belongs to no key: it is named by where it is.
        let key = match (key.as_str(), inner.span()) {
            (".", Some(span)) => position(text, span.start),
            (".", None) => String::new(),
            _ => key,
        };
        // On one line: toml writes what it expected on a line of its own.
        let reason = inner
            .message()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let reason = if reason.is_empty() {
            // toml gives some syntax errors (`key =` at the end of the file) no message.
            "invalid TOML syntax".to_owned()
        } else {
            reason
        };
        ConfigError::Invalid {
            path: origin.to_owned(),
            key,
            reason,
        }
    })
}

/// `line L, column C` of byte `offset` in `text`, both counted from 1.
fn position(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    format!("line {line}, column {column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Config, ConfigError> {
        Config::resolve(parse(text, "test.toml")?, Overrides::default(), "test.toml")
    }

    #[test]
    fn no_file_gives_the_documented_defaults() {
        let config = resolve("").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.rules_dir, PathBuf::from("./rules"));
        assert_eq!(config.http.listener.bind.to_string(), "127.0.0.1:7474");
        assert_eq!(
            config.streamerbot.listener.bind.to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(config.streamerbot.endpoint, "/");
        assert_eq!(config.custom.listener.bind.to_string(), "127.0.0.1:7895");
        assert_eq!(config.custom.max_connections, 10);
        assert_eq!(config.custom.rate_limit_per_second, 60);
        assert_eq!(config.astro.listener.bind.to_string(), "127.0.0.1:7896");
        assert_eq!(config.socketio.listener.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(config.limits.max_frame_bytes, 1_048_576);
        assert_eq!(config.limits.send_queue, 1024);
        assert_eq!(config.limits.outbound_queue_bytes, 8_388_608);
        assert_eq!(config.limits.chain_events, 1000);
        assert_eq!(config.limits.chain_runs, 1000);
        assert_eq!(config.limits.template_fuel, 50_000);
        assert_eq!(config.limits.template_bytes, 4_194_304);
        assert_eq!(config.limits.variable_bytes, 262_144);
    }

    #[test]
    fn the_documented_example_file_parses() {
        let text = include_str!("../examples/switchboard.toml");
        let config = resolve(text).unwrap();
        assert_eq!(config.outbound.len(), 1);
        assert_eq!(
            config.outbound[0].auth.as_ref().unwrap().mode,
            AuthMode::Header
        );
        assert_eq!(config.astro.tokens[0].room, "channel-1");
    }

    #[test]
    fn an_unknown_key_is_reported_with_its_path() {
        let error = resolve("[custom]\nbnd = \"x\"\n").unwrap_err().to_string();
        assert!(
            error.starts_with("test.toml: custom.bnd: unknown field `bnd`"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_type_is_reported_with_its_path() {
        let error = resolve("[custom]\nrate_limit_per_second = \"60\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("test.toml: custom.rate_limit_per_second: invalid type"),
            "{error}"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let error = resolve("[custom]\nenabled =").unwrap_err().to_string();
        assert_eq!(error, "test.toml: line 2, column 10: invalid TOML syntax");
        let error = resolve("[custom]\nenabled =\n").unwrap_err().to_string();
        assert_eq!(
            error,
            "test.toml: line 2, column 10: invalid string; expected `\"`, `'`"
        );
    }

    #[test]
    fn flags_beat_the_file() {
        let raw = parse("data_dir = \"/from/file\"", "t").unwrap();
        let overrides = Overrides {
            data_dir: Some("/from/flag".into()),
            rules_dir: None,
        };
        let config = Config::resolve(raw, overrides, "t").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
    }

    #[test]
    fn the_example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/switchboard.toml");
        let config = Config::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(config.astro.tokens.len(), 1);
        assert!(
            config.streamerbot.broadcaster.is_empty(),
            "no identity is made up"
        );
    }

    #[test]
    fn broadcaster_identities_are_kept_as_written() {
        let text = "[streamerbot.broadcaster.twitch]\nbroadcastUser = \"MyChannel\"\nbroadcastUserId = 695682330\nbroadcasterIsPartner = false\n";
        let config = resolve(text).unwrap();
        assert_eq!(
            serde_json::Value::Object(config.streamerbot.broadcaster),
            serde_json::json!({"twitch": {"broadcastUser": "MyChannel", "broadcastUserId": 695682330, "broadcasterIsPartner": false}})
        );
        let error = resolve("[streamerbot.broadcaster]\ntwitch = 1\n").unwrap_err();
        assert!(
            error.to_string().contains("streamerbot.broadcaster.twitch"),
            "{error}"
        );
    }

    #[test]
    fn astro_tokens_are_unique_and_have_a_room() {
        let token = |token: &str, room: &str| {
            format!("[[astro.tokens]]\ntoken = \"{token}\"\nroom = \"{room}\"\n")
        };
        let twice = token("a", "r1") + &token("a", "r2");
        let error = resolve(&twice).unwrap_err().to_string();
        assert!(error.contains("astro.tokens[1].token"), "{error}");
        let error = resolve(&token("", "r")).unwrap_err().to_string();
        assert!(error.contains("astro.tokens[0].token"), "{error}");
        let error = resolve(&token("a", "")).unwrap_err().to_string();
        assert!(error.contains("astro.tokens[0].room"), "{error}");
        assert!(resolve(&(token("a", "r") + &token("b", "r"))).is_ok());
    }

    #[test]
    fn engine_limits_are_at_least_one_and_numbers() {
        for key in [
            "chain_events",
            "chain_runs",
            "template_fuel",
            "template_bytes",
            "variable_bytes",
        ] {
            let error = resolve(&format!("[limits]\n{key} = 0\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("test.toml: limits.{key}: must be at least 1"),
                "{key}"
            );
            let error = resolve(&format!("[limits]\n{key} = -1\n"))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("test.toml: limits.{key}: ")),
                "{error}"
            );
        }
        let config = resolve("[limits]\nchain_events = 5\ntemplate_fuel = 70\n").unwrap();
        assert_eq!(
            (config.limits.chain_events, config.limits.template_fuel),
            (5, 70)
        );
    }

    #[test]
    fn an_endpoint_without_a_slash_is_refused() {
        let error = resolve("[streamerbot]\nendpoint = \"ws\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("streamerbot.endpoint"), "{error}");
    }

    #[test]
    fn connection_budgets_are_checked_with_their_key() {
        let error = resolve("[limits]\nunauthenticated_bytes = 1000\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("limits.unauthenticated_bytes"), "{error}");
        let error = resolve("[limits]\nclose_timeout_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("limits.close_timeout_ms"), "{error}");
        let config = resolve("[limits]\nclose_timeout_ms = 250\n").unwrap();
        assert_eq!(
            config.limits.close_timeout,
            std::time::Duration::from_millis(250)
        );
        assert_eq!(config.limits.unauthenticated_bytes, 64 << 20);
    }

    #[test]
    fn every_face_takes_tls_files_and_refuses_unknown_tls_keys() {
        let faces = ["http", "streamerbot", "custom", "astro", "socketio"];
        let text: String = faces
            .iter()
            .map(|face| format!("[{face}]\ntls = {{ cert = \"{face}.pem\", key = \"k.pem\" }}\n"))
            .collect();
        let config = resolve(&text).unwrap();
        let listeners = [
            &config.http.listener,
            &config.streamerbot.listener,
            &config.custom.listener,
            &config.astro.listener,
            &config.socketio.listener,
        ];
        for (face, listener) in faces.iter().zip(listeners) {
            let tls = listener.tls.as_ref().expect("tls files");
            assert_eq!(tls.cert, PathBuf::from(format!("{face}.pem")));
            assert_eq!(tls.key, PathBuf::from("k.pem"));
        }
        assert!(resolve("").unwrap().custom.listener.tls.is_none());
        let error = resolve("[astro]\ntls = { cert = \"c\", key = \"k\", ca = \"x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("test.toml: astro.tls.ca: unknown field"),
            "{error}"
        );
    }

    #[test]
    fn secrets_do_not_print_and_compare_whole() {
        let secret = Secret("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert!(secret.matches("hunter2"));
        assert!(!secret.matches("hunter"));
        assert!(!secret.matches(""));
    }

    /// The example file as written, and as JSON for structural mutations.
    fn example() -> (String, Value) {
        let text = include_str!("../examples/switchboard.toml");
        let value: Value = toml::from_str(text).unwrap();
        (text.to_owned(), value)
    }

    /// Configuration text: the example file mutated as text, or mutated as data and written
    /// back as TOML, or nested deeply.
    fn files() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let (text, value) = example();
        prop_oneof![
            2 => crate::mutate::mutated_text(vec![text]),
            2 => crate::mutate::mutated_json(vec![value])
                .prop_map(|value| crate::mutate::toml_text(&value)),
            1 => crate::mutate::deep_text().prop_map(|nested| format!("data_dir = {nested}\n")),
        ]
    }

    proptest::proptest! {
        /// Any file resolves or is refused as `file: key: reason`.
        #[test]
        fn every_file_resolves_or_is_refused_with_its_key(text in files()) {
            match resolve(&text) {
                Ok(config) => proptest::prop_assert!(config.limits.max_frame_bytes > 0),
                Err(ConfigError::Invalid { path, key, reason }) => {
                    proptest::prop_assert_eq!(path.as_str(), "test.toml");
                    proptest::prop_assert!(!reason.is_empty() && !reason.contains('\n'), "{}: {}", key, reason);
                }
                Err(error) => proptest::prop_assert!(false, "{}", error),
            }
        }
    }
}
