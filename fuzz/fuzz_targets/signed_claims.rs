//! The structured target: any header and payload text, correctly signed with a known HS256 key,
//! so the input gets past the signature into header and claim validation (duplicate members,
//! odd types, deep nesting, `crit`, time claims). Never a panic; accepted only if the claims are
//! valid (SECURITY A16).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use tessera_core::access::{self, AccessRules, Expiry};
use tessera_core::keys::{KeySet, SigningAlg, SigningKey};
use tessera_core::Timestamp;

struct Fixture {
    keys: KeySet,
    rules: AccessRules,
    secret: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::generate(SigningAlg::HS256, Timestamp::from_secs(1_700_000_000))
            .expect("key");
        let secret = STANDARD
            .decode(key.to_stored().expect("stored").private)
            .expect("secret");
        Fixture {
            keys: KeySet::new(vec![key]).expect("keys"),
            rules: AccessRules {
                issuer: "https://tessera.fuzz".into(),
                audience: "tessera".into(),
                ttl: Duration::from_secs(300),
                leeway: Duration::from_secs(30),
            },
            secret,
        }
    })
}

// The keys are made before fuzzing starts (RSA key generation takes seconds), so the first
// input is not charged for it.
fuzz_target!(init: { let _ = fixture(); }, |data: &[u8]| {
    // The input is "header\0payload"; both are sent as given (`{kid}` in the header becomes the
    // key's id), base64url-encoded and signed.
    let Some(split) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let f = fixture();
    let header = String::from_utf8_lossy(&data[..split]).replace("{kid}", f.keys.current().kid());
    let (header, payload) = (header.as_bytes(), &data[split + 1..]);
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&f.secret).expect("hmac");
    mac.update(input.as_bytes());
    let token = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    let now = Timestamp::from_secs(1_700_000_100);
    if let Ok(claims) = access::verify(&token, &f.keys, &f.rules, now, Expiry::Enforce) {
        // Accepted only with the rules met.
        assert_eq!(claims.iss, f.rules.issuer);
        assert!(claims.aud.contains(&f.rules.audience));
        assert!(claims.exp + 30 > now.as_secs());
    }
});
