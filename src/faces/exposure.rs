//! Faces that would listen beyond loopback with no credential: Switchboard refuses to start
//! with them (exit code 2, and what to set), unless the face's `allow_unauthenticated = true`
//! says the user means it; the banner then warns.
//!
//! The custom face and the HTTP face always have a token (generated when none is set), and the
//! Socket.IO face without `api_keys` refuses every client, so they are never unguarded. A
//! credential that is still the samples' placeholder (`change-me`) counts as none.

use std::fmt;
use std::net::SocketAddr;

use crate::config::{Config, Listener};

/// A face listening beyond loopback with no credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unguarded {
    pub face: &'static str,
    bind: SocketAddr,
    /// The missing credential, as the setting that gives it.
    setting: &'static str,
    allowed: bool,
}

impl fmt::Display for Unguarded {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} listens on {} (beyond this computer) with no {} (or only the samples' \
             {PLACEHOLDER})",
            self.face, self.bind, self.setting
        )
    }
}

impl Unguarded {
    /// The banner's warning for a face started anyway, listening at `url`.
    pub fn warning(&self, url: &str) -> String {
        format!(
            "WARNING: {} listens on {url} with no {}: anyone on your network can connect to it \
             (allow_unauthenticated = true)",
            self.face, self.setting
        )
    }
}

/// Why Switchboard does not start.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", refusal(.0))]
pub struct Refused(pub Vec<Unguarded>);

fn refusal(faces: &[Unguarded]) -> String {
    faces
        .iter()
        .map(|face| {
            format!(
                "{face}: anyone on your network could connect to it. Set {} (not the samples' \
                 {PLACEHOLDER}), or bind it to 127.0.0.1, or set `allow_unauthenticated = true` \
                 in [{}] if that is what you want",
                face.setting, face.face
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The placeholder credential of the samples and the README: anyone who read them knows it.
pub const PLACEHOLDER: &str = "change-me";

/// Every enabled face beyond loopback with no credential.
pub fn unguarded(config: &Config) -> Vec<Unguarded> {
    let face = |face, listener: &Listener, open: bool, setting| {
        (listener.enabled && listener.exposed() && open).then_some(Unguarded {
            face,
            bind: listener.bind,
            setting,
            allowed: listener.allow_unauthenticated,
        })
    };
    [
        face(
            "streamerbot",
            &config.streamerbot.listener,
            [PLACEHOLDER, ""].contains(&config.streamerbot.password.expose()),
            "streamerbot.password",
        ),
        face(
            "astro",
            &config.astro.listener,
            config.astro.tokens.is_empty()
                || config
                    .astro
                    .tokens
                    .iter()
                    .any(|token| token.token.expose() == PLACEHOLDER),
            "[[astro.tokens]]",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Refuses the faces that are unguarded without `allow_unauthenticated = true`.
pub fn check(config: &Config) -> Result<(), Refused> {
    let refused: Vec<Unguarded> = unguarded(config)
        .into_iter()
        .filter(|face| !face.allowed)
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Refused(refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, RawConfig};

    fn config(toml: &str) -> Config {
        let raw: RawConfig = toml::from_str(toml).expect("valid toml");
        Config::resolve(raw, Overrides::default(), "test").expect("valid config")
    }

    #[test]
    fn loopback_faces_need_no_credential() {
        assert_eq!(check(&config("")), Ok(()));
        assert!(unguarded(&config("")).is_empty());
    }

    #[test]
    fn a_face_beyond_loopback_needs_its_credential_or_the_users_word() {
        let open = config("[streamerbot]\nbind = \"0.0.0.0:8080\"\n[astro]\nbind = \"[::]:7896\"");
        let Err(Refused(faces)) = check(&open) else {
            panic!("refused");
        };
        let names: Vec<_> = faces.iter().map(|face| face.face).collect();
        assert_eq!(names, ["streamerbot", "astro"]);
        let message = Refused(faces).to_string();
        assert!(
            message.contains("streamerbot listens on 0.0.0.0:8080"),
            "{message}"
        );
        assert!(message.contains("Set streamerbot.password"), "{message}");

        let guarded = config(
            "[streamerbot]\nbind = \"0.0.0.0:8080\"\npassword = \"p\"\n\
             [socketio]\nbind = \"0.0.0.0:3000\"",
        );
        assert_eq!(check(&guarded), Ok(()));
        let sample = config("[streamerbot]\nbind = \"0.0.0.0:8080\"\npassword = \"change-me\"");
        assert!(check(&sample).is_err());

        let meant = config("[streamerbot]\nbind = \"0.0.0.0:8080\"\nallow_unauthenticated = true");
        assert_eq!(check(&meant), Ok(()));
        assert_eq!(unguarded(&meant).len(), 1);
    }
}
