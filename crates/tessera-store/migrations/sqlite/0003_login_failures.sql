-- login_failures: failed logins per account (lower-cased username, known or not), shared by every
-- instance, so the throttling of password guessing holds however the guesses are spread. A
-- successful login deletes the row; rows idle for an hour are purged.
create table login_failures (
    account  text primary key,
    failures integer not null,
    last_at  bigint not null      -- unix ms of the last failure
);
create index login_failures_by_age on login_failures (last_at);
