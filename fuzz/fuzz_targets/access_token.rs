//! Any bytes as a bearer token: the verifier answers (accepts or refuses) without panicking,
//! within bounded time and memory (SECURITY A16). Keys of every algorithm are loaded, so the
//! input reaches each signature check.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tessera_core::access::{self, AccessRules, Expiry};
use tessera_core::keys::{KeySet, SigningAlg, SigningKey};
use tessera_core::Timestamp;

fn keys() -> &'static (KeySet, AccessRules) {
    static KEYS: OnceLock<(KeySet, AccessRules)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let now = Timestamp::from_secs(1_700_000_000);
        let keys = [
            SigningAlg::EdDSA,
            SigningAlg::ES256,
            SigningAlg::RS256,
            SigningAlg::HS256,
        ]
        .into_iter()
        .map(|alg| SigningKey::generate(alg, now).expect("key"))
        .collect();
        let rules = AccessRules {
            issuer: "https://tessera.fuzz".into(),
            audience: "tessera".into(),
            ttl: Duration::from_secs(300),
            leeway: Duration::from_secs(30),
        };
        (KeySet::new(keys).expect("keys"), rules)
    })
}

// The keys are made before fuzzing starts (RSA key generation takes seconds), so the first
// input is not charged for it.
fuzz_target!(init: { let _ = keys(); }, |data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let (keys, rules) = keys();
    let now = Timestamp::from_secs(1_700_000_100);
    let _ = access::verify(token, keys, rules, now, Expiry::Enforce);
    let _ = access::verify(token, keys, rules, now, Expiry::Ignore);
});
