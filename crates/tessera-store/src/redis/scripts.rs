//! The Lua scripts. Each names every key it touches in `KEYS` and touches keys of one hash tag
//! only, so it runs unchanged on Redis Cluster (no `CROSSSLOT`).

use std::sync::LazyLock;

use redis::Script;

/// Stores a new session hash with its TTL.
/// KEYS[1] session. ARGV[1] ttl ms, ARGV[2..] field/value pairs.
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('HSET', KEYS[1], unpack(ARGV, 2))
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        return 1
        ",
    )
});

/// Compare-and-set of the generation: the rotation. 1 if this call rotated, else 0.
/// KEYS[1] session. ARGV: expected gen, new gen, rotated at, idle expiry, ttl ms.
pub(super) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local gen = redis.call('HGET', KEYS[1], 'g')
        if not gen or gen ~= ARGV[1] then return 0 end
        if redis.call('HEXISTS', KEYS[1], 'x') == 1 then return 0 end
        redis.call('HSET', KEYS[1], 'g', ARGV[2], 'r', ARGV[3], 'i', ARGV[4])
        redis.call('PEXPIRE', KEYS[1], ARGV[5])
        return 1
        ",
    )
});

/// Marks a live session revoked (it keeps its TTL). 1 if this call revoked it, else 0.
/// KEYS[1] session. ARGV: revoked at, reason.
pub(super) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        if redis.call('HEXISTS', KEYS[1], 'x') == 1 then return 0 end
        redis.call('HSET', KEYS[1], 'x', ARGV[1], 'y', ARGV[2])
        return 1
        ",
    )
});

/// The Lua function both appending scripts share: appends a revocation entry to the log and
/// announces its sequence number. The member ends in its sequence number, so each append is a
/// new member: the same entry appended twice never moves an older one (which would look like a
/// log that went back).
/// Keys: sequence counter, log (score = seq), expiry index (score = until). Arguments: member,
/// until ms, key ttl ms, channel.
const APPEND_FUNCTION: &str = r"
local function append(seq_key, log_key, exp_key, entry, until_ms, ttl, channel)
  local seq = redis.call('INCR', seq_key)
  local member = entry .. ':' .. seq
  redis.call('ZADD', log_key, seq, member)
  redis.call('ZADD', exp_key, until_ms, member)
  for _, key in ipairs({ log_key, exp_key }) do
    if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
  end
  redis.call('PUBLISH', channel, seq)
  return seq
end
";

/// Appends a revocation entry to the log (see [`APPEND_FUNCTION`]); returns its sequence number.
/// KEYS[1] sequence counter, KEYS[2] log, KEYS[3] expiry index.
/// ARGV: member, until ms, key ttl ms, channel.
pub(super) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{APPEND_FUNCTION}
        return append(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"
    ))
});

/// On a single Redis node (not a cluster: the keys are in different slots), revoking a session
/// is ONE atomic script: if the session exists and is not revoked yet, append its revocation
/// entry and mark it revoked. Returns the entry's sequence number, or 0 if nothing was revoked.
/// KEYS[1] session, KEYS[2] sequence counter, KEYS[3] log, KEYS[4] expiry index.
/// ARGV: member, until ms, key ttl ms, channel, revoked at, reason.
pub(super) static REVOKE_LOGGED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{APPEND_FUNCTION}
        if redis.call('HEXISTS', KEYS[1], 'u') == 0 then return 0 end
        if redis.call('HEXISTS', KEYS[1], 'x') == 1 then return 0 end
        local seq = append(KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
        redis.call('HSET', KEYS[1], 'x', ARGV[5], 'y', ARGV[6])
        return seq"
    ))
});

/// Reads the log after a cursor: { start cursor, member1, seq1, member2, seq2, … }.
/// KEYS[1] sequence counter, KEYS[2] log. ARGV: cursor, limit, the member last read at the cursor
/// (or ''). The read restarts from 0 (and says so in its first value) when the log went back:
/// the counter is below the cursor, or the member last read is no longer at that sequence.
pub(super) static SINCE: LazyLock<Script> = LazyLock::new(|| {
    // Declared read-only, so the log stays readable while Redis refuses writes (MISCONF, OOM).
    Script::new(
        r"#!lua flags=no-writes
        local current = tonumber(redis.call('GET', KEYS[1]) or '0')
        local cursor = ARGV[1]
        if tonumber(cursor) > current then cursor = '0' end
        if cursor ~= '0' and ARGV[3] ~= '' then
          local seen = redis.call('ZSCORE', KEYS[2], ARGV[3])
          if not seen or tonumber(seen) ~= tonumber(cursor) then cursor = '0' end
        end
        local out = { tonumber(cursor) }
        local page = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. cursor, '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[2])
        for i = 1, #page do out[#out + 1] = page[i] end
        return out
        ",
    )
});

/// Deletes at most ARGV[2] log entries whose time (until) is at or before ARGV[1].
/// KEYS[1] log, KEYS[2] expiry index. Returns how many were deleted.
pub(super) static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
        if #old == 0 then return 0 end
        redis.call('ZREM', KEYS[1], unpack(old))
        redis.call('ZREM', KEYS[2], unpack(old))
        return #old
        ",
    )
});
