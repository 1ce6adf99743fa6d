//! Key material: access-token signing keys (EdDSA, ES256, RS256, HS256), their public JWKS form, and
//! the refresh-token MAC keys.
//!
//! Every signing key carries exactly one algorithm. Verification takes the algorithm from the key
//! named by `kid`, never from the token (RFC 8725 §3.1: "each key MUST be used with exactly one
//! algorithm"), which is what defeats `alg: none`, HS/RS confusion and algorithm swaps.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore as _;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// A JWS signing algorithm Tessera can issue access tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// Ed25519 (RFC 8037). The default: small, fast, deterministic.
    EdDSA,
    /// ECDSA on P-256 with SHA-256, raw `R || S` signatures (RFC 7518 §3.4).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys, for verifiers that know nothing else.
    RS256,
    /// HMAC-SHA-256. Only Tessera itself can verify these: no public key is published.
    HS256,
}

impl SigningAlg {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::HS256 => "HS256",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "EdDSA" | "eddsa" | "Ed25519" | "ed25519" => Ok(SigningAlg::EdDSA),
            "ES256" | "es256" => Ok(SigningAlg::ES256),
            "RS256" | "rs256" => Ok(SigningAlg::RS256),
            "HS256" | "hs256" => Ok(SigningAlg::HS256),
            _ => Err(KeyError::UnknownAlgorithm(s.to_owned())),
        }
    }
}

/// Why key material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The algorithm name is not one Tessera supports.
    #[error("unknown signing algorithm {0:?} (expected EdDSA, ES256, RS256 or HS256)")]
    UnknownAlgorithm(String),
    /// Stored key material could not be decoded.
    #[error("key {kid}: malformed key material")]
    Malformed {
        /// The key's id.
        kid: String,
    },
    /// The RSA key could not be generated.
    #[error("RSA key generation failed")]
    RsaGeneration,
}

/// Private key material for one algorithm, parsed once and kept ready to sign and verify.
#[derive(Clone)]
pub(crate) enum KeyMaterial {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
    Hmac([u8; 32]),
}

/// A key able to check one signature: one of ours, or a published public key. Carries the
/// key's one algorithm, which is the only one it is used with.
#[derive(Clone, Copy)]
pub struct KeyRef<'a> {
    pub(crate) alg: SigningAlg,
    pub(crate) material: MaterialRef<'a>,
}

