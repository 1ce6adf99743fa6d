//! A memory of successful signature checks, so a token presented again skips the signature.
//!
//! A client presents the same access token many times in its lifetime. After one full
//! verification, the claims are remembered under the SHA-256 of the whole compact token (so any
//! other encoding of the same claims is a miss and is verified in full), and never past the
//! token's `exp` plus the leeway. The revocation checks are NOT cached: they run on every use.
//!
//! Bounded: at most `capacity` entries; when full, expired entries are dropped, and if that frees
//! nothing the whole shard is cleared (a miss only costs one signature check).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest as _, Sha256};

use crate::access::AccessClaims;

const SHARDS: usize = 16;

/// Remembered verifications, sharded to keep lock contention low.
#[derive(Debug)]
pub struct VerifiedCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Arc<AccessClaims>>>>,
    per_shard: usize,
}

impl VerifiedCache {
    /// A cache of at most about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Arc<AccessClaims>>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The claims of `token` if it was verified before and `now_secs < exp + leeway_secs`.
    pub fn get(&self, token: &str, now_secs: i64, leeway_secs: i64) -> Option<Arc<AccessClaims>> {
        let key = Self::key(token);
        let shard = self
            .shard(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard
            .get(&key)
            .filter(|c| now_secs < c.exp.saturating_add(leeway_secs))
            .cloned()
    }

    /// Remembers that `token` verified with `claims`.
    pub fn insert(&self, token: &str, claims: Arc<AccessClaims>, now_secs: i64, leeway_secs: i64) {
        let key = Self::key(token);
        let mut shard = self
            .shard(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard {
            shard.retain(|_, c| now_secs < c.exp.saturating_add(leeway_secs));
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(key, claims);
    }

    /// Forgets everything (for example when a signing key is withdrawn).
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Number of remembered tokens.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Audience;
    use crate::ids::{SessionId, TokenId};

    fn claims(exp: i64) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            iss: "i".into(),
            sub: "u".into(),
            aud: Audience::One("a".into()),
            exp,
            iat: exp - 300,
            nbf: None,
            jti: TokenId::random(),
            sid: SessionId::random(),
            client_id: "c".into(),
            scope: None,
            roles: vec![],
        })
    }

    #[test]
    fn remembers_until_expiry_only() {
        let cache = VerifiedCache::new(100);
        cache.insert("token", claims(1000), 700, 30);
        assert!(cache.get("token", 1029, 30).is_some());
        assert!(
            cache.get("token", 1030, 30).is_none(),
            "never past exp + leeway"
        );
        assert!(
            cache.get("other encoding", 800, 30).is_none(),
            "keyed by the exact text"
        );
    }

    #[test]
    fn stays_bounded() {
        let cache = VerifiedCache::new(32);
        for i in 0..1000 {
            cache.insert(&format!("t{i}"), claims(10_000), 0, 0);
        }
        assert!(cache.len() <= 32 + SHARDS, "{}", cache.len());
        cache.clear();
        assert!(cache.is_empty());
    }
}
