//! Refresh tokens: `rt1.<sid>.<gen>.<tag>`, self-authenticating, nothing secret stored.
//!
//! Byte layout (documented in `docs/tokens.md`):
//! - `sid`: the session id, 16 bytes as 22 canonical base64url characters;
//! - `gen`: the generation, a `u64` in decimal without leading zeros;
//! - `tag`: 32 bytes as 43 canonical base64url characters,
//!   `HMAC-SHA-256(K_refresh[session.key_id], "tessera.rt1" || 0x00 || sid || gen as 8 bytes
//!   big-endian || session_nonce)`.
//!
//! Every input of the MAC has a fixed length, so no two (sid, gen, nonce) triples share a message.
//! The store keeps the nonce and the key id, never the token or a hash of it: a leaked database
//! alone cannot make a token (no key), and a leaked key alone cannot either (no nonce).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::ids::SessionId;
use crate::keys::RefreshKey;

/// The longest string that is even looked at as a refresh token.
pub const MAX_REFRESH_TOKEN_LEN: usize = 128;

const PREFIX: &str = "rt1.";
const MAC_DOMAIN: &[u8] = b"tessera.rt1\0";

/// A refresh token whose syntax is valid. Its tag is NOT yet checked: see [`RefreshToken::tag_matches`].
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The session the token names.
    pub sid: SessionId,
    /// The generation the token names.
    pub generation: u64,
    tag: [u8; 32],
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The tag is the secret part: never print it.
        f.debug_struct("RefreshToken")
            .field("sid", &self.sid)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The text is not a syntactically valid `rt1` refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed refresh token")]
pub struct MalformedRefreshToken;

fn tag(key: &RefreshKey, sid: &SessionId, generation: u64, nonce: &[u8; 32]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.secret).expect("HMAC takes keys of any size");
    mac.update(MAC_DOMAIN);
    mac.update(sid.as_bytes());
    mac.update(&generation.to_be_bytes());
    mac.update(nonce);
    mac
}

impl RefreshToken {
    /// The token text for generation `generation` of session `sid`.
    pub fn issue(key: &RefreshKey, sid: &SessionId, generation: u64, nonce: &[u8; 32]) -> String {
        let tag = tag(key, sid, generation, nonce).finalize().into_bytes();
        format!("{PREFIX}{sid}.{generation}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Parses the token text. Only the syntax is checked here.
    pub fn parse(text: &str) -> Result<Self, MalformedRefreshToken> {
        if text.len() > MAX_REFRESH_TOKEN_LEN {
            return Err(MalformedRefreshToken);
        }
        let rest = text.strip_prefix(PREFIX).ok_or(MalformedRefreshToken)?;
        let mut parts = rest.split('.');
        let (Some(sid), Some(generation), Some(tag_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedRefreshToken);
        };
        let sid = sid
            .parse::<SessionId>()
            .map_err(|_| MalformedRefreshToken)?;
        // Canonical decimal: digits only, no sign, no leading zero, fits in u64.
        let canonical = !generation.is_empty()
            && generation.bytes().all(|b| b.is_ascii_digit())
            && (generation == "0" || !generation.starts_with('0'));
        if !canonical {
            return Err(MalformedRefreshToken);
        }
        let generation = generation
            .parse::<u64>()
            .map_err(|_| MalformedRefreshToken)?;
        if tag_b64.len() != 43 {
            return Err(MalformedRefreshToken);
        }
        let mut tag = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(tag_b64, &mut tag) {
            Ok(32) => Ok(Self {
                sid,
                generation,
                tag,
            }),
            _ => Err(MalformedRefreshToken),
        }
    }

    /// Whether the tag was made with `key` for this sid and generation and the session's nonce.
    /// The comparison is constant-time (`verify_slice`).
    pub fn tag_matches(&self, key: &RefreshKey, nonce: &[u8; 32]) -> bool {
        tag(key, &self.sid, self.generation, nonce)
            .verify_slice(&self.tag)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn fixture() -> (RefreshKey, SessionId, [u8; 32]) {
        (
            RefreshKey::generate(Timestamp::from_secs(1)),
            SessionId::random(),
            [7u8; 32],
        )
    }

    #[test]
    fn issued_tokens_parse_and_match() {
        let (key, sid, nonce) = fixture();
        let text = RefreshToken::issue(&key, &sid, 42, &nonce);
        let token = RefreshToken::parse(&text).expect("parses");
        assert_eq!((token.sid, token.generation), (sid, 42));
        assert!(token.tag_matches(&key, &nonce));
    }

    #[test]
    fn the_tag_binds_key_nonce_session_and_generation() {
        let (key, sid, nonce) = fixture();
        let token =
            RefreshToken::parse(&RefreshToken::issue(&key, &sid, 3, &nonce)).expect("parses");
        assert!(
            !token.tag_matches(&RefreshKey::generate(Timestamp::from_secs(1)), &nonce),
            "other key"
        );
        assert!(!token.tag_matches(&key, &[8u8; 32]), "other nonce");
        let mut other_gen = token.clone();
        other_gen.generation = 4;
        assert!(!other_gen.tag_matches(&key, &nonce), "other generation");
        let mut other_sid = token.clone();
        other_sid.sid = SessionId::random();
        assert!(!other_sid.tag_matches(&key, &nonce), "other session");
    }

    #[test]
    fn a_tag_altered_at_any_byte_fails() {
        let (key, sid, nonce) = fixture();
        let token =
            RefreshToken::parse(&RefreshToken::issue(&key, &sid, 0, &nonce)).expect("parses");
        for i in 0..32 {
            let mut altered = token.clone();
            altered.tag[i] ^= 0x01;
            assert!(!altered.tag_matches(&key, &nonce), "byte {i}");
        }
    }

    #[test]
    fn malformed_texts_are_refused() {
        let (key, sid, nonce) = fixture();
        let good = RefreshToken::issue(&key, &sid, 5, &nonce);
        let tag = good.rsplit('.').next().expect("tag");
        let cases = [
            String::new(),
            "rt1.".into(),
            good.replacen("rt1.", "rt2.", 1),
            good.replacen(".5.", ".05.", 1),
            good.replacen(".5.", ".+5.", 1),
            good.replacen(".5.", ".-5.", 1),
            good.replacen(".5.", "..", 1),
            good.replacen(".5.", ".99999999999999999999999.", 1),
            format!("{good}."),
            format!("{good}=="),
            format!("{}A", &good),
            good.replacen(tag, &tag[..42], 1),
            format!("rt1.{sid}.5.{}", "A".repeat(200)),
            good.replacen(&sid.to_string(), "not-a-session-id-at-al", 1),
        ];
        for case in cases {
            assert_eq!(
                RefreshToken::parse(&case),
                Err(MalformedRefreshToken),
                "{case:?}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_tag() {
        let (key, sid, nonce) = fixture();
        let text = RefreshToken::issue(&key, &sid, 1, &nonce);
        let tag = text.rsplit('.').next().expect("tag").to_owned();
        let token = RefreshToken::parse(&text).expect("parses");
        assert!(!format!("{token:?}").contains(&tag));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(input in "(rt1\\.)?[A-Za-z0-9_.=+/-]{0,140}") {
            let _ = RefreshToken::parse(&input);
        }
    }
}
