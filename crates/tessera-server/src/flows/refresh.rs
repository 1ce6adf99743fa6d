//! Refresh: rotation on every use, the grace retry, reuse detection (DESIGN §2).
//!
//! A store error is never a verdict: it answers 503 and changes nothing (no revocation, no
//! generation consumed), because the decision is only acted on through the store's atomic
//! operations, each of which either happened or did not.

use tessera_core::decision::{self, Decision, Refusal};
use tessera_core::ids::SessionId;
use tessera_core::refresh::RefreshToken;
use tessera_core::session::{RevokeReason, Session};
use tessera_store::User;

use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::state::{AppState, Issued};

/// How often the session is read and decided on before giving up with 503. A lost
/// compare-and-set means another request rotated meanwhile (the next decision is a grace retry
/// or reuse); a cached read whose verdict is not "rotate" is read again from the source.
const MAX_ATTEMPTS: usize = 4;

/// Why a refresh failed.
#[derive(Debug)]
pub enum RefreshError {
    /// Refused: `invalid_grant` with a reason.
    Refused(Refusal),
    /// The access token sent along does not belong to this session. Nothing is revoked.
    AccessTokenMismatch,
    /// Not decided (store fault: 503).
    Api(ApiError),
}

/// Who is refreshing, which bounds whose sessions may be refreshed (RFC 6749 §6: a refresh token
/// is bound to the client it was issued to, and a confidential client must authenticate).
#[derive(Debug, Clone, Copy)]
pub enum Refresher<'a> {
    /// No client authentication (`/v1/auth/refresh`): sessions of public clients only.
    Unauthenticated,
    /// An authenticated client (`/oauth/token`): its own sessions only.
    Client(&'a str),
}

impl Refresher<'_> {
    fn may_refresh(self, state: &AppState, session_client: &str) -> bool {
        match self {
            Refresher::Unauthenticated => state.clients.refreshes_unauthenticated(session_client),
            Refresher::Client(id) => id == session_client,
        }
    }
}

impl From<ApiError> for RefreshError {
    fn from(e: ApiError) -> Self {
        RefreshError::Api(e)
    }
}

impl From<tessera_store::StoreError> for RefreshError {
    fn from(e: tessera_store::StoreError) -> Self {
        RefreshError::Api(e.into())
    }
}

