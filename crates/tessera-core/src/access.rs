//! Access tokens: JWTs in the RFC 9068 profile, minted and checked here.
//!
//! Checking order (the first failure wins): structure and signature ([`crate::jws`]), then the
//! claims: every required claim present with its JSON type (`iss sub aud exp iat jti sid
//! client_id`), `iss` equal to ours, `aud` naming us, `exp` in the future and `nbf`/`iat` not in
//! it, each within the configured leeway. Only a token whose signature verified can be reported as
//! expired: a forged token is "invalid", whatever its `exp` says.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{SessionId, TokenId};
use crate::jwk::VerifyKeys;
use crate::jws::{self, JwsError};
use crate::keys::KeySet;

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names `ours`.
    pub fn contains(&self, ours: &str) -> bool {
        match self {
            Audience::One(a) => a == ours,
            Audience::Many(list) => list.iter().any(|a| a == ours),
        }
    }
}

/// The claims of a Tessera access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: this Tessera.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, seconds since the epoch (Tessera does not set it; honoured when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Token id, 128 random bits: what logout denies.
    pub jti: TokenId,
    /// The session the token belongs to.
    pub sid: SessionId,
    /// The OAuth client the session was started for (RFC 9068 §2.2).
    pub client_id: String,
    /// Space-separated scopes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The user's roles, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// What an access token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct AccessRules {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The audience that `aud` must name.
    pub audience: String,
    /// Lifetime of minted tokens.
    pub ttl: Duration,
    /// Tolerated clock difference for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Structure, header or signature (see [`JwsError`]).
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// A required claim is missing or has the wrong JSON type.
    #[error("invalid claims")]
    InvalidClaims,
    /// `iss` is not this Tessera.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not name this audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
}

impl TokenError {
    /// The stable error code a client sees: `token_expired` tells it to refresh (seed 000).
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Expired => "token_expired",
            _ => "invalid_token",
        }
    }
}

/// Whether to check `exp`. Only logout and refresh pairing look at expired tokens, to learn which
/// session they name; nothing is ever granted on an expired token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Refuse expired tokens.
    Enforce,
    /// Accept tokens whose `exp` has passed (signature and every other rule still apply).
    Ignore,
}

/// Mints a signed access token for `claims` with the current key of `keys`.
pub fn mint(keys: &KeySet, claims: &AccessClaims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize to JSON");
    jws::sign(keys.current(), &payload)
}

/// Verifies `token`: structure, header, signature, then claims, as the module docs say.
pub fn verify(
    token: &str,
    keys: &impl VerifyKeys,
    rules: &AccessRules,
    now: Timestamp,
    expiry: Expiry,
) -> Result<AccessClaims, TokenError> {
    let payload = jws::verify(token, keys)?;
    let claims: AccessClaims = serde_json::from_value(serde_json::Value::Object(payload))
        .map_err(|_| TokenError::InvalidClaims)?;
    check_claims(&claims, rules, now, expiry)?;
    Ok(claims)
}

