//! Shared state of the service and the operations every route builds on: issuing a token pair for
//! a session, and authenticating a bearer access token.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tessera_core::access::{self, AccessClaims, AccessRules, Audience, Expiry};
use tessera_core::bearer;
use tessera_core::ids::TokenId;
use tessera_core::refresh::RefreshToken;
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{Session, SessionPolicy};
use tessera_core::verified::VerifiedCache;
use tessera_core::{Clock, Timestamp};
use tessera_store::{SessionStore, User, UserStore};

use crate::config::Settings;
use crate::error::ApiError;
use crate::passwords::PasswordPool;
use crate::revocations::RevocationCache;

/// Everything a request handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The effective settings.
    pub settings: Settings,
    /// Accounts.
    pub users: Arc<dyn UserStore>,
    /// Sessions and the revocation log.
    pub sessions: Arc<dyn SessionStore>,
    /// The signing and refresh MAC keys, kept current (rotation).
    pub keyring: crate::keyring::KeyRing,
    /// This process's copy of the revocation state.
    pub revocations: RevocationCache,
    /// argon2id on a bounded blocking pool.
    pub passwords: PasswordPool,
    /// The clock (injected in tests).
    pub clock: Arc<dyn Clock>,
    /// What access tokens must satisfy.
    pub rules: AccessRules,
    /// Session lifetimes.
    pub policy: SessionPolicy,
    /// SHA-256 of the admin API key; `None`: the admin API is off.
    pub admin_key_hash: Option<[u8; 32]>,
    /// SHA-256 of the verifier key (reads the revocation feed); `None`: none configured.
    pub verifier_key_hash: Option<[u8; 32]>,
    /// Remembered signature checks of repeatedly presented access tokens.
    pub verified: VerifiedCache,
    /// User rows reused for a second by the refresh path.
    pub user_cache: crate::users_cache::UserCache,
    /// Login throttling.
    pub throttle: crate::throttle::LoginThrottle,
    /// Refresh limits per session.
    pub refresh_limit: crate::throttle::RefreshLimiter,
    /// OAuth 2.0 clients.
    pub clients: crate::clients::Clients,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Set when shutdown began: `/readyz` answers 503 while the server drains.
    pub draining: std::sync::atomic::AtomicBool,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A freshly issued pair of tokens.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The access token (JWT).
    pub access_token: String,
    /// Its claims.
    pub claims: AccessClaims,
    /// The refresh token of the session's current generation.
    pub refresh_token: String,
    /// When the refresh token stops working if unused (idle or absolute expiry).
    pub refresh_expires_at: Timestamp,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The keys in force now.
    pub fn keys(&self) -> Arc<crate::keyring::Keys> {
        self.keyring.keys()
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// How long revoked-session and cutoff entries must be kept: as long as an access token
    /// issued just before could live, plus the leeway, plus one second for `iat` rounding.
    pub fn revocation_keep(&self) -> Duration {
        self.rules.ttl + self.rules.leeway + Duration::from_secs(1)
    }

    /// Mints an access token for `user` in `session`, and the refresh token of the session's
    /// current generation (recomputed from the MAC: the same text each time).
    pub fn issue(
        &self,
        session: &Session,
        user: &User,
        now: Timestamp,
    ) -> Result<Issued, ApiError> {
        let keys = self.keys();
        let key = keys
            .refresh
            .get(&session.key_id)
            .ok_or_else(|| ApiError::internal(&"the session's refresh key is not loaded"))?;
        let ttl = i64::try_from(self.rules.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: self.rules.issuer.clone(),
            sub: user.id.to_string(),
            aud: Audience::One(self.rules.audience.clone()),
            iat: now.as_secs(),
            exp: now.as_secs().saturating_add(ttl),
            nbf: None,
            jti: TokenId::random(),
            sid: session.id,
            client_id: session.client.client_id.clone(),
            scope: None,
            roles: user.roles.clone(),
        };
        Ok(Issued {
            access_token: access::mint(&keys.signing, &claims),
            claims,
            refresh_token: RefreshToken::issue(
                key,
                &session.id,
                session.generation,
                &session.nonce,
            ),
            refresh_expires_at: session.expires_at(),
        })
    }

    /// Authenticates a bearer access token with the code every verifier runs
    /// ([`tessera_core::bearer`]): signature and claims (skipped for a token that verified before
    /// and has not expired), then THE validity check (denied `jti`, revoked session, user cutoff)
    /// on every use. No I/O.
    pub fn authenticate(&self, token: &str) -> Result<Arc<AccessClaims>, ApiError> {
        let now = self.now();
        // Fail closed: a copy of the revocation state that could not be refreshed for a while
        // may be missing a logout made elsewhere.
        if !self.revocations.is_fresh() {
            return Err(ApiError::unavailable());
        }
        let keys = self.keys();
        let claims = bearer::claims(token, &keys.signing, &self.rules, &self.verified, now)?;
        self.revocations
            .with(|set| bearer::alive(&claims, set, now))?;
        Ok(claims)
    }

    /// Like [`authenticate`](Self::authenticate) but accepts an expired token: for logout and for
    /// pairing an access token with a refresh, which only need to know whose session it names.
    pub fn authentic_claims(&self, token: &str) -> Option<AccessClaims> {
        access::verify(
            token,
            &self.keys().signing,
            &self.rules,
            self.now(),
            Expiry::Ignore,
        )
        .ok()
    }

    /// Denies one access token until it expires (plus the leeway): stored first, then applied to
    /// this process's state, so an acknowledged logout holds at once.
    pub async fn deny(&self, claims: &AccessClaims) -> Result<(), ApiError> {
        // Already denied (a repeated logout): nothing to write.
        if self.revocations.with(|set| set.is_denied(&claims.jti)) {
            return Ok(());
        }
        let until = Timestamp::from_secs(claims.exp)
            .plus(self.rules.leeway)
            .max(self.now());
        let entry = RevocationEntry::DeniedToken {
            jti: claims.jti,
            until,
        };
        self.sessions
            .record(std::slice::from_ref(&entry), self.now())
            .await?;
        self.revocations.apply(&[entry]);
        Ok(())
    }

    /// Ends one session (if still live) and every access token of it: stored first, then applied
    /// to this process's revocation state. Returns the entries (none if it was already over).
    pub async fn end_session(
        &self,
        sid: tessera_core::ids::SessionId,
        reason: tessera_core::session::RevokeReason,
    ) -> Result<Vec<RevocationEntry>, ApiError> {
        let entries = self
            .sessions
            .revoke_sessions(
                &tessera_store::SessionSelector::One(sid),
                reason,
                self.now(),
                self.revocation_keep(),
            )
            .await?;
        self.revocations.apply(&entries);
        Ok(entries)
    }

    /// Whether `token` is an authentic refresh token of `session` (its MAC matches the stored
    /// nonce under the session's key), whatever its generation. Constant-time comparison.
    pub fn names_session(&self, token: &RefreshToken, session: &Session) -> bool {
        self.keys()
            .refresh
            .get(&session.key_id)
            .is_some_and(|key| token.tag_matches(key, &session.nonce))
    }

    /// Records a security event: one audit log line, and its metric.
    pub fn audit(
        &self,
        kind: &'static str,
        user: Option<&str>,
        sid: Option<&tessera_core::ids::SessionId>,
        client: &crate::audit::ClientMeta,
        outcome: &str,
    ) {
        crate::audit::event(kind, user, sid, client, outcome);
        self.metrics.event(kind, outcome);
    }

    /// Whether `presented` is the admin API key (constant-time comparison of SHA-256 digests).
    pub fn is_admin_key(&self, presented: &str) -> bool {
        key_matches(presented, self.admin_key_hash.as_ref())
    }

    /// Whether `presented` may read the revocation feed: the verifier key or the admin key.
    pub fn is_verifier_key(&self, presented: &str) -> bool {
        // Both comparisons always run: which key matched is not told by the time taken.
        let verifier = key_matches(presented, self.verifier_key_hash.as_ref());
        let admin = key_matches(presented, self.admin_key_hash.as_ref());
        verifier | admin
    }
}

/// Whether the SHA-256 of `presented` equals `expected`, compared in constant time (digests of
/// equal length, so neither the key's length nor its content leaks through timing).
pub fn key_matches(presented: &str, expected: Option<&[u8; 32]>) -> bool {
    let Some(expected) = expected else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    bool::from(digest.ct_eq(expected))
}
