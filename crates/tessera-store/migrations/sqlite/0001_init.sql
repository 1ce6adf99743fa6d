-- users: the accounts Tessera authenticates.
create table users (
    id            text primary key,            -- uuid, the `sub` of every token
    username      text not null,
    username_key  text not null unique,        -- lower-cased username: names are unique ignoring case
    password_hash text,                        -- argon2id PHC string; null for externally authenticated users
    roles         text not null default '[]',  -- JSON array of role names
    blocked       integer not null default 0,
    cutoff_at     integer,                     -- unix ms: sessions and tokens from before it are dead
    created_at    integer not null,
    updated_at    integer not null
);

-- sessions: one per login. No token and no token hash: the refresh tag is recomputed from
-- (key_id, id, generation, nonce).
create table sessions (
    id                  text primary key,      -- 128-bit random, base64url
    user_id             text not null,
    nonce               blob not null,         -- 32 random bytes, an input of the refresh-token MAC
    key_id              text not null,         -- refresh MAC key of this session
    generation          integer not null,      -- the one generation that can rotate
    created_at          integer not null,
    rotated_at          integer not null,
    last_used_at        integer not null,
    idle_expires_at     integer not null,
    absolute_expires_at integer not null,
    expires_at          integer not null,      -- min(idle, absolute), for the purge and live queries
    revoked_at          integer,
    revoke_reason       text,
    client_id           text not null,
    user_agent          text,
    ip                  text
);
create index sessions_by_user on sessions (user_id, created_at);
create index sessions_by_expiry on sessions (expires_at);

-- revocations: append-only log of the revocation state, read by every instance (and later by
-- verifiers) from a cursor. Entries are dropped once no token they could kill is alive.
create table revocations (
    seq     integer primary key autoincrement,
    kind    text not null,                     -- denied_token | revoked_session | user_cutoff
    subject text not null,                     -- jti, sid or user id
    at      integer not null,
    until   integer not null
);
create index revocations_by_until on revocations (until);
