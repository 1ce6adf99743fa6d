//! JWS compact serialization (RFC 7515 §3.1), restricted to exactly what Tessera issues.
//!
//! Rules enforced here, each from RFC 8725 and the attacks it lists:
//! - compact serialization only: three base64url segments, canonical, no padding (RFC 8725 §3.7);
//! - at most [`MAX_TOKEN_LEN`] bytes, checked before any decoding (bounded CPU and memory);
//! - JSON objects with a duplicate member are refused, never "last one wins" (RFC 7515 §4);
//! - the header may hold only `alg`, `typ` and `kid`: `crit`, `jwk`, `jku`, `x5u`, `x5c`, `b64`
//!   and anything else are refused, so no key is ever taken or fetched from a token (RFC 8725 §3.10);
//! - the key is chosen by `kid`, and `alg` must equal that key's one algorithm (RFC 8725 §3.1);
//! - the signature is checked before the payload is parsed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::jwk::{PublicMaterial, VerifyKeys};
use crate::keys::{KeyMaterial, KeyRef, MaterialRef, SigningKey};

/// The longest compact token accepted, in bytes. Tessera's own tokens are well under 1 KiB.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a compact JWS was refused before its claims were looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too long")]
    Oversize,
    /// Not three canonical base64url segments of JSON objects.
    #[error("malformed token")]
    Malformed,
    /// The header holds a member Tessera never issues (`crit`, `jwk`, `jku`, `x5c`, …).
    #[error("unsupported token header")]
    UnsupportedHeader,
    /// `typ` is missing or not `at+jwt`.
    #[error("wrong token type")]
    WrongType,
    /// No key with this `kid` is in force.
    #[error("unknown signing key")]
    UnknownKey,
    /// `alg` is not the algorithm of the key named by `kid`.
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

/// A JSON object whose members are all distinct.
struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(A::Error::custom("duplicate member"));
                    }
                    map.insert(key, access.next_value()?);
                }
                Ok(StrictObject(map))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// Parses `bytes` as one JSON object with no duplicate member (nesting is bounded by serde_json).
pub(crate) fn strict_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<StrictObject>(bytes)
        .ok()
        .map(|o| o.0)
}

fn b64(segment: &str) -> Result<Vec<u8>, JwsError> {
    // The engine refuses padding, `+`/`/`, and non-zero trailing bits (canonical encoding only).
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwsError::Malformed)
}

