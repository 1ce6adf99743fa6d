//! Login throttling per account (NIST SP 800-63B §5.2.2, OWASP Authentication Cheat Sheet).
//!
//! After [`FREE_FAILURES`] failed logins for a username, attempts are spaced by an exponentially
//! growing delay (1 s, 2 s, 4 s, … at most [`MAX_DELAY`]); an attempt inside the delay answers
//! 429 with `Retry-After` without checking the password. A success resets the count. Attempts in
//! flight count too, so guesses sent in parallel cannot slip through before their failures are
//! recorded: once the free attempts are used up, one attempt per delay gets through.
//! Unknown usernames are counted like real ones, so a 429 says nothing about existence.
//!
//! Limits, written down rather than hidden: the state is in this process's memory (several
//! instances each keep their own), and someone who keeps guessing a username keeps that account
//! at one try per [`MAX_DELAY`] for everyone, its owner included. Lifting that needs a way to
//! tell the owner's device apart (device cookies, per-address limits behind a trusted proxy).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tessera_core::Timestamp;

/// Failed logins of an account before delays start.
pub const FREE_FAILURES: u32 = 5;
/// The longest delay between attempts on one account.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Accounts remembered before idle entries are dropped (and, if that is not enough, all).
const CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Account {
    failures: u32,
    in_flight: u32,
    next_allowed: Timestamp,
}

fn delay(attempts_over: u32) -> Duration {
    Duration::from_secs(1u64 << attempts_over.min(16)).min(MAX_DELAY)
}

/// The throttle's memory.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Account>>,
}

/// One admitted login attempt. Record its outcome with [`failed`](Attempt::failed) or
/// [`succeeded`](Attempt::succeeded); dropped without an outcome (a store error, a refused
/// input), it simply stops counting as in flight.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    key: String,
    open: bool,
}

impl LoginThrottle {
    /// Admits a login attempt for `username`, or says how long to wait.
    pub fn begin(&self, username: &str, now: Timestamp) -> Result<Attempt<'_>, Duration> {
        let key = username.to_lowercase();
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if accounts.len() >= CAPACITY {
            accounts.retain(|_, a| a.in_flight > 0 || now.since(a.next_allowed) < MAX_DELAY);
            if accounts.len() >= CAPACITY {
                accounts.clear();
            }
        }
        let a = accounts.entry(key.clone()).or_insert(Account {
            failures: 0,
            in_flight: 0,
            next_allowed: now,
        });
        let attempts = a.failures + a.in_flight;
        if attempts >= FREE_FAILURES {
            if now < a.next_allowed {
                return Err(a.next_allowed.since(now));
            }
            // Reserve the slot: the next attempt waits even before this one's outcome is known.
            a.next_allowed = now.plus(delay(attempts + 1 - FREE_FAILURES));
        }
        a.in_flight += 1;
        Ok(Attempt {
            throttle: self,
            key,
            open: true,
        })
    }

    fn finish(&self, key: &str, outcome: Option<(bool, Timestamp)>) {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(a) = accounts.get_mut(key) else {
            return;
        };
        a.in_flight = a.in_flight.saturating_sub(1);
        match outcome {
            Some((true, _)) => {
                accounts.remove(key);
            }
            Some((false, now)) => {
                a.failures = a.failures.saturating_add(1);
                if a.failures >= FREE_FAILURES {
                    a.next_allowed = a
                        .next_allowed
                        .max(now.plus(delay(a.failures - FREE_FAILURES)));
                }
            }
            None => {}
        }
    }
}

impl Attempt<'_> {
    /// The password was wrong (or the account unusable).
    pub fn failed(mut self, now: Timestamp) {
        self.open = false;
        self.throttle.finish(&self.key, Some((false, now)));
    }

    /// The login succeeded: the account's count starts over.
    pub fn succeeded(mut self) {
        self.open = false;
        self.throttle
            .finish(&self.key, Some((true, Timestamp::default())));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.open {
            self.throttle.finish(&self.key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + ms)
    }

    #[test]
    fn delays_start_after_the_free_failures_and_grow_to_the_cap() {
        let throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            throttle.begin("Alice", t(0)).expect("free").failed(t(0));
        }
        assert_eq!(
            throttle.begin("alice", t(0)).map(|_| ()),
            Err(Duration::from_secs(1))
        );
        throttle
            .begin("ALICE", t(1000))
            .expect("after the delay")
            .failed(t(1000));
        assert_eq!(
            throttle.begin("alice", t(1500)).map(|_| ()),
            Err(Duration::from_millis(1500))
        );
        for i in 0..20 {
            let at = t(100_000 * (i + 1));
            throttle
                .begin("alice", at)
                .expect("after the delay")
                .failed(at);
        }
        let at = t(100_000 * 20);
        assert_eq!(
            throttle.begin("alice", at).map(|_| ()),
            Err(MAX_DELAY),
            "capped, never permanent"
        );
        assert!(
            throttle.begin("bob", at).is_ok(),
            "other accounts are untouched"
        );
        throttle
            .begin("alice", at.plus(MAX_DELAY))
            .expect("after the delay")
            .succeeded();
        assert!(
            throttle.begin("alice", at.plus(MAX_DELAY)).is_ok(),
            "a success resets"
        );
    }

    #[test]
    fn parallel_guesses_cannot_slip_through() {
        let throttle = LoginThrottle::default();
        let admitted: Vec<_> = (0..100)
            .filter_map(|_| throttle.begin("alice", t(0)).ok())
            .collect();
        assert_eq!(
            admitted.len(),
            FREE_FAILURES as usize + 1,
            "the free attempts and one reserved slot"
        );
        for attempt in admitted {
            attempt.failed(t(0));
        }
        assert!(throttle.begin("alice", t(0)).is_err());
    }

    #[test]
    fn an_attempt_without_an_outcome_stops_counting() {
        let throttle = LoginThrottle::default();
        for _ in 0..50 {
            drop(throttle.begin("alice", t(0)).expect("admitted"));
        }
        assert!(
            throttle.begin("alice", t(0)).is_ok(),
            "aborted attempts are not failures"
        );
    }
}

/// Refresh limits per session: a token bucket of `per_minute` refreshes, refilled evenly over a
/// minute. Charged only for a refresh that would be honoured (an authentic token that rotates or
/// is retried within the grace window), so nobody can use up a session's budget with forged
/// tokens that name it; a refusal here changes nothing and is never taken for reuse. The state
/// is this process's, like the login throttle's.
#[derive(Debug, Default)]
pub struct RefreshLimiter {
    buckets: Mutex<HashMap<tessera_core::ids::SessionId, (f64, Timestamp)>>,
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
            let mut buckets = self
                .limiter
                .buckets
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((tokens, _)) = buckets.get_mut(&self.sid) {
                *tokens = (*tokens + 1.0).min(f64::from(self.per_minute));
            }
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
        let per_ms = capacity / 60_000.0;
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
        let (tokens, at) = buckets.entry(sid).or_insert((capacity, now));
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
