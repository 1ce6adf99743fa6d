//! Redis and Redis Cluster as the session store (users stay in SQL).
//!
//! Key layout (`P` = the configured prefix, default `tessera:`; `{…}` is the hash tag):
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `P s:{<sid>}` | hash | one session: user, nonce, key id, generation, times, revocation, client | the session's expiry + one access-token lifetime |
//! | `P u:{<user id>}` | sorted set | the user's session ids, scored by creation time (revoked and expired ids leave it when next listed) | as long as its longest session |
//! | `{P rev}:seq` | string | the revocation log's sequence counter | none (it must never go back) |
//! | `{P rev}:log` | sorted set | revocation entries `kind:subject:at:until:seq`, scored by sequence | the latest entry's time |
//! | `{P rev}:exp` | sorted set | the same members, scored by `until` (for the purge) | likewise |
//!
//! A session lives in ONE key, so the rotation script touches one slot. The revocation log lives
//! under one hash tag, so appending is one atomic script. On a single node, revoking a session
//! (append its entry, mark it) is one atomic script too. On a cluster the two are in different
//! slots: every revocation is appended to the log first and applied to the session second, so
//! a failure in between leaves the session revoked through the log (which every instance
//! reads), never silently alive.
//!
//! Every append is also published on the channel `P revocations`, so other instances read the
//! log at once instead of at their next poll.

pub mod cache;
mod conn;
mod scripts;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tessera_core::ids::{SessionId, TokenId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{ClientInfo, RevokeReason, Session, SessionRevocation};
use tessera_core::Timestamp;

pub use conn::{inspect, NodeFacts, RedisOptions, RedisStore};

use crate::{RevocationBatch, SessionSelector, SessionStore, StoreError};

/// Most revocation entries read in one call.
const PAGE: usize = 1000;

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Backend(format!("corrupt redis data: {what}").into())
}

/// A key TTL that is never zero or negative (Redis refuses those).
fn ttl_until(until: Timestamp, now: Timestamp) -> i64 {
    (until.as_millis() - now.as_millis()).max(1000)
}

/// A session's hash fields. Names are one or two letters and the nonce is stored raw: a session
/// is the most numerous thing Tessera keeps, so its size is the memory bill (see BENCHMARKS.md).
/// `last_used_at` is not stored: every write sets it equal to `rotated_at`.
///
/// | field | holds | field | holds |
/// |---|---|---|---|
/// | `u` | user id | `i` | idle expiry (ms) |
/// | `n` | nonce, 32 raw bytes | `a` | absolute expiry (ms) |
/// | `k` | refresh key id | `ci` | client id |
/// | `g` | generation | `ua`, `ip` | user agent, address (when known) |
/// | `c` | created (ms) | `x`, `y` | revoked at (ms), reason (once revoked) |
/// | `r` | last rotation (ms) | | |
fn session_fields(s: &Session) -> Vec<(&'static str, Vec<u8>)> {
    let text = |v: String| v.into_bytes();
    let mut f = vec![
        ("u", text(s.user_id.to_string())),
        ("n", s.nonce.to_vec()),
        ("k", text(s.key_id.clone())),
        ("g", text(s.generation.to_string())),
        ("c", text(s.created_at.as_millis().to_string())),
        ("r", text(s.rotated_at.as_millis().to_string())),
        ("i", text(s.idle_expires_at.as_millis().to_string())),
        ("a", text(s.absolute_expires_at.as_millis().to_string())),
        ("ci", text(s.client.client_id.clone())),
    ];
    if let Some(r) = s.revoked {
        f.push(("x", text(r.at.as_millis().to_string())));
        f.push(("y", text(r.reason.as_str().to_owned())));
    }
    if let Some(ua) = &s.client.user_agent {
        f.push(("ua", text(ua.clone())));
    }
    if let Some(ip) = &s.client.ip {
        f.push(("ip", text(ip.clone())));
    }
    f
}

