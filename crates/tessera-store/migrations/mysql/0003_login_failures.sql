-- login_failures: failed logins per account (lower-cased username, known or not), shared by every
-- instance, so the throttling of password guessing holds however the guesses are spread. A
-- successful login deletes the row; rows idle for an hour are purged.
create table login_failures (
    account  varchar(255) collate utf8mb4_bin not null primary key,
    failures integer not null,
    last_at  bigint not null,     -- unix ms of the last failure
    key login_failures_by_age (last_at)
) engine = InnoDB default charset = utf8mb4;

-- Usernames compare byte for byte in their lower-cased key: the default collations equate
-- accented and full-width letters with plain ones (`alicé` = `alice`), which would let
-- look-alike names reach another account's password check.
alter table users modify username_key varchar(255) collate utf8mb4_bin not null;