impl fmt::Debug for KeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRef")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
pub(crate) enum MaterialRef<'a> {
    Private(&'a KeyMaterial),
    Public(&'a crate::jwk::PublicMaterial),
}

impl<'a> KeyRef<'a> {
    pub(crate) fn private(key: &'a SigningKey) -> Self {
        Self {
            alg: key.alg,
            material: MaterialRef::Private(&key.material),
        }
    }

    pub(crate) fn public(key: &'a crate::jwk::PublicKey) -> Self {
        Self {
            alg: key.alg(),
            material: MaterialRef::Public(&key.material),
        }
    }
}

/// One access-token signing key: id, algorithm, creation time and private material.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    created_at: Timestamp,
    pub(crate) material: KeyMaterial,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The stored form of a signing key (private: keep it in a 0600 file or encrypted).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredSigningKey {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// Creation time, unix milliseconds.
    pub created_at: i64,
    /// Private material, standard base64: Ed25519 seed, P-256 scalar, RSA PKCS#1 DER, or HMAC key.
    pub private: String,
    /// When the key starts signing, unix milliseconds (`None`: from its creation). A rotation
    /// publishes a key before it signs, so every verifier's cached JWKS already holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signs_from: Option<i64>,
}

impl fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn random_kid() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    /// Generates a fresh key for `alg` from the operating system's CSPRNG.
    pub fn generate(alg: SigningAlg, now: Timestamp) -> Result<Self, KeyError> {
        let mut rng = rand::rngs::OsRng;
        let material = match alg {
            SigningAlg::EdDSA => {
                KeyMaterial::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng))
            }
            SigningAlg::ES256 => KeyMaterial::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            SigningAlg::RS256 => KeyMaterial::Rsa(Box::new(
                rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|_| KeyError::RsaGeneration)?,
            )),
            SigningAlg::HS256 => {
                // RFC 7518 §3.2: an HS256 key is at least as long as the hash output.
                let mut key = [0u8; 32];
                rng.fill_bytes(&mut key);
                KeyMaterial::Hmac(key)
            }
        };
        Ok(Self {
            kid: random_kid(),
            alg,
            created_at: now,
            material,
        })
    }

    /// Restores a key from its stored form.
    pub fn from_stored(stored: &StoredSigningKey) -> Result<Self, KeyError> {
        let malformed = || KeyError::Malformed {
            kid: stored.kid.clone(),
        };
        let bytes = STANDARD.decode(&stored.private).map_err(|_| malformed())?;
        let material = match stored.alg {
            SigningAlg::EdDSA => {
                let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| malformed())?;
                KeyMaterial::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            SigningAlg::ES256 => KeyMaterial::P256(
                p256::ecdsa::SigningKey::from_slice(&bytes).map_err(|_| malformed())?,
            ),
            SigningAlg::RS256 => KeyMaterial::Rsa(Box::new(
                rsa::RsaPrivateKey::from_pkcs1_der(&bytes).map_err(|_| malformed())?,
            )),
            SigningAlg::HS256 => {
                KeyMaterial::Hmac(bytes.as_slice().try_into().map_err(|_| malformed())?)
            }
        };
        Ok(Self {
            kid: stored.kid.clone(),
            alg: stored.alg,
            created_at: Timestamp::from_millis(stored.created_at),
            material,
        })
    }

    /// The stored form of this key, private material included.
    pub fn to_stored(&self) -> Result<StoredSigningKey, KeyError> {
        let private = match &self.material {
            KeyMaterial::Ed25519(k) => STANDARD.encode(k.to_bytes()),
            KeyMaterial::P256(k) => STANDARD.encode(k.to_bytes()),
            KeyMaterial::Rsa(k) => STANDARD.encode(
                k.to_pkcs1_der()
                    .map_err(|_| KeyError::Malformed {
                        kid: self.kid.clone(),
                    })?
                    .as_bytes(),
            ),
            KeyMaterial::Hmac(k) => STANDARD.encode(k),
        };
        Ok(StoredSigningKey {
            kid: self.kid.clone(),
            alg: self.alg,
            created_at: self.created_at.as_millis(),
            private,
            signs_from: None,
        })
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key is used with.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// When the key was made.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// The public JWK of this key, or `None` for HMAC keys, which have nothing public.
    ///
    /// Only public members are ever produced (RFC 7517 §4–5): no `d`, `p`, `q` or `k`.
    pub fn public_jwk(&self) -> Option<serde_json::Value> {
        let common = |mut jwk: serde_json::Value| {
            jwk["kid"] = self.kid.clone().into();
            jwk["use"] = "sig".into();
            jwk["alg"] = self.alg.as_str().into();
            jwk
        };
        match &self.material {
            KeyMaterial::Ed25519(k) => Some(common(serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes()),
            }))),
            KeyMaterial::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                let (x, y) = (point.x()?, point.y()?);
                Some(common(serde_json::json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                })))
            }
            KeyMaterial::Rsa(k) => Some(common(serde_json::json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(k.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(k.e().to_bytes_be()),
            }))),
            KeyMaterial::Hmac(_) => None,
        }
    }
}

/// The signing keys in force: the newest signs, all of them verify.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: HashMap<String, SigningKey>,
    current: String,
}

impl KeySet {
    /// A key set from `keys`; the most recently created one signs. `None` if `keys` is empty.
    pub fn new(keys: Vec<SigningKey>) -> Option<Self> {
        let current = keys.iter().max_by_key(|k| k.created_at)?.kid.clone();
        Some(Self {
            keys: keys.into_iter().map(|k| (k.kid.clone(), k)).collect(),
            current,
        })
    }

    /// A key set in which `kid` signs (it must be one of `keys`).
    pub fn with_current(keys: Vec<SigningKey>, kid: &str) -> Option<Self> {
        let mut set = Self::new(keys)?;
        if !set.keys.contains_key(kid) {
            return None;
        }
        set.current = kid.to_owned();
        Some(set)
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        // `current` is always a key of the map: both are set together in the constructors.
        &self.keys[&self.current]
    }

