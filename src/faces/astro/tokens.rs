//! The Astro tokens of the configuration and what each one grants (docs/astro.md §8).
//!
//! [`Tokens`] is built once from `[[astro.tokens]]`. A `subscribe` presents a token and the face
//! asks [`Tokens::find`] for its [`Grant`]: the room every subscription made with it belongs to,
//! its scopes, and a fingerprint. The fingerprint stands for the token in reconnect tokens
//! (§9), so that a restored subscription can be checked again with [`Tokens::by_fp`] without
//! the token itself ever leaving the server.
//!
//! Only SHA-256 digests of the tokens are kept here; the tokens themselves stay in the
//! configuration's `Secret`s.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::topics::Topic;
use crate::config::AstroToken;

/// The scope that grants every topic.
const ALL_SCOPES: &str = "*";

/// What one configured token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The canonical room of every subscription made with the token.
    pub room: String,
    pub scopes: Vec<String>,
    /// The first 16 hex digits of the token's SHA-256: names the token in reconnect tokens.
    pub fp: String,
}

impl Grant {
    /// Whether the token may subscribe to `topic`: `"*"` grants every scope, and a topic
    /// without a scope needs only the token.
    pub fn grants(&self, topic: &Topic) -> bool {
        match topic.scope {
            None => true,
            Some(scope) => self
                .scopes
                .iter()
                .any(|held| held == ALL_SCOPES || held == scope),
        }
    }
}

struct Entry {
    digest: [u8; 32],
    grant: Grant,
}

/// Every configured token, by digest.
pub struct Tokens {
    entries: Vec<Entry>,
}

impl fmt::Debug for Tokens {
    /// Lists the grants only: a digest of a short token is enough to guess it offline.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_list()
            .entries(self.entries.iter().map(|entry| &entry.grant))
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The fingerprint of a token: the first 16 hex digits of its SHA-256.
fn fingerprint(digest: &[u8; 32]) -> String {
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Tokens {
    pub fn new(tokens: &[AstroToken]) -> Tokens {
        let entries = tokens
            .iter()
            .map(|token| {
                let digest = digest(token.token.expose());
                Entry {
                    grant: Grant {
                        room: token.room.clone(),
                        scopes: token.scopes.clone(),
                        fp: fingerprint(&digest),
                    },
                    digest,
                }
            })
            .collect();
        Tokens { entries }
    }

    /// The grant of the presented token, if it is configured (§4 check 10).
    ///
    /// The digest of `presented` is compared with every configured digest in constant time,
    /// and the matching index is selected without a branch, so the time taken depends on
    /// neither the tokens' content nor which of them matched.
    pub fn find(&self, presented: &str) -> Option<&Grant> {
        let presented = digest(presented);
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (position, entry) in self.entries.iter().enumerate() {
            let matches = entry.digest.ct_eq(&presented);
            index = u64::conditional_select(&index, &(position as u64), matches);
            found |= matches;
        }
        if bool::from(found) {
            self.entries.get(index as usize).map(|entry| &entry.grant)
        } else {
            None
        }
    }

    /// The grant of the token with fingerprint `fp`, when one is still configured (§9).
    pub fn by_fp(&self, fp: &str) -> Option<&Grant> {
        self.entries
            .iter()
            .map(|entry| &entry.grant)
            .find(|grant| grant.fp == fp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::faces::astro::topics::topic;

    fn token(token: &str, room: &str, scopes: &[&str]) -> AstroToken {
        AstroToken {
            token: Secret(token.to_owned()),
            room: room.to_owned(),
            scopes: scopes.iter().map(|scope| scope.to_string()).collect(),
        }
    }

    fn tokens() -> Tokens {
        Tokens::new(&[
            token("owner-secret", "channel-1", &["*"]),
            token(
                "overlay-secret",
                "channel-1",
                &["activities:read", "tips:read"],
            ),
            token("other-secret", "channel-2", &[]),
        ])
    }

    #[test]
    fn a_configured_token_finds_its_grant() {
        let tokens = tokens();
        let owner = tokens.find("owner-secret").unwrap();
        assert_eq!(owner.room, "channel-1");
        assert_eq!(owner.scopes, ["*"]);
        // printf %s owner-secret | sha256sum
        assert_eq!(owner.fp, "03f99ad2bb8f470a");
        let other = tokens.find("other-secret").unwrap();
        assert_eq!(other.room, "channel-2");
        assert!(other.scopes.is_empty());
    }

    #[test]
    fn a_wrong_token_finds_nothing() {
        let tokens = tokens();
        for presented in [
            "",
            "owner-secret ",
            "Owner-secret",
            "owner",
            "03f99ad2bb8f470a",
        ] {
            assert!(tokens.find(presented).is_none(), "{presented:?}");
        }
        assert!(Tokens::new(&[]).find("owner-secret").is_none());
    }

    #[test]
    fn fingerprints_find_the_grant() {
        let tokens = tokens();
        let overlay = tokens.find("overlay-secret").unwrap();
        // printf %s overlay-secret | sha256sum
        assert_eq!(overlay.fp, "601a252a4d984839");
        assert_eq!(tokens.by_fp("601a252a4d984839"), Some(overlay));
        assert!(tokens.by_fp("601a252a4d98483").is_none());
        assert!(tokens.by_fp("overlay-secret").is_none());
    }

    #[test]
    fn scopes_grant_their_topics() {
        let tokens = tokens();
        let activities = topic("channel.activities").unwrap();
        let broadcast = topic("channel.overlay.broadcast").unwrap();
        let contests = topic("channel.contests").unwrap();

        let owner = tokens.find("owner-secret").unwrap();
        assert!(owner.grants(activities) && owner.grants(broadcast) && owner.grants(contests));

        let overlay = tokens.find("overlay-secret").unwrap();
        assert!(overlay.grants(activities));
        assert!(overlay.grants(topic("channel.tips").unwrap()));
        assert!(!overlay.grants(broadcast));
        assert!(overlay.grants(contests));

        let other = tokens.find("other-secret").unwrap();
        assert!(!other.grants(activities));
        assert!(other.grants(contests));
    }

    #[test]
    fn debug_output_does_not_show_digests() {
        let debug = format!("{:?}", tokens());
        assert!(debug.contains("03f99ad2bb8f470a"));
        assert!(!debug.contains("03f99ad2bb8f470ab4a6"));
        assert!(!debug.contains("owner-secret"));
    }
}
