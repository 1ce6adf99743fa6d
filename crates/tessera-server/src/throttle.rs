//! Login throttling (NIST SP 800-63B §5.2.2, OWASP Authentication Cheat Sheet).
//!
//! - **Per account**: after [`FREE_FAILURES`] consecutive failed logins for a username, each
//!   further attempt must wait an exponentially growing delay (1 s, 2 s, 4 s, … at most
//!   [`MAX_DELAY`]); attempts inside the delay answer 429 with `Retry-After`, without checking
//!   the password. A success resets the count. Unknown usernames are counted like real ones, so
//!   the answer says nothing about whether an account exists. An attacker can slow a victim's
//!   logins to one try per [`MAX_DELAY`], never lock them out for good.
//!
//! The state is in this process's memory; with several instances each keeps its own. Throttling
//! per client address is not done here: behind a reverse proxy every client has the proxy's
//! address, and trusting forwarded addresses needs a proxy configuration of its own.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tessera_core::Timestamp;

/// Failed logins of an account before delays start.
pub const FREE_FAILURES: u32 = 5;
/// The longest delay between attempts on one account.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Entries kept per map before expired ones are dropped.
const CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    next_allowed: Timestamp,
}

/// The throttle's memory.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Failures>>,
}

fn key(username: &str) -> String {
    username.to_lowercase()
}

impl LoginThrottle {
    /// `Err(wait)` if a login for `username` must wait.
    pub fn check(&self, username: &str, now: Timestamp) -> Result<(), Duration> {
        match self
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key(username))
        {
            Some(f) if now < f.next_allowed => Err(f.next_allowed.since(now)),
            _ => Ok(()),
        }
    }

    /// Records a failed login for `username`.
    pub fn failed(&self, username: &str, now: Timestamp) {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if accounts.len() >= CAPACITY {
            accounts.retain(|_, f| now.since(f.next_allowed) < MAX_DELAY);
        }
        let f = accounts.entry(key(username)).or_insert(Failures {
            count: 0,
            next_allowed: now,
        });
        f.count = f.count.saturating_add(1);
        if f.count >= FREE_FAILURES {
            let exponent = (f.count - FREE_FAILURES).min(16);
            let delay = Duration::from_secs(1u64 << exponent).min(MAX_DELAY);
            f.next_allowed = now.plus(delay);
        }
    }

    /// Records a successful login: the account's count starts over.
    pub fn succeeded(&self, username: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key(username));
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
        for _ in 0..FREE_FAILURES - 1 {
            assert!(throttle.check("Alice", t(0)).is_ok());
            throttle.failed("alice", t(0));
        }
        assert!(throttle.check("alice", t(0)).is_ok());
        throttle.failed("ALICE", t(0)); // the fifth: 1 s
        assert_eq!(throttle.check("alice", t(0)), Err(Duration::from_secs(1)));
        assert!(throttle.check("alice", t(1000)).is_ok());
        throttle.failed("alice", t(1000)); // 2 s
        assert_eq!(
            throttle.check("alice", t(1500)),
            Err(Duration::from_millis(1500))
        );
        for _ in 0..20 {
            throttle.failed("alice", t(1000));
        }
        assert_eq!(
            throttle.check("alice", t(1000)),
            Err(MAX_DELAY),
            "capped, never permanent"
        );
        assert!(
            throttle.check("bob", t(1000)).is_ok(),
            "other accounts are untouched"
        );
        throttle.succeeded("alice");
        assert!(throttle.check("alice", t(1000)).is_ok(), "a success resets");
    }
}