    /// The key named `kid`, if it is in force.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.get(kid)
    }

    /// Every key in force.
    pub fn iter(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.values()
    }

    /// The JWKS document (RFC 7517 §5) of every public key in force, newest first.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<&SigningKey> = self.keys.values().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        let keys: Vec<_> = keys.iter().filter_map(|k| k.public_jwk()).collect();
        serde_json::json!({ "keys": keys })
    }
}

/// One refresh-token MAC key (HMAC-SHA-256, 32 random bytes).
#[derive(Clone, Serialize, Deserialize)]
pub struct RefreshKey {
    /// Key id, stored with each session so a session keeps the key it was created with.
    pub kid: String,
    /// Creation time, unix milliseconds.
    pub created_at: i64,
    /// The secret, standard base64.
    #[serde(with = "secret_b64")]
    pub secret: [u8; 32],
    /// When new sessions start using it, unix milliseconds (`None`: from its creation), so
    /// that every instance holds it before a session made with it reaches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_from: Option<i64>,
}

impl fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl RefreshKey {
    /// A fresh random MAC key.
    pub fn generate(now: Timestamp) -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self {
            kid: random_kid(),
            created_at: now.as_millis(),
            secret,
            use_from: None,
        }
    }
}

/// The refresh MAC keys in force: the newest is used for new sessions, all of them check tags.
#[derive(Debug, Clone)]
pub struct RefreshKeys {
    keys: HashMap<String, RefreshKey>,
    current: String,
}

impl RefreshKeys {
    /// A key ring from `keys`; the most recent one is used for new sessions. `None` if empty.
    pub fn new(keys: Vec<RefreshKey>) -> Option<Self> {
        let current = keys.iter().max_by_key(|k| k.created_at)?.kid.clone();
        Some(Self {
            keys: keys.into_iter().map(|k| (k.kid.clone(), k)).collect(),
            current,
        })
    }

    /// A key ring in which `kid` is used for new sessions (it must be one of `keys`).
    pub fn with_current(keys: Vec<RefreshKey>, kid: &str) -> Option<Self> {
        let mut ring = Self::new(keys)?;
        if !ring.keys.contains_key(kid) {
            return None;
        }
        ring.current = kid.to_owned();
        Some(ring)
    }

    /// Every key in force.
    pub fn iter(&self) -> impl Iterator<Item = &RefreshKey> {
        self.keys.values()
    }

    /// The key for new sessions.
    pub fn current(&self) -> &RefreshKey {
        &self.keys[&self.current]
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&RefreshKey> {
        self.keys.get(kid)
    }
}

mod secret_b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(secret: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(secret))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a refresh key is exactly 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_its_stored_form() {
        for alg in [
            SigningAlg::EdDSA,
            SigningAlg::ES256,
            SigningAlg::RS256,
            SigningAlg::HS256,
        ] {
            let key = SigningKey::generate(alg, Timestamp::from_secs(1)).expect("generate");
            let restored =
                SigningKey::from_stored(&key.to_stored().expect("store")).expect("restore");
            assert_eq!(restored.kid(), key.kid(), "{alg}");
            assert_eq!(restored.public_jwk(), key.public_jwk(), "{alg}");
        }
    }

    #[test]
    fn jwks_holds_only_public_members() {
        for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
            let key = SigningKey::generate(alg, Timestamp::from_secs(1)).expect("generate");
            let jwks = KeySet::new(vec![key]).expect("one key").jwks();
            let jwk = jwks["keys"][0].as_object().expect("a JWK object");
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(!jwk.contains_key(private), "{alg} leaks {private}");
            }
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], alg.as_str());
        }
    }

    #[test]
    fn hmac_keys_are_never_published() {
        let key =
            SigningKey::generate(SigningAlg::HS256, Timestamp::from_secs(1)).expect("generate");
        assert_eq!(
            KeySet::new(vec![key]).expect("one key").jwks()["keys"],
            serde_json::json!([])
        );
    }

    #[test]
    fn the_newest_key_signs() {
        let old = SigningKey::generate(SigningAlg::EdDSA, Timestamp::from_secs(1)).expect("old");
        let new = SigningKey::generate(SigningAlg::EdDSA, Timestamp::from_secs(2)).expect("new");
        let set = KeySet::new(vec![old.clone(), new.clone()]).expect("keys");
        assert_eq!(set.current().kid(), new.kid());
        assert!(set.get(old.kid()).is_some());
    }
}
