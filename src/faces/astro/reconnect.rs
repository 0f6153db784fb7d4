//! Reconnect tokens (docs/astro.md §9): how a client gets its subscriptions back after a restart.
//!
//! At shutdown the face asks [`Keys::issue`] for one token per connection, listing its
//! subscriptions, and sends it in the `reconnect` message. A client that connects again with
//! `?reconnect_token=` has it checked by [`Keys::verify`]; the face then restores each [`Sub`]
//! whose token fingerprint still grants it. The token is a compact JWT signed with HS256 under a
//! 32-byte secret ([`new_secret`]) that the store keeps, so tokens outlive a restart.
//!
//! Signing and checking are left to the `jsonwebtoken` crate; this module only fixes the claims
//! and the rules: HS256 only, issuer `switchboard`, audience `astro-reconnect`, and a lifetime
//! of 5 minutes with no leeway, measured against the clock the caller passes.

use std::fmt;

use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The `iss` of every reconnect token.
const ISSUER: &str = "switchboard";
/// The `aud` of every reconnect token: a token meant for something else is refused.
const AUDIENCE: &str = "astro-reconnect";
/// How long a reconnect token is valid, in seconds.
pub const LIFETIME_SECONDS: i64 = 300;

/// One subscription carried by a reconnect token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sub {
    pub topic: String,
    /// The canonical room.
    pub room: String,
    /// The fingerprint of the token that authorised the subscription (see `Grant::fp`).
    pub fp: String,
}

#[derive(Serialize)]
struct IssuedClaims<'a> {
    iss: &'static str,
    aud: &'static str,
    iat: i64,
    exp: i64,
    subs: &'a [Sub],
}

/// The claims read back; `iss` and `aud` are checked by the decoder.
#[derive(Deserialize)]
struct Claims {
    exp: i64,
    subs: Vec<Sub>,
}

/// Why a reconnect token was refused. The face closes the connection with 1008 whatever the
/// reason; the variants are for the log.
#[derive(Debug, thiserror::Error)]
pub enum ReconnectError {
    #[error("the reconnect token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("the reconnect token's signature does not match")]
    BadSignature,
    #[error("the reconnect token is not signed with HS256")]
    WrongAlgorithm,
    #[error("the reconnect token is not meant for Astro reconnects")]
    WrongAudience,
    #[error("the reconnect token was not issued by Switchboard")]
    WrongIssuer,
    #[error("the reconnect token is malformed")]
    Malformed(#[source] JwtError),
}

impl From<JwtError> for ReconnectError {
    fn from(error: JwtError) -> ReconnectError {
        match error.kind() {
            ErrorKind::InvalidSignature => ReconnectError::BadSignature,
            ErrorKind::InvalidAlgorithm => ReconnectError::WrongAlgorithm,
            ErrorKind::InvalidAudience => ReconnectError::WrongAudience,
            ErrorKind::InvalidIssuer => ReconnectError::WrongIssuer,
            _ => ReconnectError::Malformed(error),
        }
    }
}

/// The signing and checking keys made from the secret.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for Keys {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Keys(***)")
    }
}

impl Keys {
    pub fn new(secret: &[u8]) -> Keys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 0;
        // The crate would compare `exp` with the system clock; `verify` compares it with the
        // caller's clock instead, so that the one check is the one tests exercise.
        validation.validate_exp = false;
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A reconnect token for `subs`, issued at `now` (Unix seconds) and valid for 5 minutes.
    pub fn issue(&self, subs: &[Sub], now: i64) -> String {
        let claims = IssuedClaims {
            iss: ISSUER,
            aud: AUDIENCE,
            iat: now,
            exp: now + LIFETIME_SECONDS,
            subs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of serializable claims with an in-memory key cannot fail")
    }

    /// The subscriptions of a token this server issued, if its signature (HS256 only), `iss`
    /// and `aud` check out and it has not expired at `now`. A token is expired from its `exp`
    /// second on (RFC 7519: it must not be accepted "on or after" that time); there is no
    /// leeway.
    pub fn verify(&self, token: &str, now: i64) -> Result<Vec<Sub>, ReconnectError> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        if now >= claims.exp {
            return Err(ReconnectError::Expired {
                exp: claims.exp,
                now,
            });
        }
        Ok(claims.subs)
    }
}

