//! Tessera's token engine: pure logic over a clock and keys, no I/O.
//!
//! Everything that decides whether someone is logged in lives here, so every rule can be unit-tested
//! with an injected clock and no store.
//!
//! # Layout
//! - [`clock`]: [`Timestamp`] and the injectable [`Clock`].
//! - [`ids`]: session ids, token ids (`jti`), user ids.
//! - [`keys`]: signing keys (EdDSA, ES256, RS256, HS256), JWKS, refresh MAC keys.
//! - [`jwk`]: public keys read from a JWKS document, for verifiers without private keys.
//! - [`bearer`]: the whole check of a presented access token, shared by Tessera and verifiers.
//! - [`access`]: access tokens (RFC 9068 JWTs): mint and verify.
//! - [`refresh`]: refresh tokens `rt1.<sid>.<gen>.<tag>`.
//! - [`session`]: the stored session state and its lifetimes.
//! - [`decision`]: what presenting a refresh token means (rotate, grace retry, reuse, refusal).
//! - [`revocation`]: the revocation state (denied `jti`, revoked `sid`, user cutoff).
//! - [`validity`]: the ONE function that says whether a token or session is alive.
//! - [`password`]: argon2id hashing.
//! - [`verified`]: the memory of successful signature checks.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use tessera_core::access::{self, AccessClaims, AccessRules, Audience, Expiry};
//! use tessera_core::clock::Timestamp;
//! use tessera_core::ids::{SessionId, TokenId};
//! use tessera_core::keys::{KeySet, SigningAlg, SigningKey};
//!
//! let now = Timestamp::from_secs(1_800_000_000);
//! let keys = KeySet::new(vec![SigningKey::generate(SigningAlg::EdDSA, now).unwrap()]).unwrap();
//! let rules = AccessRules {
//!     issuer: "https://auth.example".into(),
//!     audience: "api".into(),
//!     ttl: Duration::from_secs(300),
//!     leeway: Duration::from_secs(30),
//! };
//! let claims = AccessClaims {
//!     iss: rules.issuer.clone(), sub: "user-1".into(), aud: Audience::One("api".into()),
//!     iat: now.as_secs(), exp: now.as_secs() + 300, nbf: None, jti: TokenId::random(),
//!     sid: SessionId::random(), client_id: "tessera".into(), scope: None, roles: vec![],
//! };
//! let token = access::mint(&keys, &claims);
//! assert_eq!(access::verify(&token, &keys, &rules, now, Expiry::Enforce), Ok(claims));
//! ```
#![warn(missing_docs)]

pub mod access;
pub mod bearer;
pub mod clock;
pub mod decision;
pub mod ids;
pub mod jwk;
pub mod jws;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod revocation;
pub mod session;
pub mod validity;
pub mod verified;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