fn session_from_hash(
    sid: SessionId,
    h: &HashMap<String, Vec<u8>>,
) -> Result<Option<Session>, StoreError> {
    if h.is_empty() {
        return Ok(None);
    }
    let text = |k: &'static str| -> Result<&str, StoreError> {
        std::str::from_utf8(h.get(k).ok_or_else(|| corrupt(k))?).map_err(|_| corrupt(k))
    };
    let optional = |k: &'static str| h.get(k).and_then(|v| String::from_utf8(v.clone()).ok());
    let ts = |k: &'static str| -> Result<Timestamp, StoreError> {
        text(k)?
            .parse::<i64>()
            .map(Timestamp::from_millis)
            .map_err(|_| corrupt(k))
    };
    // Fail closed: a revocation mark with an unreadable reason is an error, never "alive".
    let revoked = match h.get("x") {
        Some(_) => Some(SessionRevocation {
            at: ts("x")?,
            reason: optional("y")
                .and_then(|r| RevokeReason::parse(&r))
                .ok_or_else(|| corrupt("revoke reason"))?,
        }),
        None => None,
    };
    let rotated_at = ts("r")?;
    Ok(Some(Session {
        id: sid,
        user_id: text("u")?.parse().map_err(|_| corrupt("user"))?,
        nonce: h
            .get("n")
            .and_then(|n| <[u8; 32]>::try_from(n.as_slice()).ok())
            .ok_or_else(|| corrupt("nonce"))?,
        key_id: text("k")?.to_owned(),
        generation: text("g")?.parse().map_err(|_| corrupt("generation"))?,
        created_at: ts("c")?,
        rotated_at,
        last_used_at: rotated_at,
        idle_expires_at: ts("i")?,
        absolute_expires_at: ts("a")?,
        revoked,
        client: ClientInfo {
            client_id: text("ci")?.to_owned(),
            user_agent: optional("ua"),
            ip: optional("ip"),
        },
    }))
}

/// A log member as the client sends it: `kind:subject:at:until` (the append script adds `:<seq>`) (the subject never contains `:`… except user ids, which
/// are UUIDs with `-`, so splitting from the right is unambiguous).
fn member(entry: &RevocationEntry) -> String {
    match entry {
        RevocationEntry::DeniedToken { jti, until } => {
            format!("d:{jti}:{}:{}", until.as_millis(), until.as_millis())
        }
        RevocationEntry::RevokedSession { sid, at, until } => {
            format!("s:{sid}:{}:{}", at.as_millis(), until.as_millis())
        }
        RevocationEntry::UserCutoff { sub, at, until } => {
            format!("c:{sub}:{}:{}", at.as_millis(), until.as_millis())
        }
    }
}

fn parse_member(text: &str) -> Result<RevocationEntry, StoreError> {
    let bad = || corrupt("revocation entry");
    // `…:<seq>`, added by the append script to make every member unique.
    let (text, _seq) = text.rsplit_once(':').ok_or_else(bad)?;
    let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
    let (rest, until) = rest.rsplit_once(':').ok_or_else(bad)?;
    let (subject, at) = rest.rsplit_once(':').ok_or_else(bad)?;
    let at = Timestamp::from_millis(at.parse().map_err(|_| bad())?);
    let until = Timestamp::from_millis(until.parse().map_err(|_| bad())?);
    Ok(match kind {
        "d" => RevocationEntry::DeniedToken {
            jti: subject.parse::<TokenId>().map_err(|_| bad())?,
            until,
        },
        "s" => RevocationEntry::RevokedSession {
            sid: subject.parse().map_err(|_| bad())?,
            at,
            until,
        },
        "c" => RevocationEntry::UserCutoff {
            sub: subject.to_owned(),
            at,
            until,
        },
        _ => return Err(bad()),
    })
}

impl RedisStore {
    /// The keys and arguments of the shared append function (see `scripts::APPEND_FUNCTION`),
    /// after those the script itself adds before them.
    fn append_operands(
        &self,
        inv: &mut redis::ScriptInvocation<'_>,
        entry: &RevocationEntry,
        now: Timestamp,
    ) {
        let until = entry.until();
        inv.key(self.keys.rev_seq())
            .key(self.keys.rev_log())
            .key(self.keys.rev_exp())
            .arg(member(entry))
            .arg(until.as_millis())
            .arg(ttl_until(until, now))
            .arg(self.keys.channel());
    }

    async fn append(&self, entry: &RevocationEntry, now: Timestamp) -> Result<(), StoreError> {
        let mut inv = scripts::APPEND.prepare_invoke();
        self.append_operands(&mut inv, entry, now);
        let _: i64 = self.invoke(&inv).await?;
        Ok(())
    }