/// A new reconnect secret: 32 bytes from the operating system's random source.
///
/// # Panics
///
/// When the operating system cannot provide random bytes, which leaves nothing safe to sign with.
pub fn new_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).expect("the operating system provides random bytes");
    secret
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::{json, Value};

    use super::*;

    const NOW: i64 = 1_763_805_900;

    fn subs() -> Vec<Sub> {
        vec![
            Sub {
                topic: "channel.activities".into(),
                room: "channel-1".into(),
                fp: "c6ec0fbc64da2f25".into(),
            },
            Sub {
                topic: "channel.tips".into(),
                room: "channel-1".into(),
                fp: "c6ec0fbc64da2f25".into(),
            },
        ]
    }

    fn keys() -> Keys {
        Keys::new(b"0123456789abcdef0123456789abcdef")
    }

    /// The token's parts: header and claims decoded, signature as sent.
    fn parts(token: &str) -> (Value, Value, String) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let decode = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        (decode(parts[0]), decode(parts[1]), parts[2].to_owned())
    }

    /// A token with the given claims, signed like ours with `secret`.
    fn signed(claims: &Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn claims(aud: &str, iss: &str, exp: i64) -> Value {
        json!({"iss": iss, "aud": aud, "iat": exp - 300, "exp": exp, "subs": subs()})
    }

    #[test]
    fn a_token_round_trips_its_subscriptions() {
        let keys = keys();
        let token = keys.issue(&subs(), NOW);
        assert_eq!(keys.verify(&token, NOW).unwrap(), subs());
        assert_eq!(keys.verify(&token, NOW + 299).unwrap(), subs());
        assert_eq!(keys.verify(&token, NOW).unwrap(), subs(), "usable twice");
        assert!(keys.issue(&[], NOW).len() > 20);
        assert_eq!(keys.verify(&keys.issue(&[], NOW), NOW).unwrap(), []);
    }

    #[test]
    fn the_claims_are_those_of_the_protocol() {
        let (header, claims, _) = parts(&keys().issue(&subs(), NOW));
        assert_eq!(header["alg"], "HS256");
        assert_eq!(
            claims,
            json!({"iss":"switchboard","aud":"astro-reconnect","iat":1763805900,"exp":1763806200,"subs":[{"topic":"channel.activities","room":"channel-1","fp":"c6ec0fbc64da2f25"},{"topic":"channel.tips","room":"channel-1","fp":"c6ec0fbc64da2f25"}]})
        );
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let keys = keys();
        let token = keys.issue(&subs(), NOW);
        let (header, _, signature) = parts(&token);
        let payload = token.split('.').nth(1).unwrap();

        // A different signature over the same claims.
        let first = signature.chars().next().unwrap();
        let other = if first == 'A' { 'B' } else { 'A' };
        let forged = format!(
            "{}.{payload}.{other}{}",
            token.split('.').next().unwrap(),
            &signature[1..]
        );
        assert!(matches!(
            keys.verify(&forged, NOW),
            Err(ReconnectError::BadSignature)
        ));

        // Other claims under the original signature.
        let mut claims = claims(AUDIENCE, ISSUER, NOW + 300);
        claims["subs"][0]["room"] = json!("channel-2");
        let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let forged = format!("{}.{}.{signature}", encode(&header), encode(&claims));
        assert!(matches!(
            keys.verify(&forged, NOW),
            Err(ReconnectError::BadSignature)
        ));

        // Another secret.
        let foreign = signed(&claims, b"another secret of thirty-two by.");
        assert!(matches!(
            keys.verify(&foreign, NOW),
            Err(ReconnectError::BadSignature)
        ));
        assert!(Keys::new(b"x").verify(&token, NOW).is_err());
    }

    #[test]
    fn an_expired_token_is_refused_without_leeway() {
        let keys = keys();
        let token = keys.issue(&subs(), NOW - 301);
        assert!(matches!(
            keys.verify(&token, NOW),
            Err(ReconnectError::Expired { exp, now: NOW }) if exp == NOW - 1
        ));
        let token = keys.issue(&subs(), NOW - 300);
        assert!(matches!(
            keys.verify(&token, NOW),
            Err(ReconnectError::Expired { .. })
        ));
        assert!(keys.verify(&keys.issue(&subs(), NOW - 299), NOW).is_ok());
    }

    #[test]
    fn a_token_for_another_audience_or_issuer_is_refused() {
        let keys = keys();
        let secret = b"0123456789abcdef0123456789abcdef";
        let wrong_audience = signed(&claims("astro", ISSUER, NOW + 300), secret);
        assert!(matches!(
            keys.verify(&wrong_audience, NOW),
            Err(ReconnectError::WrongAudience)
        ));
        let wrong_issuer = signed(&claims(AUDIENCE, "streamelements", NOW + 300), secret);
        assert!(matches!(
            keys.verify(&wrong_issuer, NOW),
            Err(ReconnectError::WrongIssuer)
        ));
        let mut no_audience = claims(AUDIENCE, ISSUER, NOW + 300);
        no_audience.as_object_mut().unwrap().remove("aud");
        assert!(keys.verify(&signed(&no_audience, secret), NOW).is_err());
        // The control: the same claims with the right audience and issuer pass.
        let right = signed(&claims(AUDIENCE, ISSUER, NOW + 300), secret);
        assert_eq!(keys.verify(&right, NOW).unwrap(), subs());
    }

    #[test]
    fn other_algorithms_and_garbage_are_refused() {
        let keys = keys();
        let secret = b"0123456789abcdef0123456789abcdef";
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(AUDIENCE, ISSUER, NOW + 300),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert!(matches!(
            keys.verify(&hs512, NOW),
            Err(ReconnectError::WrongAlgorithm)
        ));
        let token = keys.issue(&subs(), NOW);
        let payload = token.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(keys.verify(&none, NOW).is_err());
        for garbage in ["", "a.b.c", "not a token"] {
            assert!(matches!(
                keys.verify(garbage, NOW),
                Err(ReconnectError::Malformed(_))
            ));
        }
    }

    #[test]
    fn secrets_are_random() {
        let first = new_secret();
        assert_ne!(first, new_secret());
        assert_ne!(first, [0u8; 32]);
    }

    proptest::proptest! {
        /// A reconnect token changed in any way, or any string at all, is refused or (a change
        /// the encoding ignores) read back as exactly what was issued: it never panics and no
        /// other subscriptions can be forged.
        #[test]
        fn a_mutated_token_is_refused_or_unchanged(
            token in crate::mutate::mutated_text(vec![keys().issue(&subs(), NOW)]),
            other in crate::mutate::text(),
        ) {
            let keys = keys();
            if let Ok(read) = keys.verify(&token, NOW) {
                proptest::prop_assert_eq!(read, subs());
            }
            proptest::prop_assert!(keys.verify(&other, NOW).is_err());
        }
    }
}
