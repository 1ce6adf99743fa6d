//! The whole check of a presented bearer access token, in one place for every verifier: Tessera's
//! own bearer endpoints and the `tessera-verify` library of resource servers run this code.
//!
//! 1. Signature and claims ([`access::verify`]), skipped for a token that verified before and has
//!    not expired ([`VerifiedCache`], keyed by the hash of the exact token).
//! 2. THE validity check ([`validity::check`]) against the revocation state, on every use.
//!
//! The two steps are separate functions so a caller can run the first outside the lock that
//! guards its revocation state.

use std::sync::Arc;

use crate::access::{self, AccessClaims, AccessRules, Expiry, TokenError};
use crate::clock::Timestamp;
use crate::jwk::VerifyKeys;
use crate::revocation::RevocationSet;
use crate::validity::{self, Dead, Subject};
use crate::verified::VerifiedCache;

/// Step 1: the token's claims, if its signature and claims hold at `now`.
pub fn claims(
    token: &str,
    keys: &impl VerifyKeys,
    rules: &AccessRules,
    verified: &VerifiedCache,
    now: Timestamp,
) -> Result<Arc<AccessClaims>, TokenError> {
    let leeway = i64::try_from(rules.leeway.as_secs()).unwrap_or(i64::MAX);
    if let Some(claims) = verified.get(token, now.as_secs(), leeway) {
        return Ok(claims);
    }
    let claims = Arc::new(access::verify(token, keys, rules, now, Expiry::Enforce)?);
    verified.insert(token, Arc::clone(&claims), now.as_secs(), leeway);
    Ok(claims)
}

/// Step 2: whether the verified `claims` are still alive in `revocations`.
pub fn alive(
    claims: &AccessClaims,
    revocations: &RevocationSet,
    now: Timestamp,
) -> Result<(), Dead> {
    validity::check(Subject::Access(claims), revocations, now)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::access::Audience;
    use crate::ids::{SessionId, TokenId};
    use crate::jwk::PublicKeySet;
    use crate::keys::{KeySet, SigningAlg, SigningKey};
    use crate::revocation::RevocationEntry;

    const NOW: i64 = 1_800_000_000;

    fn setup(alg: SigningAlg) -> (KeySet, AccessRules, AccessClaims) {
        let key = SigningKey::generate(alg, Timestamp::from_secs(1)).expect("key");
        let rules = AccessRules {
            issuer: "https://auth.example".into(),
            audience: "api".into(),
            ttl: Duration::from_secs(300),
            leeway: Duration::from_secs(5),
        };
        let claims = AccessClaims {
            iss: rules.issuer.clone(),
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
        };
        (KeySet::new(vec![key]).expect("keys"), rules, claims)
    }

    #[test]
    fn public_keys_from_the_jwks_verify_what_the_private_keys_signed() {
        for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
            let (keys, rules, claims) = setup(alg);
            let token = access::mint(&keys, &claims);
            let public = PublicKeySet::from_jwks(&keys.jwks()).expect("jwks");
            let cache = VerifiedCache::new(16);
            let now = Timestamp::from_secs(NOW);
            let got = super::claims(&token, &public, &rules, &cache, now).expect("verifies");
            assert_eq!(*got, claims, "{alg}");
            let mut tampered = token.clone();
            tampered.pop();
            tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
            assert!(
                super::claims(&tampered, &public, &rules, &cache, now).is_err(),
                "{alg}"
            );
        }
    }

    #[test]
    fn a_remembered_token_skips_the_signature_but_not_expiry_nor_revocation() {
        let (keys, rules, claims) = setup(SigningAlg::EdDSA);
        let token = access::mint(&keys, &claims);
        let cache = VerifiedCache::new(16);
        let now = Timestamp::from_secs(NOW);
        super::claims(&token, &keys, &rules, &cache, now).expect("first sight");
        // The key is gone: only the memory can answer now.
        let other = KeySet::new(vec![SigningKey::generate(
            SigningAlg::EdDSA,
            Timestamp::from_secs(1),
        )
        .expect("key")])
        .expect("keys");
        let again = super::claims(&token, &other, &rules, &cache, now).expect("remembered");
        let later = Timestamp::from_secs(NOW + 305);
        assert_eq!(
            super::claims(&token, &other, &rules, &cache, later),
            Err(TokenError::Jws(crate::jws::JwsError::UnknownKey)),
            "past exp + leeway the memory does not answer"
        );
        let mut set = RevocationSet::default();
        assert_eq!(alive(&again, &set, now), Ok(()));
        set.apply(&RevocationEntry::DeniedToken {
            jti: claims.jti,
            until: Timestamp::from_secs(NOW + 400),
        });
        assert_eq!(alive(&again, &set, now), Err(Dead::TokenDenied));
    }
}
