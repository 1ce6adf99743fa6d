//! Any bytes as a refresh token: parsing and the tag check never panic (SECURITY A16).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera_core::keys::RefreshKey;
use tessera_core::refresh::RefreshToken;
use tessera_core::Timestamp;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<RefreshKey> = OnceLock::new();
    let key = KEY.get_or_init(|| RefreshKey::generate(Timestamp::from_secs(1_700_000_000)));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = RefreshToken::parse(text) {
        let _ = token.tag_matches(key, &[7u8; 32]);
    }
});
