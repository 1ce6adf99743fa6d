//! Passwords: argon2id in PHC strings, rehash when the parameters rise, a dummy hash for unknown
//! users so that "no such user" costs the same time as "wrong password".
//!
//! This module is CPU-bound and synchronous; the server runs it on a bounded blocking pool.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Passwords longer than this many bytes are refused before any hashing (long-password DoS).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The shortest password accepted at sign-up, in characters (NIST SP 800-63B §5.1.1.2).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Parallelism.
    pub parallelism: u32,
}

impl Default for HashParams {
    /// OWASP's minimum for argon2id: m = 19456 KiB, t = 2, p = 1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Why a password hash could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The parameters are out of argon2's range.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// Hashing failed.
    #[error("password hashing failed")]
    Hash,
}

/// What checking a password found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Wrong password, no hash, or an unreadable hash.
    Mismatch,
    /// Right password, hashed with the current parameters.
    Match,
    /// Right password, hashed with other (older) parameters: store a new hash.
    MatchNeedsRehash,
}

/// Hashes and checks passwords with one set of parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    params: HashParams,
    dummy: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher for `params`. Computes the dummy hash once, so it costs one hash.
    pub fn new(params: HashParams) -> Result<Self, PasswordError> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(32),
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let mut hasher = Self {
            argon2,
            params,
            dummy: String::new(),
        };
        hasher.dummy = hasher.hash("tessera dummy password, never a real one")?;
        Ok(hasher)
    }

    /// The parameters in force.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// A PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$hash` with a fresh 16-byte salt.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| PasswordError::Hash)
    }

    /// Checks `password` against `phc`; with `None` (unknown user, no password set) it checks
    /// against the dummy hash, spending the same time, and reports a mismatch.
    pub fn check(&self, password: &str, phc: Option<&str>) -> PasswordCheck {
        let (phc, real) = match phc {
            Some(phc) => (phc, true),
            None => (self.dummy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            // Still spend the time of one hash: no timing difference for a corrupt row.
            let _ = self
                .argon2
                .verify_password(password.as_bytes(), &self.dummy_hash());
            return PasswordCheck::Mismatch;
        };
        // Verify with the parameters stored in the hash (older users keep working).
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        if !(ok && real) {
            return PasswordCheck::Mismatch;
        }
        let current = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == self.params.memory_kib
                    && p.t_cost() == self.params.iterations
                    && p.p_cost() == self.params.parallelism
            });
        if current {
            PasswordCheck::Match
        } else {
            PasswordCheck::MatchNeedsRehash
        }
    }

    fn dummy_hash(&self) -> PasswordHash<'_> {
        PasswordHash::new(&self.dummy).expect("the dummy hash is made by this hasher")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashParams {
        HashParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn hashes_are_salted_phc_strings() {
        let h = PasswordHasher::new(cheap()).expect("hasher");
        let a = h.hash("correct horse").expect("hash");
        let b = h.hash("correct horse").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "unique salt");
    }

    #[test]
    fn check_outcomes() {
        let h = PasswordHasher::new(cheap()).expect("hasher");
        let phc = h.hash("correct horse").expect("hash");
        assert_eq!(h.check("correct horse", Some(&phc)), PasswordCheck::Match);
        assert_eq!(h.check("correct hors", Some(&phc)), PasswordCheck::Mismatch);
        assert_eq!(h.check("correct horse", None), PasswordCheck::Mismatch);
        assert_eq!(
            h.check("correct horse", Some("garbage")),
            PasswordCheck::Mismatch
        );
        let long_a = "a".repeat(100);
        let long_b = format!("{}b", "a".repeat(99));
        let phc = h.hash(&long_a).expect("hash");
        assert_eq!(
            h.check(&long_b, Some(&phc)),
            PasswordCheck::Mismatch,
            "no truncation"
        );
    }

    #[test]
    fn raised_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(cheap()).expect("hasher");
        let phc = old.hash("correct horse").expect("hash");
        let new = PasswordHasher::new(HashParams {
            memory_kib: 2048,
            ..cheap()
        })
        .expect("hasher");
        assert_eq!(
            new.check("correct horse", Some(&phc)),
            PasswordCheck::MatchNeedsRehash
        );
        assert_eq!(new.check("wrong", Some(&phc)), PasswordCheck::Mismatch);
    }

    #[test]
    fn the_default_is_the_owasp_minimum() {
        assert_eq!(
            HashParams::default(),
            HashParams {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
    }
}