    async fn revoke_one(
        &self,
        sid: &SessionId,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Option<RevocationEntry>, StoreError> {
        let entry = RevocationEntry::RevokedSession {
            sid: *sid,
            at: now,
            until: now.plus(keep),
        };
        if !self.is_cluster() {
            // One atomic script: check, append, mark (see REVOKE_LOGGED).
            let mut inv = scripts::REVOKE_LOGGED.prepare_invoke();
            inv.key(self.keys.session(sid));
            self.append_operands(&mut inv, &entry, now);
            inv.arg(now.as_millis()).arg(reason.as_str());
            let seq: i64 = self.invoke(&inv).await?;
            return Ok((seq > 0).then_some(entry));
        }
        // On a cluster, three steps. One read for both: already revoked (`x`) or gone (no owner
        // `u`) means nothing to log.
        let (revoked, owner): (Option<String>, Option<String>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(self.keys.session(sid))
                    .arg("x")
                    .arg("u"),
            )
            .await?;
        if owner.is_none() || revoked.is_some() {
            return Ok(None);
        }
        self.append(&entry, now).await?; // the log first: see the module docs
        if let Err(e) = self.mark_revoked(sid, reason, now).await {
            // Every instance already honours the log entry; the mark on the session itself is
            // retried with every log read until it lands, so the session stays revoked after
            // the entry's time too.
            self.pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((*sid, reason, now));
            return Err(e);
        }
        // Appended: the caller applies the entry even if a concurrent revoker marked it first.
        Ok(Some(entry))
    }

    /// Marks the session hash revoked. Its id leaves the user's index the next time the index is
    /// listed (one round trip less on every logout; the next login lists it anyway).
    async fn mark_revoked(
        &self,
        sid: &SessionId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut inv = scripts::REVOKE.prepare_invoke();
        inv.key(self.keys.session(sid))
            .arg(now.as_millis())
            .arg(reason.as_str());
        let _: i64 = self.invoke(&inv).await?;
        Ok(())
    }

    /// Retries the session marks that failed after their log entry was written.
    async fn finish_pending_marks(&self) {
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (sid, reason, at) in pending {
            if self.mark_revoked(&sid, reason, at).await.is_err() {
                self.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((sid, reason, at));
            }
        }
    }

    /// The user's sessions that exist and are not revoked, dropping the ids of the others (an
    /// expired key, a revoked session) from the index.
    async fn user_sessions(&self, user_id: &UserId) -> Result<Vec<Session>, StoreError> {
        let index = self.keys.user(user_id);
        let ids: Vec<String> = self
            .query(redis::cmd("ZRANGE").arg(&index).arg(0).arg(-1))
            .await?;
        let mut sessions = Vec::with_capacity(ids.len());
        for id in ids {
            let sid: SessionId = id.parse().map_err(|_| corrupt("session id"))?;
            match self.session(&sid).await? {
                Some(s) if s.revoked.is_none() => sessions.push(s),
                _ => {
                    let _: i64 = self.query(redis::cmd("ZREM").arg(&index).arg(&id)).await?;
                }
            }
        }
        Ok(sessions)
    }
}

fn live(s: &Session, now: Timestamp) -> bool {
    s.revoked.is_none() && s.expires_at() > now
}

fn newest_first(sessions: &mut [Session]) {
    sessions.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create_session(
        &self,
        session: &Session,
        max_live: u32,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        let now = session.created_at;
        let ttl = ttl_until(session.expires_at().plus(keep), now);
        let mut inv = scripts::CREATE.prepare_invoke();
        inv.key(self.keys.session(&session.id)).arg(ttl);
        for (field, value) in session_fields(session) {
            inv.arg(field).arg(value);
        }
        let _: i64 = self.invoke(&inv).await?;
        let index = self.keys.user(&session.user_id);
        let _: i64 = self
            .query(
                redis::cmd("ZADD")
                    .arg(&index)
                    .arg(session.created_at.as_millis())
                    .arg(session.id.to_string()),
            )
            .await?;
        // The index must outlive every session in it, however often they rotate: a session
        // never lives past its absolute expiry.
        let index_wanted = ttl_until(session.absolute_expires_at.plus(keep), now);
        let index_ttl: i64 = self.query(redis::cmd("PTTL").arg(&index)).await?;
        if index_ttl < index_wanted {
            let _: i64 = self
                .query(redis::cmd("PEXPIRE").arg(&index).arg(index_wanted))
                .await?;
        }
        // The cap on live sessions: the oldest go first, never the new one. The index holds every
        // live session (and perhaps some ended ones), so an index within the cap needs no look.
        let indexed: u64 = self.query(redis::cmd("ZCARD").arg(&index)).await?;
        if indexed <= u64::from(max_live.max(1)) {
            return Ok(Vec::new());
        }
        let mut live_sessions: Vec<Session> = self
            .user_sessions(&session.user_id)
            .await?
            .into_iter()
            .filter(|s| live(s, now))
            .collect();
        newest_first(&mut live_sessions);
        live_sessions.sort_by_key(|s| s.id != session.id);
        let mut entries = Vec::new();
        for old in live_sessions.iter().skip(max_live.max(1) as usize) {
            entries.extend(
                self.revoke_one(&old.id, RevokeReason::SessionLimit, now, keep)
                    .await?,
            );
        }
        Ok(entries)
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let h: HashMap<String, Vec<u8>> = self
            .query(redis::cmd("HGETALL").arg(self.keys.session(id)))
            .await?;
        session_from_hash(*id, &h)
    }

    async fn rotate(&self, next: &Session, expected_generation: u64) -> Result<bool, StoreError> {
        // The key outlives the session by one access-token lifetime, so "revoked" or "expired"
        // stays an exact answer while the session's access tokens could live.
        let keep = self.options.keep;
        let mut inv = scripts::ROTATE.prepare_invoke();
        inv.key(self.keys.session(&next.id))
            .arg(expected_generation.to_string())
            .arg(next.generation.to_string())
            .arg(next.rotated_at.as_millis())
            .arg(next.idle_expires_at.as_millis())
            .arg(ttl_until(next.expires_at().plus(keep), next.rotated_at));
        let done: i64 = self.invoke(&inv).await?;
        Ok(done == 1)
    }

    async fn revoke_sessions(
        &self,
        selector: &SessionSelector,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        let ids: Vec<SessionId> = match selector {
            SessionSelector::One(sid) => vec![*sid],
            SessionSelector::User { user_id, except } => self
                .user_sessions(user_id)
                .await?
                .into_iter()
                .filter(|s| Some(s.id) != *except && s.revoked.is_none())
                .map(|s| s.id)
                .collect(),
        };
        let mut entries = Vec::new();
        for sid in ids {
            entries.extend(self.revoke_one(&sid, reason, now, keep).await?);
        }
        Ok(entries)
    }

    async fn record(&self, entries: &[RevocationEntry], now: Timestamp) -> Result<(), StoreError> {
        for entry in entries {
            self.append(entry, now).await?;
        }
        Ok(())
    }

    async fn live_sessions(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions: Vec<Session> = self
            .user_sessions(user_id)
            .await?
            .into_iter()
            .filter(|s| live(s, now))
            .collect();
        newest_first(&mut sessions);
        Ok(sessions)
    }

    async fn revocations_since(
        &self,
        cursor: u64,
        now: Timestamp,
    ) -> Result<RevocationBatch, StoreError> {
        // The member last read at this cursor: if the log no longer has it at that sequence,
        // the log went back (failover, restart, FLUSHALL) and is read again from the start.
        let last = self
            .last_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let check = last
            .filter(|(seq, _)| *seq == cursor && cursor > 0)
            .map(|(_, m)| m)
            .unwrap_or_default();
        let mut inv = scripts::SINCE.prepare_invoke();
        inv.key(self.keys.rev_seq())
            .key(self.keys.rev_log())
            .arg(cursor)
            .arg(PAGE)
            .arg(check);
        let reply: Vec<Value> = self.invoke(&inv).await?;
        let mut values = reply.into_iter();
        let start: u64 = match values.next() {
            Some(v) => redis::from_redis_value(v).map_err(|_| corrupt("start"))?,
            None => return Err(corrupt("empty reply")),
        };
        let rest: Vec<Value> = values.collect();
        let mut batch = RevocationBatch {
            entries: Vec::new(),
            cursor: start,
            more: rest.len() / 2 >= PAGE,
        };
        let mut last_member = None;
        for pair in rest.chunks(2) {
            let [m, score] = pair else {
                return Err(corrupt("log page"));
            };
            let text: String = redis::from_redis_value(m.clone()).map_err(|_| corrupt("member"))?;
            let seq: f64 = redis::from_redis_value(score.clone()).map_err(|_| corrupt("score"))?;
            batch.cursor = seq as u64;
            let entry = parse_member(&text)?;
            last_member = Some(text);
            if entry.until() > now {
                batch.entries.push(entry);
            }
        }
        if let Some(member) = last_member {
            *self
                .last_read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((batch.cursor, member));
        }
        Ok(batch)
    }

    async fn purge(&self, now: Timestamp, _keep: Duration, batch: u32) -> Result<u64, StoreError> {
        // Session marks that failed after their log entry was written are retried here, off the
        // hot path of log reads.
        self.finish_pending_marks().await;
        // Sessions expire by their key TTL; only the revocation log needs trimming.
        let mut inv = scripts::TRIM.prepare_invoke();
        inv.key(self.keys.rev_log())
            .key(self.keys.rev_exp())
            .arg(now.as_millis())
            .arg(batch);
        let n: i64 = self.invoke(&inv).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    fn revocation_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(RedisStore::revocation_signal(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip() {
        let entries = [
            RevocationEntry::DeniedToken {
                jti: TokenId::random(),
                until: Timestamp::from_millis(5),
            },
            RevocationEntry::RevokedSession {
                sid: SessionId::random(),
                at: Timestamp::from_millis(1),
                until: Timestamp::from_millis(9),
            },
            RevocationEntry::UserCutoff {
                sub: UserId::random().to_string(),
                at: Timestamp::from_millis(2),
                until: Timestamp::from_millis(7),
            },
        ];
        for e in entries {
            assert_eq!(
                parse_member(&format!("{}:17", member(&e))).expect("parse"),
                e
            );
        }
        assert!(parse_member("x:y").is_err());
    }
}