/// Signs the JSON `payload` with `key` and returns the compact JWS, with `typ: at+jwt` (RFC 9068 §2.1).
pub(crate) fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let header =
        serde_json::json!({ "alg": key.alg().as_str(), "typ": "at+jwt", "kid": key.kid() });
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = sign_bytes(key, token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

fn sign_bytes(key: &SigningKey, input: &[u8]) -> Vec<u8> {
    use ed25519_dalek::Signer as _;
    use p256::ecdsa::signature::SignatureEncoding as _;
    match &key.material {
        KeyMaterial::Ed25519(k) => k.sign(input).to_bytes().to_vec(),
        KeyMaterial::P256(k) => {
            let sig: p256::ecdsa::Signature = k.sign(input);
            sig.to_bytes().to_vec()
        }
        KeyMaterial::Rsa(k) => {
            let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone());
            signer.sign(input).to_vec()
        }
        KeyMaterial::Hmac(secret) => {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// Checks one signature with the key's own algorithm. Every branch fails closed.
fn verify_bytes(key: KeyRef<'_>, input: &[u8], signature: &[u8]) -> bool {
    match key.material {
        MaterialRef::Private(KeyMaterial::Ed25519(k)) => {
            ed25519_ok(&k.verifying_key(), input, signature)
        }
        MaterialRef::Public(PublicMaterial::Ed25519(k)) => ed25519_ok(k, input, signature),
        MaterialRef::Private(KeyMaterial::P256(k)) => p256_ok(k.verifying_key(), input, signature),
        MaterialRef::Public(PublicMaterial::P256(k)) => p256_ok(k, input, signature),
        MaterialRef::Private(KeyMaterial::Rsa(k)) => rsa_ok(k.as_ref().as_ref(), input, signature),
        MaterialRef::Public(PublicMaterial::Rsa(k)) => rsa_ok(k, input, signature),
        // `verify_slice` compares in constant time.
        MaterialRef::Private(KeyMaterial::Hmac(secret)) => {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
            mac.update(input);
            mac.verify_slice(signature).is_ok()
        }
    }
}

/// Strict verification refuses small-order keys and non-canonical S (malleable signatures).
fn ed25519_ok(key: &ed25519_dalek::VerifyingKey, input: &[u8], signature: &[u8]) -> bool {
    match <[u8; 64]>::try_from(signature) {
        Ok(bytes) => key
            .verify_strict(input, &ed25519_dalek::Signature::from_bytes(&bytes))
            .is_ok(),
        Err(_) => false,
    }
}

/// Exactly 64 bytes of raw R || S (RFC 7518 §3.4); `from_slice` refuses r or s equal to zero or
/// not below the group order (the "psychic signatures" inputs of CVE-2022-21449).
fn p256_ok(key: &p256::ecdsa::VerifyingKey, input: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    match p256::ecdsa::Signature::from_slice(signature) {
        Ok(sig) if signature.len() == 64 => key.verify(input, &sig).is_ok(),
        _ => false,
    }
}

/// PKCS#1 v1.5 with SHA-256; the signature must be exactly as long as the modulus.
fn rsa_ok(key: &rsa::RsaPublicKey, input: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    use rsa::traits::PublicKeyParts as _;
    if signature.len() != key.size() {
        return false;
    }
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
        .verify(input, &sig)
        .is_ok()
}

/// Verifies the structure, header and signature of `token` against `keys`, and returns the
/// payload as a JSON object (not yet checked as claims).
pub(crate) fn verify(token: &str, keys: &impl VerifyKeys) -> Result<Map<String, Value>, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::Oversize);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header = strict_object(&b64(header_b64)?).ok_or(JwsError::Malformed)?;

    // Only the members Tessera writes. Anything else, `crit` first, is refused.
    if header
        .keys()
        .any(|name| !matches!(name.as_str(), "alg" | "typ" | "kid"))
    {
        return Err(JwsError::UnsupportedHeader);
    }
    // Explicit typing (RFC 9068 §2.1, RFC 8725 §3.11): media type names compare case-insensitively.
    let typ = header
        .get("typ")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
        return Err(JwsError::WrongType);
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JwsError::UnknownKey)?;
    let key = keys.key(kid).ok_or(JwsError::UnknownKey)?;
    // The algorithm comes from the key; the header must merely agree with it, byte for byte.
    if header.get("alg").and_then(Value::as_str) != Some(key.alg.as_str()) {
        return Err(JwsError::AlgorithmMismatch);
    }

    let signature = b64(signature_b64)?;
    if signature.is_empty() {
        return Err(JwsError::BadSignature);
    }
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    if !verify_bytes(key, &token.as_bytes()[..signing_input_len], &signature) {
        return Err(JwsError::BadSignature);
    }
    strict_object(&b64(payload_b64)?).ok_or(JwsError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::keys::{KeySet, SigningAlg};

    fn key(alg: SigningAlg) -> SigningKey {
        SigningKey::generate(alg, Timestamp::from_secs(1)).expect("generate")
    }

    fn forge(header: &Value, payload: &Value, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn every_algorithm_verifies_its_own_signature() {
        for alg in [
            SigningAlg::EdDSA,
            SigningAlg::ES256,
            SigningAlg::RS256,
            SigningAlg::HS256,
        ] {
            let k = key(alg);
            let keys = KeySet::new(vec![k.clone()]).expect("keys");
            let token = sign(&k, serde_json::json!({"sub": "u"}).to_string().as_bytes());
            assert_eq!(verify(&token, &keys).expect("valid")["sub"], "u", "{alg}");
        }
    }

    #[test]
    fn a_key_only_verifies_with_its_own_algorithm() {
        let k = key(SigningAlg::ES256);
        let keys = KeySet::new(vec![k.clone()]).expect("keys");
        let good = sign(&k, serde_json::json!({}).to_string().as_bytes());
        let (_, rest) = good.split_once('.').expect("dots");
        for alg in [
            "none", "None", "NONE", "nOnE", "HS256", "ES384", "ES512", "PS256", "RS256", "EdDSA",
            "es256",
        ] {
            let header = serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": k.kid()});
            let token = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
            assert_eq!(
                verify(&token, &keys),
                Err(JwsError::AlgorithmMismatch),
                "{alg}"
            );
        }
    }

    #[test]
    fn structure_and_header_rules() {
        let k = key(SigningAlg::EdDSA);
        let keys = KeySet::new(vec![k.clone()]).expect("keys");
        let good = sign(&k, serde_json::json!({"sub": "u"}).to_string().as_bytes());
        let (h, rest) = good.split_once('.').expect("dots");
        let (p, s) = rest.split_once('.').expect("dots");
        let kid = k.kid();
        let hdr = |extra: Value| {
            let mut base = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
            for (name, value) in extra.as_object().expect("object") {
                base[name] = value.clone();
            }
            URL_SAFE_NO_PAD.encode(base.to_string())
        };
        let cases: Vec<(&str, String, JwsError)> = vec![
            ("stripped signature", format!("{h}.{p}."), JwsError::BadSignature),
            ("two segments", format!("{h}.{p}"), JwsError::Malformed),
            ("five segments (JWE)", format!("{h}.{p}.{s}.x.y"), JwsError::Malformed),
            ("padding", format!("{h}.{p}.{s}="), JwsError::Malformed),
            ("JSON serialization", format!("{{\"payload\":\"{p}\"}}"), JwsError::Malformed),
            ("crit", format!("{}.{p}.{s}", hdr(serde_json::json!({"crit": ["exp"]}))), JwsError::UnsupportedHeader),
            ("embedded jwk", format!("{}.{p}.{s}", hdr(serde_json::json!({"jwk": {"kty": "oct"}}))), JwsError::UnsupportedHeader),
            ("jku", format!("{}.{p}.{s}", hdr(serde_json::json!({"jku": "http://127.0.0.1:1/k"}))), JwsError::UnsupportedHeader),
            ("x5u", format!("{}.{p}.{s}", hdr(serde_json::json!({"x5u": "http://127.0.0.1:1/k"}))), JwsError::UnsupportedHeader),
            ("x5c", format!("{}.{p}.{s}", hdr(serde_json::json!({"x5c": ["MIIB"]}))), JwsError::UnsupportedHeader),
            ("b64 false", format!("{}.{p}.{s}", hdr(serde_json::json!({"b64": false, "crit": ["b64"]}))), JwsError::UnsupportedHeader),
            ("typ JWT", format!("{}.{p}.{s}", hdr(serde_json::json!({"typ": "JWT"}))), JwsError::WrongType),
            ("typ missing", format!("{}.{p}.{s}", URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"EdDSA\",\"kid\":\"{kid}\"}}"))), JwsError::WrongType),
            ("unknown kid", format!("{}.{p}.{s}", hdr(serde_json::json!({"kid": "../../dev/null"}))), JwsError::UnknownKey),
            ("kid injection", format!("{}.{p}.{s}", hdr(serde_json::json!({"kid": "x' UNION SELECT '1';--"}))), JwsError::UnknownKey),
            ("duplicate alg", format!("{}.{p}.{s}", URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"EdDSA\",\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"{kid}\"}}"))), JwsError::Malformed),
            ("header not an object", format!("{}.{p}.{s}", URL_SAFE_NO_PAD.encode("[1]")), JwsError::Malformed),
            ("oversize", format!("{h}.{}.{s}", "A".repeat(MAX_TOKEN_LEN)), JwsError::Oversize),
        ];
        for (name, token, expected) in cases {
            assert_eq!(verify(&token, &keys).map(|_| ()), Err(expected), "{name}");
        }
    }

    #[test]
    fn altered_signature_or_payload_fails() {
        let k = key(SigningAlg::EdDSA);
        let keys = KeySet::new(vec![k.clone()]).expect("keys");
        let good = sign(&k, serde_json::json!({"sub": "u"}).to_string().as_bytes());
        let mut altered = good.clone();
        altered.replace_range(good.len() - 4.., "AAAA");
        assert_eq!(
            verify(&altered, &keys).map(|_| ()),
            Err(JwsError::BadSignature)
        );
        let (h, rest) = good.split_once('.').expect("dots");
        let (_, s) = rest.split_once('.').expect("dots");
        let other = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#);
        assert_eq!(
            verify(&format!("{h}.{other}.{s}"), &keys).map(|_| ()),
            Err(JwsError::BadSignature)
        );
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        // Key confusion (CVE-2015-9235): the attacker MACs with our published EdDSA public key.
        let k = key(SigningAlg::EdDSA);
        let keys = KeySet::new(vec![k.clone()]).expect("keys");
        let public = k.public_jwk().expect("public key");
        for secret in [
            public.to_string().into_bytes(),
            public["x"].as_str().expect("x").as_bytes().to_vec(),
        ] {
            let header = serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": k.kid()});
            let payload = serde_json::json!({"sub": "admin"});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(payload.to_string())
            );
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("hmac");
            mac.update(input.as_bytes());
            let token = format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            );
            assert_eq!(
                verify(&token, &keys).map(|_| ()),
                Err(JwsError::AlgorithmMismatch)
            );
        }
    }

    #[test]
    fn invalid_ecdsa_values_are_refused() {
        let k = key(SigningAlg::ES256);
        let keys = KeySet::new(vec![k.clone()]).expect("keys");
        let header = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": k.kid()});
        let payload = serde_json::json!({"sub": "u"});
        // r = s = 0; r = s = n (the group order); wrong lengths; a DER encoding.
        let n = hex_bytes("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
        let mut r_s_n = n.clone();
        r_s_n.extend_from_slice(&n);
        let der = {
            let good = sign(&k, payload.to_string().as_bytes());
            let sig = URL_SAFE_NO_PAD
                .decode(good.rsplit('.').next().expect("sig"))
                .expect("b64");
            p256::ecdsa::Signature::from_slice(&sig)
                .expect("sig")
                .to_der()
                .as_bytes()
                .to_vec()
        };
        for (name, sig) in [
            ("zero", vec![0u8; 64]),
            ("order", r_s_n),
            ("short", vec![1u8; 63]),
            ("long", vec![1u8; 65]),
            ("der", der),
        ] {
            assert_eq!(
                verify(&forge(&header, &payload, &sig), &keys).map(|_| ()),
                Err(JwsError::BadSignature),
                "{name}"
            );
        }
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(input in ".{0,600}") {
            let keys = KeySet::new(vec![key(SigningAlg::HS256)]).expect("keys");
            let _ = verify(&input, &keys);
        }
    }
}
