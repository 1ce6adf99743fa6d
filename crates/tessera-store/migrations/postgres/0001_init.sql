-- users: the accounts Tessera authenticates.
create table users (
    id            text primary key,            -- uuid, the `sub` of every token
    username      text not null,
    username_key  text not null unique,        -- lower-cased username: names are unique ignoring case
    password_hash text,                        -- argon2id PHC string; null for externally authenticated users
    roles         text not null default '[]',  -- JSON array of role names
    blocked       boolean not null default false,
    cutoff_at     bigint,                      -- unix ms: sessions and tokens from before it are dead
    created_at    bigint not null,
    updated_at    bigint not null
);
create index users_by_creation on users (created_at, id);

-- sessions: one per login. No token and no token hash: the refresh tag is recomputed from
-- (key_id, id, generation, nonce).
create table sessions (
    id                  text primary key,      -- 128-bit random, base64url
    user_id             text not null,
    nonce               bytea not null,        -- 32 random bytes, an input of the refresh-token MAC
    key_id              text not null,         -- refresh MAC key of this session
    generation          bigint not null,       -- the one generation that can rotate
    created_at          bigint not null,
    rotated_at          bigint not null,
    last_used_at        bigint not null,
    idle_expires_at     bigint not null,
    absolute_expires_at bigint not null,
    expires_at          bigint not null,       -- min(idle, absolute), for the purge and live queries
    revoked_at          bigint,
    revoke_reason       text,
    client_id           text not null,
    user_agent          text,
    ip                  text
);
create index sessions_by_user on sessions (user_id, created_at);
create index sessions_by_expiry on sessions (expires_at);

-- revocations: append-only log of the revocation state, read by every instance from a cursor.
-- `seq` is handed out under the lock of the one row of revocation_head, so sequence numbers
-- become visible in commit order and a reader's cursor never skips an entry committed late.
create table revocations (
    seq     bigint primary key,
    kind    text not null,                     -- denied_token | revoked_session | user_cutoff
    subject text not null,                     -- jti, sid or user id
    at      bigint not null,
    until   bigint not null
);
create index revocations_by_until on revocations (until);

create table revocation_head (
    id  smallint primary key check (id = 1),
    seq bigint not null
);
insert into revocation_head (id, seq) values (1, 0);