fn check_claims(
    claims: &AccessClaims,
    rules: &AccessRules,
    now: Timestamp,
    expiry: Expiry,
) -> Result<(), TokenError> {
    if claims.iss != rules.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if !claims.aud.contains(&rules.audience) {
        return Err(TokenError::WrongAudience);
    }
    if claims.sub.is_empty() || claims.client_id.is_empty() {
        return Err(TokenError::InvalidClaims);
    }
    let leeway = i64::try_from(rules.leeway.as_secs()).unwrap_or(i64::MAX);
    // No token lives longer than this issuer makes them (`ttl`, when known): a token minted with
    // a leaked key cannot claim to outlive the key's removal by years.
    let ttl = i64::try_from(rules.ttl.as_secs()).unwrap_or(i64::MAX);
    if ttl > 0 && claims.exp.saturating_sub(claims.iat) > ttl.saturating_add(leeway) {
        return Err(TokenError::InvalidClaims);
    }
    let now = now.as_secs();
    // Valid while now < exp + leeway (RFC 7519 §4.1.4: "on or after" exp it is expired).
    if expiry == Expiry::Enforce && now >= claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    let not_before = claims.nbf.unwrap_or(i64::MIN).max(claims.iat);
    if not_before > now.saturating_add(leeway) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{SigningAlg, SigningKey};

    const NOW: i64 = 1_800_000_000;

    fn setup() -> (KeySet, AccessRules) {
        let key = SigningKey::generate(SigningAlg::EdDSA, Timestamp::from_secs(1)).expect("key");
        let rules = AccessRules {
            issuer: "https://auth.example".into(),
            audience: "api".into(),
            ttl: Duration::from_secs(300),
            leeway: Duration::from_secs(30),
        };
        (KeySet::new(vec![key]).expect("keys"), rules)
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            sub: "user-1".into(),
            aud: Audience::One("api".into()),
            exp: NOW + 300,
            iat: NOW,
            nbf: None,
            jti: TokenId::random(),
            sid: SessionId::random(),
            client_id: "tessera".into(),
            scope: None,
            roles: vec![],
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn a_token_claiming_a_longer_life_than_the_issuer_gives_is_refused() {
        let (keys, rules) = setup();
        let now = Timestamp::from_secs(NOW);
        let mut c = claims();
        c.exp = c.iat + 300 + 30;
        assert!(verify(&mint(&keys, &c), &keys, &rules, now, Expiry::Enforce).is_ok());
        c.exp += 1;
        assert_eq!(
            verify(&mint(&keys, &c), &keys, &rules, now, Expiry::Enforce),
            Err(TokenError::InvalidClaims)
        );
        let unknown_ttl = AccessRules {
            ttl: Duration::ZERO,
            ..rules
        };
        assert!(verify(&mint(&keys, &c), &keys, &unknown_ttl, now, Expiry::Enforce).is_ok());
    }

    #[test]
    fn mint_then_verify_round_trips() {
        let (keys, rules) = setup();
        let c = claims();
        let token = mint(&keys, &c);
        assert_eq!(
            verify(&token, &keys, &rules, at(NOW), Expiry::Enforce),
            Ok(c)
        );
    }

    #[test]
    fn time_claims_within_and_beyond_the_leeway() {
        let (keys, rules) = setup();
        let token = mint(&keys, &claims());
        let check = |t| verify(&token, &keys, &rules, at(t), Expiry::Enforce).map(|_| ());
        assert_eq!(check(NOW + 329), Ok(()), "inside the leeway");
        assert_eq!(
            check(NOW + 330),
            Err(TokenError::Expired),
            "exp + leeway reached"
        );
        assert_eq!(check(NOW - 30), Ok(()), "iat within the leeway");
        assert_eq!(
            check(NOW - 31),
            Err(TokenError::NotYetValid),
            "iat in the future"
        );
        assert_eq!(
            verify(&token, &keys, &rules, at(NOW + 10_000), Expiry::Ignore).map(|_| ()),
            Ok(()),
            "expiry ignored on request"
        );
        let mut future = claims();
        future.nbf = Some(NOW + 100);
        let token = mint(&keys, &future);
        assert_eq!(
            verify(&token, &keys, &rules, at(NOW), Expiry::Enforce).map(|_| ()),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn issuer_and_audience() {
        let (keys, rules) = setup();
        let cases = [
            (
                "wrong iss",
                {
                    let mut c = claims();
                    c.iss = "https://evil.example".into();
                    c
                },
                Err(TokenError::WrongIssuer),
            ),
            (
                "other aud",
                {
                    let mut c = claims();
                    c.aud = Audience::One("other".into());
                    c
                },
                Err(TokenError::WrongAudience),
            ),
            (
                "aud list with ours",
                {
                    let mut c = claims();
                    c.aud = Audience::Many(vec!["x".into(), "api".into()]);
                    c
                },
                Ok(()),
            ),
            (
                "aud list without ours",
                {
                    let mut c = claims();
                    c.aud = Audience::Many(vec!["x".into()]);
                    c
                },
                Err(TokenError::WrongAudience),
            ),
        ];
        for (name, c, expected) in cases {
            let token = mint(&keys, &c);
            assert_eq!(
                verify(&token, &keys, &rules, at(NOW), Expiry::Enforce).map(|_| ()),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn claims_with_missing_or_mistyped_members_are_invalid() {
        let (keys, rules) = setup();
        let base = serde_json::to_value(claims()).expect("json");
        let mut cases: Vec<(String, serde_json::Value)> = Vec::new();
        for name in ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id"] {
            let mut c = base.clone();
            c.as_object_mut().expect("object").remove(name);
            cases.push((format!("missing {name}"), c));
        }
        for (name, value) in [
            ("exp as string", serde_json::json!(format!("{}", NOW + 300))),
            ("exp as float", serde_json::json!((NOW + 300) as f64 + 0.5)),
            ("exp huge", serde_json::json!(1e300)),
        ] {
            let mut c = base.clone();
            c["exp"] = value;
            cases.push((name.into(), c));
        }
        for (name, payload) in cases {
            let token = jws::sign(keys.current(), payload.to_string().as_bytes());
            assert_eq!(
                verify(&token, &keys, &rules, at(NOW), Expiry::Enforce).map(|_| ()),
                Err(TokenError::InvalidClaims),
                "{name}"
            );
        }
        let mut negative = claims();
        negative.exp = -1;
        let token = mint(&keys, &negative);
        assert_eq!(
            verify(&token, &keys, &rules, at(NOW), Expiry::Enforce).map(|_| ()),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn duplicate_claims_are_refused() {
        let (keys, rules) = setup();
        let c = serde_json::to_string(&claims()).expect("json");
        // A correctly signed payload whose only fault is a second `sub`: never "last one wins".
        let doubled = format!("{},\"sub\":\"admin\"}}", &c[..c.len() - 1]);
        let token = jws::sign(keys.current(), doubled.as_bytes());
        assert_eq!(
            verify(&token, &keys, &rules, at(NOW), Expiry::Enforce).map(|_| ()),
            Err(TokenError::Jws(JwsError::Malformed))
        );
    }

    #[test]
    fn forged_expired_tokens_are_invalid_not_expired() {
        let (keys, rules) = setup();
        let (other_keys, _) = setup();
        let mut c = claims();
        c.exp = NOW - 1000;
        let forged = mint(&other_keys, &c);
        let err = verify(&forged, &keys, &rules, at(NOW), Expiry::Enforce).expect_err("forged");
        assert_eq!(err.code(), "invalid_token");
        let real = mint(&keys, &c);
        let err = verify(&real, &keys, &rules, at(NOW), Expiry::Enforce).expect_err("expired");
        assert_eq!(err.code(), "token_expired");
    }
}
