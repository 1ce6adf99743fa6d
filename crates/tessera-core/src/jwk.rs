//! Public keys taken from a JWKS document (RFC 7517), for verifiers that hold no private key.
//!
//! Rules enforced here, so that a key can only verify what its publisher meant it to:
//! - a key is used with exactly the algorithm its `alg` member names (RFC 8725 §3.1); a JWK
//!   without `alg`, or whose `alg` does not fit its `kty`/`crv`, is not used;
//! - `use`, when present, must be `sig`;
//! - a JWK carrying private members (`d`, `p`, `q`, `k`, …) is not used: a published secret is
//!   not a key anyone should trust, and `oct` (HMAC) keys are never taken from a document;
//! - RSA moduli shorter than 2048 bits are refused (RFC 7518 §3.3);
//! - EC points must lie on P-256; Ed25519 points must decode (weak points fail `verify_strict`).
//!
//! Keys that break a rule are skipped, not fatal: a JWKS may list keys for other consumers.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::keys::{KeyRef, KeySet, SigningAlg};

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Public material for one algorithm, parsed once.
#[derive(Clone)]
pub(crate) enum PublicMaterial {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    Rsa(Box<rsa::RsaPublicKey>),
}

/// One published verification key.
#[derive(Clone)]
pub struct PublicKey {
    kid: String,
    alg: SigningAlg,
    pub(crate) material: PublicMaterial,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a JWK was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// Not a JSON object, or a required member is missing or not a string.
    #[error("malformed JWK")]
    Malformed,
    /// `alg` is absent or not one Tessera verifies with a public key.
    #[error("unsupported or missing alg")]
    UnsupportedAlg,
    /// `kty`/`crv` do not fit `alg`, or `use` is not `sig`.
    #[error("key type does not fit alg")]
    Mismatch,
    /// The JWK carries private members.
    #[error("JWK carries private material")]
    Private,
    /// The key material does not decode, or is too weak.
    #[error("invalid key material")]
    InvalidKey,
}

fn member<'a>(jwk: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, JwkError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or(JwkError::Malformed)
}

