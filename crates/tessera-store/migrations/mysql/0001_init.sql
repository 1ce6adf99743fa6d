-- users: the accounts Tessera authenticates. utf8mb4 throughout; names are compared through
-- the lower-cased `username_key`, so the collation's own rules never decide uniqueness alone.
create table users (
    id            varchar(36) not null primary key,  -- uuid, the `sub` of every token
    username      varchar(255) not null,
    username_key  varchar(255) not null,             -- lower-cased username
    password_hash text,                               -- argon2id PHC string; null for external users
    roles         text not null,                      -- JSON array of role names
    blocked       boolean not null default false,
    cutoff_at     bigint,                             -- unix ms: sessions and tokens from before it are dead
    created_at    bigint not null,
    updated_at    bigint not null,
    unique key users_by_name (username_key),
    key users_by_creation (created_at, id)
) engine = InnoDB default charset = utf8mb4;

-- sessions: one per login. No token and no token hash: the refresh tag is recomputed from
-- (key_id, id, generation, nonce).
create table sessions (
    id                  varchar(32) not null primary key,  -- 128-bit random, base64url
    user_id             varchar(36) not null,
    nonce               varbinary(64) not null,            -- 32 random bytes, an input of the refresh MAC
    key_id              varchar(64) not null,              -- refresh MAC key of this session
    generation          bigint not null,                   -- the one generation that can rotate
    created_at          bigint not null,
    rotated_at          bigint not null,
    last_used_at        bigint not null,
    idle_expires_at     bigint not null,
    absolute_expires_at bigint not null,
    expires_at          bigint not null,                   -- min(idle, absolute): purge and live queries
    revoked_at          bigint,
    revoke_reason       varchar(32),
    client_id           varchar(255) not null,
    user_agent          text,
    ip                  varchar(64),
    key sessions_by_user (user_id, created_at),
    key sessions_by_expiry (expires_at)
) engine = InnoDB default charset = utf8mb4;

-- revocations: append-only log of the revocation state, read by every instance from a cursor.
-- `seq` is handed out under the lock of the one row of revocation_head, so sequence numbers
-- become visible in commit order and a reader's cursor never skips an entry committed late.
create table revocations (
    seq     bigint not null primary key,
    kind    varchar(32) not null,                -- denied_token | revoked_session | user_cutoff
    subject varchar(64) not null,                -- jti, sid or user id
    at      bigint not null,
    until   bigint not null,
    key revocations_by_until (until)
) engine = InnoDB default charset = utf8mb4;

create table revocation_head (
    id  smallint not null primary key,
    seq bigint not null
) engine = InnoDB;
insert into revocation_head (id, seq) values (1, 0);
