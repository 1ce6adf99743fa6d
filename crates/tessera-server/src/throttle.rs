//! Login throttling (NIST SP 800-63B §5.2.2, OWASP Authentication Cheat Sheet) and the refresh
//! limit per session.
//!
//! **Per account, shared by every instance.** After [`FREE_FAILURES`] failed logins for a
//! username, attempts are spaced by an exponentially growing delay (1 s, 2 s, 4 s, … at most
//! [`MAX_DELAY`]); an attempt inside the delay answers 429 with `Retry-After` without checking
//! the password. The failures are counted in the users database (`login_failures`), which every
//! instance shares, so guesses spread over instances count as one stream. A success resets the
//! count. Attempts in flight in this process count too, so guesses sent in parallel cannot slip
//! through before their failures are recorded. Unknown usernames are counted like real ones, so
//! a 429 says nothing about existence. Never a lock-out: at worst one try per [`MAX_DELAY`].
//!
//! **Per client address, in this process.** Each address may fail `login_address_limit` logins
//! (default 100), refilled evenly over an hour; then its attempts wait (429) whatever the
//! account, so one address cannot walk through many accounts. An attempt takes from the
//! address's budget when it starts and gives it back if it succeeds, so legitimate users behind
//! one address are only limited by the failures made from it. IPv6 counts per /64; loopback is
//! not counted (see `address_key`). Behind a proxy, the address is read from
//! `X-Forwarded-For` only when the peer is in `trusted_proxies`.
//!
//! Limits, written down rather than hidden: someone who keeps guessing a username keeps that
//! account at one try per [`MAX_DELAY`] for everyone, its owner included (lifting that needs a way
//! to tell the owner's device apart); the per-address budget is per instance.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tessera_core::Timestamp;
use tessera_store::{StoreError, UserStore};

/// Failed logins of an account before delays start.
pub const FREE_FAILURES: u32 = 5;
/// The longest delay between attempts on one account.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Keys remembered in memory before idle entries are dropped (and, if that is not enough, all).
const CAPACITY: usize = 100_000;
/// How long an account's failures are kept after the last one (then purged).
pub const FAILURES_KEPT: Duration = Duration::from_secs(3600);

/// What an address is counted as: IPv4 addresses one by one, IPv6 by /64 (one subscriber's
/// network: counting /128s would give an attacker 2^64 budgets). Loopback is not counted: it is
/// a local proxy that was not listed in `trusted_proxies` (every client would share its budget),
/// or a local process. IPv4-mapped IPv6 counts as its IPv4 address.
fn address_key(address: &str) -> Option<String> {
    let ip: std::net::IpAddr = address.parse().ok()?;
    match ip.to_canonical() {
        ip if ip.is_loopback() => None,
        std::net::IpAddr::V4(v4) => Some(v4.to_string()),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
    }
}

fn delay(attempts_over: u32) -> Duration {
    Duration::from_secs(1u64 << attempts_over.min(16)).min(MAX_DELAY)
}

/// This process's share of an account's state: attempts in flight and the slot reserved for the
/// next one.
#[derive(Debug, Clone, Copy, Default)]
struct Local {
    in_flight: u32,
    reserved_until: Timestamp,
}

/// Why a login attempt may not start.
#[derive(Debug)]
pub enum Refusal {
    /// Throttled: retry after this long.
    Wait(Duration),
    /// The failure count could not be read.
    Store(StoreError),
}

/// The login throttle.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Local>>,
    addresses: Buckets<String>,
}

/// One admitted login attempt. Record its outcome with [`failed`](Attempt::failed) or
/// [`succeeded`](Attempt::succeeded); dropped without an outcome (a store error, a refused
/// input), it stops counting as in flight and gives back what it took from the address.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    address: Option<(String, u32)>,
    open: bool,
}