fn bytes(jwk: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, JwkError> {
    URL_SAFE_NO_PAD
        .decode(member(jwk, name)?)
        .map_err(|_| JwkError::InvalidKey)
}

impl PublicKey {
    /// Parses one JWK under the rules of the module docs.
    pub fn from_jwk(jwk: &Value) -> Result<Self, JwkError> {
        let jwk = jwk.as_object().ok_or(JwkError::Malformed)?;
        if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .any(|m| jwk.contains_key(*m))
        {
            return Err(JwkError::Private);
        }
        let kid = member(jwk, "kid")?;
        if kid.is_empty() {
            return Err(JwkError::Malformed);
        }
        if jwk.get("use").is_some_and(|u| u != "sig") {
            return Err(JwkError::Mismatch);
        }
        let alg = match jwk.get("alg").and_then(Value::as_str) {
            Some("EdDSA") => SigningAlg::EdDSA,
            Some("ES256") => SigningAlg::ES256,
            Some("RS256") => SigningAlg::RS256,
            _ => return Err(JwkError::UnsupportedAlg),
        };
        let kty = member(jwk, "kty")?;
        let material = match (alg, kty) {
            (SigningAlg::EdDSA, "OKP") => {
                if member(jwk, "crv")? != "Ed25519" {
                    return Err(JwkError::Mismatch);
                }
                let x: [u8; 32] = bytes(jwk, "x")?
                    .try_into()
                    .map_err(|_| JwkError::InvalidKey)?;
                PublicMaterial::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(&x)
                        .map_err(|_| JwkError::InvalidKey)?,
                )
            }
            (SigningAlg::ES256, "EC") => {
                if member(jwk, "crv")? != "P-256" {
                    return Err(JwkError::Mismatch);
                }
                let (x, y) = (bytes(jwk, "x")?, bytes(jwk, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(JwkError::InvalidKey);
                }
                let point = p256::EncodedPoint::from_affine_coordinates(
                    x.as_slice().into(),
                    y.as_slice().into(),
                    false,
                );
                // Refuses points not on the curve (invalid-curve attacks).
                PublicMaterial::P256(
                    p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                        .map_err(|_| JwkError::InvalidKey)?,
                )
            }
            (SigningAlg::RS256, "RSA") => {
                let n = rsa::BigUint::from_bytes_be(&bytes(jwk, "n")?);
                let e = rsa::BigUint::from_bytes_be(&bytes(jwk, "e")?);
                if n.bits() < MIN_RSA_BITS {
                    return Err(JwkError::InvalidKey);
                }
                PublicMaterial::Rsa(Box::new(
                    rsa::RsaPublicKey::new(n, e).map_err(|_| JwkError::InvalidKey)?,
                ))
            }
            _ => return Err(JwkError::Mismatch),
        };
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            material,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }
}

/// The usable keys of a JWKS document.
#[derive(Debug, Clone, Default)]
pub struct PublicKeySet {
    keys: HashMap<String, PublicKey>,
}

impl PublicKeySet {
    /// The usable keys of `doc` (`{"keys": [...]}`); keys that break a rule are skipped. `None`
    /// if `doc` is not a JWKS document at all. Two keys with one `kid`: neither is used (which one
    /// a token meant cannot be known).
    pub fn from_jwks(doc: &Value) -> Option<Self> {
        let list = doc.get("keys")?.as_array()?;
        let mut keys = HashMap::new();
        let mut duplicated = Vec::new();
        for jwk in list {
            let Ok(key) = PublicKey::from_jwk(jwk) else {
                continue;
            };
            if keys.contains_key(&key.kid) {
                duplicated.push(key.kid.clone());
            } else {
                keys.insert(key.kid.clone(), key);
            }
        }
        for kid in duplicated {
            keys.remove(&kid);
        }
        Some(Self { keys })
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// The ids of the usable keys.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where a verifier finds the key a token's `kid` names: Tessera's own key set, or the public
/// keys a resource server fetched. Sealed: only these two exist.
pub trait VerifyKeys: sealed::Sealed {
    /// The key named `kid`, with its one algorithm.
    #[doc(hidden)]
    fn key(&self, kid: &str) -> Option<KeyRef<'_>>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::keys::KeySet {}
    impl Sealed for super::PublicKeySet {}
}

impl VerifyKeys for KeySet {
    fn key(&self, kid: &str) -> Option<KeyRef<'_>> {
        self.get(kid).map(KeyRef::private)
    }
}

impl VerifyKeys for PublicKeySet {
    fn key(&self, kid: &str) -> Option<KeyRef<'_>> {
        self.get(kid).map(KeyRef::public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::keys::SigningKey;
    use serde_json::json;

    fn published(alg: SigningAlg) -> (SigningKey, Value) {
        let key = SigningKey::generate(alg, Timestamp::from_secs(1)).expect("key");
        let jwk = key.public_jwk().expect("public");
        (key, jwk)
    }

    #[test]
    fn every_published_key_parses_with_its_algorithm() {
        for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
            let (key, jwk) = published(alg);
            let public = PublicKey::from_jwk(&jwk).expect("parses");
            assert_eq!(public.kid(), key.kid());
            assert_eq!(public.alg(), alg);
        }
    }

    #[test]
    fn a_jwk_without_alg_or_with_a_mismatched_type_is_not_used() {
        let (_, jwk) = published(SigningAlg::EdDSA);
        let mut no_alg = jwk.clone();
        no_alg.as_object_mut().expect("object").remove("alg");
        assert_eq!(
            PublicKey::from_jwk(&no_alg).err(),
            Some(JwkError::UnsupportedAlg)
        );
        let mut wrong = jwk.clone();
        wrong["alg"] = "ES256".into();
        assert_eq!(PublicKey::from_jwk(&wrong).err(), Some(JwkError::Mismatch));
        let mut hs = jwk.clone();
        hs["alg"] = "HS256".into();
        assert_eq!(
            PublicKey::from_jwk(&hs).err(),
            Some(JwkError::UnsupportedAlg)
        );
        let mut none = jwk.clone();
        none["alg"] = "none".into();
        assert_eq!(
            PublicKey::from_jwk(&none).err(),
            Some(JwkError::UnsupportedAlg)
        );
        let mut enc = jwk.clone();
        enc["use"] = "enc".into();
        assert_eq!(PublicKey::from_jwk(&enc).err(), Some(JwkError::Mismatch));
        let mut crv = jwk;
        crv["crv"] = "X25519".into();
        assert_eq!(PublicKey::from_jwk(&crv).err(), Some(JwkError::Mismatch));
    }

    #[test]
    fn private_or_secret_members_are_refused() {
        let (_, jwk) = published(SigningAlg::ES256);
        let mut private = jwk;
        private["d"] = "AAAA".into();
        assert_eq!(PublicKey::from_jwk(&private).err(), Some(JwkError::Private));
        let oct = json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"});
        assert_eq!(PublicKey::from_jwk(&oct).err(), Some(JwkError::Private));
    }

    #[test]
    fn invalid_material_is_refused() {
        let (_, jwk) = published(SigningAlg::ES256);
        let mut off_curve = jwk.clone();
        off_curve["y"] = URL_SAFE_NO_PAD.encode([1u8; 32]).into();
        assert_eq!(
            PublicKey::from_jwk(&off_curve).err(),
            Some(JwkError::InvalidKey)
        );
        let mut short = jwk;
        short["x"] = "AAAA".into();
        assert_eq!(
            PublicKey::from_jwk(&short).err(),
            Some(JwkError::InvalidKey)
        );
        let weak_rsa = json!({"kty": "RSA", "kid": "r", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
        assert_eq!(
            PublicKey::from_jwk(&weak_rsa).err(),
            Some(JwkError::InvalidKey)
        );
        let (_, ed) = published(SigningAlg::EdDSA);
        let mut bad_ed = ed;
        bad_ed["x"] = URL_SAFE_NO_PAD.encode([0u8; 31]).into();
        assert_eq!(
            PublicKey::from_jwk(&bad_ed).err(),
            Some(JwkError::InvalidKey)
        );
    }

    #[test]
    fn a_document_keeps_usable_keys_and_drops_duplicated_kids() {
        let (a, ja) = published(SigningAlg::EdDSA);
        let (b, jb) = published(SigningAlg::ES256);
        let mut twin = jb.clone();
        twin["x"] = ja["x"].clone();
        twin["kty"] = "OKP".into();
        twin["crv"] = "Ed25519".into();
        twin["alg"] = "EdDSA".into();
        let doc = json!({"keys": [ja, jb, twin, {"kty": "oct", "kid": "x", "k": "AA"}, 7]});
        let set = PublicKeySet::from_jwks(&doc).expect("a JWKS");
        assert_eq!(
            set.len(),
            1,
            "b's kid is used twice, the oct key and 7 are unusable"
        );
        assert!(set.get(a.kid()).is_some());
        assert!(set.get(b.kid()).is_none());
        assert!(PublicKeySet::from_jwks(&json!({"nokeys": []})).is_none());
        assert!(PublicKeySet::from_jwks(&json!([])).is_none());
    }
}
