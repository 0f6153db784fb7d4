//! Streamer.bot's password handshake (docs/streamerbot.md §3): a salt and a challenge per connection,
//! and `base64(sha256(base64(sha256(password + salt)) + challenge))` as the expected answer; and
//! the [`Lockout`] that stops a peer from guessing the password by reconnecting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The salt and challenge one connection must answer.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub salt: String,
    pub challenge: String,
}

impl Default for Challenge {
    fn default() -> Challenge {
        Challenge::new()
    }
}

impl Challenge {
    /// 32 random bytes each from the operating system's CSPRNG, base64 encoded (44 characters).
    pub fn new() -> Challenge {
        Challenge {
            salt: random_base64(),
            challenge: random_base64(),
        }
    }

    /// Whether `candidate` is the answer for `password`, compared in constant time.
    pub fn verify(&self, password: &str, candidate: &str) -> bool {
        let expected = answer(password, &self.salt, &self.challenge);
        let expected = Sha256::digest(expected.as_bytes());
        let candidate = Sha256::digest(candidate.as_bytes());
        expected.ct_eq(&candidate).into()
    }
}

fn random_base64() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the operating system provides random bytes");
    STANDARD.encode(bytes)
}

/// The expected `authentication` for a password, salt and challenge.
pub fn answer(password: &str, salt: &str, challenge: &str) -> String {
    let secret = STANDARD.encode(Sha256::digest(format!("{password}{salt}").as_bytes()));
    STANDARD.encode(Sha256::digest(format!("{secret}{challenge}").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_the_spec_vectors() {
        let salt = "c2FsdHNhbHRzYWx0";
        let challenge = "Y2hhbGxlbmdlY2hhbGxlbmdl";
        assert_eq!(
            answer("hunter2", salt, challenge),
            "CevL7R341TJkkZPxtdu/kWFOllaqFMV0D0np6g4AmF4="
        );
        assert_eq!(
            answer("pässwörd✓", salt, challenge),
            "gAj58qfoCtFxkqiwkyxzMnIH2juNFVerSE0cNaRoweo="
        );
    }

    #[test]
    fn challenges_are_44_characters_and_fresh() {
        let one = Challenge::new();
        let two = Challenge::new();
        assert_eq!(one.salt.len(), 44);
        assert_eq!(one.challenge.len(), 44);
        assert_ne!(one.salt, two.salt);
        let right = answer("pw", &one.salt, &one.challenge);
        assert!(one.verify("pw", &right));
        assert!(!one.verify("pw", "wrong"));
        assert!(!two.verify("pw", &right));
    }
}

/// How many failed authentications one address may make within [`LOCKOUT_WINDOW`] before its
/// attempts are refused unchecked until the window ends.
pub const MAX_PEER_FAILURES: u32 = 10;
/// The window of [`MAX_PEER_FAILURES`], counted from an address's first failure in it.
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(60);
/// How many addresses are tracked; the one whose window started first makes room.
const MAX_PEERS: usize = 4096;

/// Failed authentications per peer address, across its connections.
#[derive(Default)]
pub struct Lockout(Mutex<HashMap<IpAddr, (u32, Instant)>>);

impl Lockout {
    /// Whether `peer`'s attempts are refused unchecked now.
    pub fn locked(&self, peer: IpAddr) -> bool {
        let failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(&peer).is_some_and(|(count, since)| {
            *count >= MAX_PEER_FAILURES && since.elapsed() <= LOCKOUT_WINDOW
        })
    }

    /// Counts one failed authentication of `peer`.
    pub fn failed(&self, peer: IpAddr) {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_PEERS && !failures.contains_key(&peer) {
            failures.retain(|_, (_, since)| since.elapsed() <= LOCKOUT_WINDOW);
            if failures.len() >= MAX_PEERS {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(peer, _)| *peer);
                if let Some(oldest) = oldest {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(peer).or_insert((0, Instant::now()));
        if entry.1.elapsed() > LOCKOUT_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod lockout_tests {
    use super::*;

    #[test]
    fn a_peer_is_locked_after_its_failures_and_others_are_not() {
        let lockout = Lockout::default();
        let (peer, other) = ("10.0.0.7".parse().unwrap(), "10.0.0.8".parse().unwrap());
        for _ in 0..MAX_PEER_FAILURES - 1 {
            lockout.failed(peer);
        }
        assert!(!lockout.locked(peer));
        lockout.failed(peer);
        assert!(lockout.locked(peer));
        assert!(!lockout.locked(other));
    }
}