impl LoginThrottle {
    /// Admits a login attempt for `username` from `address`, or says why not.
    /// `address_limit`: failed logins an address may make per hour (0: no limit).
    pub async fn begin(
        &self,
        users: &dyn UserStore,
        username: &str,
        address: Option<&str>,
        address_limit: u32,
        now: Timestamp,
    ) -> Result<Attempt<'_>, Refusal> {
        let account = username.to_lowercase();
        let mut attempt = Attempt {
            throttle: self,
            account: account.clone(),
            address: None,
            open: false,
        };
        if let Some(address) = address.and_then(address_key).filter(|_| address_limit > 0) {
            let capacity = f64::from(address_limit);
            self.addresses
                .take(address.clone(), now, capacity, capacity / 3_600_000.0)
                .map_err(Refusal::Wait)?;
            attempt.address = Some((address, address_limit));
        }
        // Dropped from here on (an early return), the attempt gives the address's share back.
        let stored = users
            .login_failures(&account)
            .await
            .map_err(Refusal::Store)?;
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if accounts.len() >= CAPACITY {
            accounts.retain(|_, a| a.in_flight > 0 || a.reserved_until > now);
            if accounts.len() >= CAPACITY {
                accounts.clear();
            }
        }
        let local = accounts.entry(account).or_default();
        let failures = stored.map_or(0, |(n, _)| n);
        let attempts = failures.saturating_add(local.in_flight);
        if attempts >= FREE_FAILURES {
            let mut next = local.reserved_until;
            if let Some((n, last)) = stored.filter(|(n, _)| *n >= FREE_FAILURES) {
                next = next.max(last.plus(delay(n - FREE_FAILURES)));
            }
            if now < next {
                return Err(Refusal::Wait(next.since(now)));
            }
            // Reserve the slot: the next attempt waits even before this one's outcome is known.
            local.reserved_until = now.plus(delay(attempts + 1 - FREE_FAILURES));
        }
        local.in_flight += 1;
        attempt.open = true;
        Ok(attempt)
    }

    fn end(&self, account: &str, success: bool) {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if success {
            accounts.remove(account);
        } else if let Some(a) = accounts.get_mut(account) {
            a.in_flight = a.in_flight.saturating_sub(1);
        }
    }
}

impl Attempt<'_> {
    /// The password was wrong (or the account unusable): one more failure for the account, in
    /// the shared store, and the address keeps the share it took. An error: the failure could
    /// not be counted (the caller answers 503 rather than confirm an uncounted guess).
    pub async fn failed(mut self, users: &dyn UserStore, now: Timestamp) -> Result<(), StoreError> {
        let recorded = users.record_login_failure(&self.account, now).await;
        self.address = None;
        self.open = false;
        self.throttle.end(&self.account, false);
        recorded.map(drop)
    }

    /// The login succeeded: the account's count starts over, the address gets its share back.
    pub async fn succeeded(mut self, users: &dyn UserStore) {
        if let Err(e) = users.clear_login_failures(&self.account).await {
            tracing::warn!(error = %e, "the failed-login count could not be reset");
        }
        self.open = false;
        self.throttle.end(&self.account, true);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some((address, limit)) = self.address.take() {
            self.throttle
                .addresses
                .give_back(&address, f64::from(limit));
        }
        if self.open {
            self.throttle.end(&self.account, false);
        }
    }
}