/// Exchanges a refresh token (and optionally the access token issued with it, as seed 000's
/// reissue flow sends both) for a new pair.
pub async fn refresh(
    state: &AppState,
    refresh_token: &str,
    access_token: Option<&str>,
    refresher: Refresher<'_>,
    client: &ClientMeta,
) -> Result<(Issued, Decision), RefreshError> {
    let token = RefreshToken::parse(refresh_token)
        .map_err(|_| refused(state, Refusal::Invalid, None, None, client))?;
    // A store that answers reads from a cache (tiered) may hand out a copy that is behind. Such
    // a copy decides a rotation alone (the compare-and-set in the source of truth confirms it);
    // every other verdict is taken again on the source's own state.
    let mut from_source = !state.sessions.caches_sessions();
    let mut charge: Option<crate::throttle::Charge<'_>> = None;
    for _ in 0..MAX_ATTEMPTS {
        let now = state.now();
        let session = if from_source {
            state.sessions.session_from_source(&token.sid).await?
        } else {
            state.sessions.session(&token.sid).await?
        };
        let user = match &session {
            Some(s) => {
                state
                    .user_cache
                    .get(state.users.as_ref(), &s.user_id)
                    .await?
            }
            None => None,
        };
        // A session whose user is gone is as good as unknown.
        let (Some(session), Some(user)) = (session, user) else {
            if !from_source {
                from_source = true;
                continue;
            }
            return Err(refused(state, Refusal::Invalid, None, None, client));
        };
        // Another client's refresh token is refused before anything is decided on it: the wrong
        // client cannot use it, nor burn it (which would look like reuse to its owner). The
        // answer is the one for an invalid token (no oracle).
        if !refresher.may_refresh(state, &session.client.client_id) {
            return Err(refused(
                state,
                Refusal::Invalid,
                Some(user.id.as_str()),
                Some(&session.id),
                client,
            ));
        }
        let decided = decide(state, &token, &session, &user, now);
        if !from_source && !matches!(decided, Ok(Decision::Rotate)) {
            from_source = true;
            continue;
        }
        let who = (Some(user.id.as_str()), Some(&session.id));
        let decision = match decided {
            Ok(decision) => decision,
            Err(Refusal::Reuse) => {
                // The family is compromised: revoke the session and its live access tokens.
                state
                    .end_session(session.id, RevokeReason::ReuseDetected)
                    .await?;
                return Err(refused(state, Refusal::Reuse, who.0, who.1, client));
            }
            Err(other) => return Err(refused(state, other, who.0, who.1, client)),
        };
        // Seed 000 sends the old access token along: it must name this very session.
        let old_access = match access_token {
            Some(text) => match state.authentic_claims(text) {
                Some(c) if c.sid == session.id && c.sub == user.id.as_str() => Some(c),
                _ => return Err(RefreshError::AccessTokenMismatch),
            },
            None => None,
        };
        // The session's rate limit, charged once per request and only for a refresh that will
        // be honoured: refunded if the request ends in an error after all (the charge's drop),
        // and a 429 consumes nothing and is never taken for reuse.
        if charge.is_none() {
            let limit = state.settings.refresh_rate_limit;
            match state.refresh_limit.charge(session.id, now, limit) {
                Ok(taken) => charge = Some(taken),
                Err(wait) => {
                    state.audit(
                        "refresh_throttled",
                        who.0,
                        who.1,
                        client,
                        "too_many_requests",
                    );
                    return Err(RefreshError::Api(ApiError::too_many_refreshes(wait)));
                }
            }
        }
        let issued = match decision {
            Decision::Rotate => {
                let next = session.rotated(&state.policy, now);
                let rotated = match state.sessions.rotate(&next, session.generation).await {
                    Ok(rotated) => rotated,
                    // Unclear outcome (a timeout may hide a write that happened): look. Our own
                    // write is recognised by its generation and rotation time; anything else
                    // stays a 503 that changed nothing.
                    Err(e) => match state.sessions.session_from_source(&session.id).await {
                        Ok(Some(s))
                            if s.generation == next.generation
                                && s.rotated_at == next.rotated_at
                                && s.revoked.is_none() =>
                        {
                            true
                        }
                        _ => return Err(e.into()),
                    },
                };
                if !rotated {
                    continue; // another request rotated first: decide again on the new state
                }
                // The replaced access token is denied, as seed 000 replaces the whole pair. Best
                // effort: the rotation is committed, so failing the answer now would only make
                // the client retry; the old token then lives until its `exp` at the latest.
                if let Some(old) = old_access {
                    if let Err(e) = state.deny(&old).await {
                        tracing::warn!(error = ?e, "the replaced access token could not be denied");
                    }
                }
                state.issue(&next, &user, now)?
            }
            Decision::GraceRetry => state.issue(&session, &user, now)?,
        };
        if let Some(taken) = charge.take() {
            taken.keep();
        }
        state.audit("refresh", who.0, who.1, client, decision.outcome());
        return Ok((issued, decision));
    }
    Err(RefreshError::Api(ApiError::unavailable()))
}

/// RFC 7662 for a refresh token: its session and user when the token is the one that can rotate
/// now (the current generation of a live session of a user in good standing) and `client_id` owns
/// the session. Reads only: an old token is inactive here, and nothing is revoked on its sight.
pub async fn inspect(
    state: &AppState,
    text: &str,
    client_id: &str,
) -> Result<Option<(Session, User)>, ApiError> {
    let Ok(token) = RefreshToken::parse(text) else {
        return Ok(None);
    };
    if !state.revocations.is_fresh() {
        return Err(ApiError::unavailable());
    }
    let Some(session) = state.sessions.session_from_source(&token.sid).await? else {
        return Ok(None);
    };
    if session.client.client_id != client_id {
        return Ok(None);
    }
    let Some(user) = state.users.user_by_id(&session.user_id).await? else {
        return Ok(None);
    };
    let decided = decide(state, &token, &session, &user, state.now());
    Ok(matches!(decided, Ok(Decision::Rotate)).then_some((session, user)))
}

/// THE refresh decision on this process's revocation state.
fn decide(
    state: &AppState,
    token: &RefreshToken,
    session: &Session,
    user: &User,
    now: tessera_core::Timestamp,
) -> Result<Decision, Refusal> {
    let keys = state.keys();
    state.revocations.with(|set| {
        decision::decide(
            token,
            Some(session),
            &keys.refresh,
            &user.standing(),
            set,
            state.policy.grace,
            now,
        )
    })
}

fn refused(
    state: &AppState,
    refusal: Refusal,
    user: Option<&str>,
    sid: Option<&SessionId>,
    client: &ClientMeta,
) -> RefreshError {
    let kind = if refusal == Refusal::Reuse {
        "refresh_reuse_detected"
    } else {
        "refresh_refused"
    };
    state.audit(kind, user, sid, client, refusal.outcome());
    RefreshError::Refused(refusal)
}
