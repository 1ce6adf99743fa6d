//! The session cache of the tiered store: copies of sessions in Redis, in the same hash layout
//! as the Redis store (`P s:{<sid>}`), over the same connection handling (timeouts, Cluster,
//! TLS, the eviction check, the revocation channel).
//!
//! The copies only ever move forward, so a late or repeated write never brings back an older
//! state: a copy is replaced only by one of a higher or equal generation, and a revoked copy
//! (a tombstone) is never replaced by a live one. Both rules are enforced inside one script.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use redis::Script;
use tessera_core::ids::SessionId;
use tessera_core::session::{RevokeReason, Session};
use tessera_core::Timestamp;
use tokio::sync::Notify;

use super::{session_fields, session_from_hash, ttl_until, RedisOptions, RedisStore};
use crate::StoreError;

/// Writes a copy unless the cached one is revoked, or newer and the incoming one is live.
/// KEYS[1] session. ARGV[1] ttl ms, ARGV[2] generation, ARGV[3] 1 if the copy is revoked,
/// ARGV[4..] field/value pairs. 1 if written.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('HEXISTS', KEYS[1], 'x') == 1 then return 0 end
        local gen = redis.call('HGET', KEYS[1], 'g')
        if ARGV[3] ~= '1' and gen and tonumber(gen) > tonumber(ARGV[2]) then return 0 end
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], unpack(ARGV, 4))
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        return 1
        ",
    )
});

/// Marks a copy revoked; with no copy cached, leaves a tombstone of the mark alone, so that a
/// refill racing the revocation cannot write the session back as live. Keeps an existing TTL.
/// KEYS[1] session. ARGV: revoked at, reason, ttl ms for a new tombstone.
static TOMBSTONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('HEXISTS', KEYS[1], 'x') == 1 then return 0 end
        local existed = redis.call('EXISTS', KEYS[1])
        redis.call('HSET', KEYS[1], 'x', ARGV[1], 'y', ARGV[2])
        if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
        return 1
        ",
    )
});

/// What the cache knows of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// A full copy (live or revoked).
    Copy(Box<Session>),
    /// Only that it was revoked (no copy was cached when it was).
    Tombstone,
    /// Nothing.
    Miss,
}

/// Session copies in Redis.
#[derive(Debug)]
pub struct SessionCache {
    redis: RedisStore,
}

impl SessionCache {
    /// Connects like [`RedisStore::connect`]: Redis may be down at start (the cache is then
    /// unavailable until it is up); an evicting Redis is refused unless accepted.
    pub async fn connect(options: RedisOptions) -> Result<Self, StoreError> {
        Ok(Self {
            redis: RedisStore::connect(options).await?,
        })
    }

    /// The cached state of a session.
    pub async fn get(&self, sid: &SessionId) -> Result<Cached, StoreError> {
        let hash: HashMap<String, Vec<u8>> = self
            .redis
            .query(redis::cmd("HGETALL").arg(self.redis.keys.session(sid)))
            .await?;
        if hash.is_empty() {
            return Ok(Cached::Miss);
        }
        if !hash.contains_key("u") {
            return Ok(Cached::Tombstone);
        }
        Ok(match session_from_hash(*sid, &hash)? {
            Some(s) => Cached::Copy(Box::new(s)),
            None => Cached::Miss,
        })
    }

    /// Writes a copy of `session` as of `now` (see the module docs for when it is refused).
    /// `true` if written.
    pub async fn put(&self, session: &Session, now: Timestamp) -> Result<bool, StoreError> {
        let ttl = ttl_until(session.expires_at().plus(self.redis.options.keep), now);
        let mut script = PUT.prepare_invoke();
        script
            .key(self.redis.keys.session(&session.id))
            .arg(ttl)
            .arg(session.generation)
            .arg(u8::from(session.revoked.is_some()));
        for (field, value) in session_fields(session) {
            script.arg(field).arg(value);
        }
        let written: i64 = self.redis.invoke(&script).await?;
        Ok(written == 1)
    }

    /// Marks a session revoked in the cache. With no copy cached, a tombstone of the mark alone
    /// is left, so that a refill racing the revocation cannot write the session back as live.
    pub async fn tombstone(
        &self,
        sid: &SessionId,
        reason: RevokeReason,
        at: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<(), StoreError> {
        let mut script = TOMBSTONE.prepare_invoke();
        script
            .key(self.redis.keys.session(sid))
            .arg(at.as_millis())
            .arg(reason.as_str())
            .arg(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1000));
        let _: i64 = self.redis.invoke(&script).await?;
        Ok(())
    }

    /// Announces on the revocation channel that the log gained entries.
    pub async fn publish(&self) -> Result<(), StoreError> {
        let _: i64 = self
            .redis
            .query(
                redis::cmd("PUBLISH")
                    .arg(self.redis.keys.channel())
                    .arg("tiered"),
            )
            .await?;
        Ok(())
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.redis.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Raised when any instance publishes on the revocation channel.
    pub fn signal(&self) -> Arc<Notify> {
        self.redis.revocation_signal()
    }
}