/// Token buckets by key, refilled evenly; full buckets are forgotten when memory is short.
#[derive(Debug)]
struct Buckets<K> {
    buckets: Mutex<HashMap<K, (f64, Timestamp)>>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> Buckets<K> {
    /// Takes one token from `key`'s bucket (`capacity` tokens, `per_ms` refilled each
    /// millisecond), or says how long until one is there.
    fn take(&self, key: K, now: Timestamp, capacity: f64, per_ms: f64) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // Tokens now: what was left, plus the refill since (a clock that went back adds none).
        let refilled = |tokens: f64, at: Timestamp| {
            let elapsed = now.as_millis().saturating_sub(at.as_millis()).max(0) as f64;
            (tokens + per_ms * elapsed).min(capacity)
        };
        if buckets.len() >= CAPACITY {
            // Drop the buckets that are full again: they hold nothing a new one would not.
            buckets.retain(|_, (tokens, at)| refilled(*tokens, *at) < capacity);
            if buckets.len() >= CAPACITY {
                buckets.clear();
            }
        }
        let (tokens, at) = buckets.entry(key).or_insert((capacity, now));
        *tokens = refilled(*tokens, *at);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - *tokens) / per_ms).ceil() as u64;
            Err(Duration::from_millis(wait_ms.max(1)))
        }
    }

    /// Gives one token back to `key`'s bucket.
    fn give_back(&self, key: &K, capacity: f64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((tokens, _)) = buckets.get_mut(key) {
            *tokens = (*tokens + 1.0).min(capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::sqlite::SqliteStore;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + ms)
    }

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        (store, dir)
    }

    async fn fail(throttle: &LoginThrottle, users: &SqliteStore, name: &str, at: Timestamp) {
        throttle
            .begin(users, name, None, 0, at)
            .await
            .expect("admitted")
            .failed(users, at)
            .await
            .expect("counted");
    }

    fn waits(r: Result<Attempt<'_>, Refusal>) -> Option<Duration> {
        match r {
            Err(Refusal::Wait(d)) => Some(d),
            _ => None,
        }
    }

    #[tokio::test]
    async fn delays_start_after_the_free_failures_and_grow_to_the_cap() {
        let (users, _dir) = store().await;
        let throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            fail(&throttle, &users, "Alice", t(0)).await;
        }
        assert_eq!(
            waits(throttle.begin(&users, "alice", None, 0, t(0)).await),
            Some(Duration::from_secs(1))
        );
        fail(&throttle, &users, "ALICE", t(1000)).await;
        assert_eq!(
            waits(throttle.begin(&users, "alice", None, 0, t(1500)).await),
            Some(Duration::from_millis(1500))
        );
        for i in 0..20 {
            fail(&throttle, &users, "alice", t(100_000 * (i + 1))).await;
        }
        let at = t(100_000 * 20);
        assert_eq!(
            waits(throttle.begin(&users, "alice", None, 0, at).await),
            Some(MAX_DELAY),
            "capped, never permanent"
        );
        assert!(
            throttle.begin(&users, "bob", None, 0, at).await.is_ok(),
            "other accounts are untouched"
        );
        throttle
            .begin(&users, "alice", None, 0, at.plus(MAX_DELAY))
            .await
            .expect("after the delay")
            .succeeded(&users)
            .await;
        assert!(
            throttle
                .begin(&users, "alice", None, 0, at.plus(MAX_DELAY))
                .await
                .is_ok(),
            "a success resets"
        );
    }

    #[tokio::test]
    async fn failures_counted_by_another_instance_throttle_this_one() {
        let (users, _dir) = store().await;
        let (a, b) = (LoginThrottle::default(), LoginThrottle::default());
        for _ in 0..FREE_FAILURES {
            fail(&a, &users, "alice", t(0)).await;
        }
        assert_eq!(
            waits(b.begin(&users, "alice", None, 0, t(10)).await),
            Some(Duration::from_millis(990)),
            "B sees A's failures"
        );
    }

    #[tokio::test]
    async fn parallel_guesses_cannot_slip_through() {
        let (users, _dir) = store().await;
        let throttle = LoginThrottle::default();
        let mut admitted = Vec::new();
        for _ in 0..100 {
            if let Ok(a) = throttle.begin(&users, "alice", None, 0, t(0)).await {
                admitted.push(a);
            }
        }
        assert_eq!(
            admitted.len(),
            FREE_FAILURES as usize + 1,
            "the free attempts and one reserved slot"
        );
        for attempt in admitted {
            attempt.failed(&users, t(0)).await.expect("counted");
        }
        assert!(throttle
            .begin(&users, "alice", None, 0, t(0))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn an_attempt_without_an_outcome_stops_counting() {
        let (users, _dir) = store().await;
        let throttle = LoginThrottle::default();
        for _ in 0..50 {
            drop(
                throttle
                    .begin(&users, "alice", Some("10.0.0.1"), 3, t(0))
                    .await
                    .expect("admitted"),
            );
        }
        assert!(
            throttle
                .begin(&users, "alice", Some("10.0.0.1"), 3, t(0))
                .await
                .is_ok(),
            "aborted attempts are neither failures nor charged to the address"
        );
    }

    #[tokio::test]
    async fn an_address_that_keeps_failing_waits_whatever_the_account() {
        let (users, _dir) = store().await;
        let throttle = LoginThrottle::default();
        let ip = Some("203.0.113.7");
        // Successes give their share back: an office behind one address is not limited by them.
        for i in 0..10 {
            throttle
                .begin(&users, &format!("ok{i}"), ip, 3, t(0))
                .await
                .expect("admitted")
                .succeeded(&users)
                .await;
        }
        for i in 0..3 {
            throttle
                .begin(&users, &format!("victim{i}"), ip, 3, t(0))
                .await
                .expect("within the budget")
                .failed(&users, t(0))
                .await
                .expect("counted");
        }
        let wait = waits(throttle.begin(&users, "victim9", ip, 3, t(0)).await).expect("throttled");
        assert_eq!(
            wait,
            Duration::from_secs(1200),
            "3 an hour: one every 20 minutes"
        );
        assert!(
            throttle
                .begin(&users, "victim9", Some("198.51.100.1"), 3, t(0))
                .await
                .is_ok(),
            "another address is not affected"
        );
        assert!(
            throttle.begin(&users, "victim9", ip, 0, t(0)).await.is_ok(),
            "0: no address limit"
        );
    }

    #[test]
    fn addresses_are_counted_per_ipv4_and_per_ipv6_64_and_loopback_not_at_all() {
        assert_eq!(address_key("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(
            address_key("::ffff:203.0.113.7").as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            address_key("2001:db8:1:2:aaaa::1"),
            address_key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "one /64, one budget"
        );
        assert_ne!(
            address_key("2001:db8:1:2::1"),
            address_key("2001:db8:1:3::1")
        );
        assert_eq!(address_key("127.0.0.1"), None);
        assert_eq!(address_key("::1"), None);
        assert_eq!(address_key("not an address"), None);
    }
}

/// Refresh limits per session: a token bucket of `per_minute` refreshes, refilled evenly over a
/// minute. Charged only for a refresh that would be honoured (an authentic token that rotates or
/// is retried within the grace window), so nobody can use up a session's budget with forged
/// tokens that name it; a refusal here changes nothing and is never taken for reuse. The state
/// is this process's.
#[derive(Debug, Default)]
pub struct RefreshLimiter {
    buckets: Buckets<tessera_core::ids::SessionId>,
}

/// One refresh taken from a session's bucket: given back when dropped, unless [`kept`]
/// (the refresh was answered).
///
/// [`kept`]: Charge::keep
#[derive(Debug)]
pub struct Charge<'a> {
    limiter: &'a RefreshLimiter,
    sid: tessera_core::ids::SessionId,
    per_minute: u32,
    kept: bool,
}

impl Charge<'_> {
    /// The refresh was answered: the charge stands.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        if !self.kept && self.per_minute > 0 {
            self.limiter
                .buckets
                .give_back(&self.sid, f64::from(self.per_minute));
        }
    }
}

impl RefreshLimiter {
    /// Takes one refresh from `sid`'s bucket for a request, to be kept when the request is
    /// answered and given back otherwise; or says how long until one is there.
    pub fn charge(
        &self,
        sid: tessera_core::ids::SessionId,
        now: Timestamp,
        per_minute: u32,
    ) -> Result<Charge<'_>, Duration> {
        self.take(sid, now, per_minute)?;
        Ok(Charge {
            limiter: self,
            sid,
            per_minute,
            kept: false,
        })
    }

    /// Takes one refresh from `sid`'s bucket, or says how long until one is there.
    /// `per_minute == 0`: no limit.
    pub fn take(
        &self,
        sid: tessera_core::ids::SessionId,
        now: Timestamp,
        per_minute: u32,
    ) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        self.buckets.take(sid, now, capacity, capacity / 60_000.0)
    }
}

#[cfg(test)]
mod refresh_tests {
    use super::*;
    use tessera_core::ids::SessionId;

    #[test]
    fn a_session_gets_its_budget_then_one_refresh_per_share_of_the_minute() {
        let limiter = RefreshLimiter::default();
        let (a, b) = (SessionId::random(), SessionId::random());
        let t0 = Timestamp::from_secs(1_000);
        for _ in 0..6 {
            assert!(limiter.take(a, t0, 6).is_ok());
        }
        let wait = limiter.take(a, t0, 6).expect_err("the budget is used up");
        assert_eq!(
            wait,
            Duration::from_secs(10),
            "one refresh per 10 s at 6/min"
        );
        assert!(
            limiter.take(b, t0, 6).is_ok(),
            "another session is not affected"
        );
        assert!(limiter.take(a, t0.plus(Duration::from_secs(9)), 6).is_err());
        assert!(limiter.take(a, t0.plus(Duration::from_secs(10)), 6).is_ok());
        for _ in 0..100 {
            assert!(limiter.take(a, t0, 0).is_ok(), "0: no limit");
        }
    }

    #[test]
    fn a_charge_not_kept_is_given_back() {
        let limiter = RefreshLimiter::default();
        let a = SessionId::random();
        let t0 = Timestamp::from_secs(1_000);
        for _ in 0..10 {
            drop(limiter.charge(a, t0, 1).expect("given back each time"));
        }
        limiter.charge(a, t0, 1).expect("one").keep();
        assert!(limiter.charge(a, t0, 1).is_err(), "a kept charge stands");
    }
}
