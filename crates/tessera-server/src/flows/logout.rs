//! Logout in three scopes: this session, all other sessions, everywhere.
//!
//! Logging out of this session is idempotent and answers 200 whatever is presented (RFC 7009
//! §2.2 spirit: no oracle, and a client can always retry): an authentic access token, even
//! expired, or a refresh token ends its session; garbage ends nothing. The wider scopes act on
//! the whole account and need a live credential.

use serde::Deserialize;
use tessera_core::access::AccessClaims;
use tessera_core::ids::{SessionId, UserId};
use tessera_core::refresh::RefreshToken;
use tessera_core::session::RevokeReason;
use tessera_core::validity::Subject;
use tessera_store::SessionSelector;

use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::flows::users;
use crate::state::AppState;

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The session of the presented token.
    #[default]
    Session,
    /// Every other session of the user.
    Others,
    /// Every session of the user, and every access token issued so far.
    All,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::Others => "others",
            Scope::All => "all",
        }
    }
}

/// Whose session the presented credentials name.
struct Identity {
    user_id: UserId,
    sid: SessionId,
    /// Whether the credential is alive (unexpired, not revoked): needed for the wider scopes.
    live: bool,
    access: Option<AccessClaims>,
}

async fn identify(
    state: &AppState,
    bearer: Option<&str>,
    refresh: Option<&str>,
) -> Result<Option<Identity>, ApiError> {
    let now = state.now();
    let from_access = bearer
        .and_then(|t| state.authentic_claims(t))
        .and_then(|claims| {
            let user_id = claims.sub.parse::<UserId>().ok()?;
            let live = claims.exp > now.as_secs()
                && state
                    .revocations
                    .check(Subject::Access(&claims), now)
                    .is_ok();
            Some(Identity {
                user_id,
                sid: claims.sid,
                live,
                access: Some(claims),
            })
        });
    let from_refresh = match refresh.map(RefreshToken::parse) {
        // From the source of truth: a cached copy that is behind would take an old, rotated
        // token for a live credential of the account-wide scopes.
        Some(Ok(token)) => match state.sessions.session_from_source(&token.sid).await? {
            Some(session) => {
                let authentic = state.names_session(&token, &session);
                // Rule: without client authentication, a refresh token of a confidential
                // client's session is no credential here (its client revokes it at
                // /oauth/revoke), as it cannot be refreshed here either.
                let usable_here = state
                    .clients
                    .refreshes_unauthenticated(&session.client.client_id);
                if authentic && usable_here {
                    let standing = state
                        .users
                        .user_by_id(&session.user_id)
                        .await?
                        .map(|u| u.standing());
                    // Live only as the refresh decision would take it: the current generation,
                    // or its parent within the grace window. An older, already rotated token is
                    // no credential for the account-wide scopes (it may be a thief's copy).
                    let fresh_generation = token.generation == session.generation
                        || (token.generation + 1 == session.generation
                            && now.since(session.rotated_at) < state.policy.grace);
                    let live = fresh_generation
                        && standing.is_some_and(|user| {
                            state
                                .revocations
                                .check(
                                    Subject::Session {
                                        session: &session,
                                        user: &user,
                                    },
                                    now,
                                )
                                .is_ok()
                        });
                    Some(Identity {
                        user_id: session.user_id.clone(),
                        sid: session.id,
                        live,
                        access: None,
                    })
                } else {
                    None
                }
            }
            None => None,
        },
        _ => None,
    };
    match (from_access, from_refresh) {
        (Some(a), Some(r)) if a.sid != r.sid => Err(ApiError::invalid_request(
            "the access and refresh tokens belong to different sessions",
        )),
        (Some(mut a), Some(r)) => {
            a.live = a.live || r.live;
            Ok(Some(a))
        }
        (a, r) => Ok(a.or(r)),
    }
}

/// Logs out; returns how many sessions were ended.
pub async fn logout(
    state: &AppState,
    bearer: Option<&str>,
    refresh: Option<&str>,
    scope: Scope,
    client: &ClientMeta,
) -> Result<usize, ApiError> {
    let identity = identify(state, bearer, refresh).await?;
    let ended = match (scope, identity) {
        (Scope::Session, None) => 0,
        (Scope::Session, Some(id)) => {
            let entries = state.end_session(id.sid, RevokeReason::Logout).await?;
            // The revoked-session entry kills every access token of the session, this one
            // included, for as long as any can live: a denial of its `jti` would be a second
            // write (a second commit) saying the same. Only when nothing was revoked now (the
            // session was already gone) is the token denied by itself.
            if entries.is_empty() {
                if let Some(claims) = &id.access {
                    state.deny(claims).await?;
                }
            }
            state.audit(
                "logout",
                Some(id.user_id.as_str()),
                Some(&id.sid),
                client,
                scope.as_str(),
            );
            entries.len()
        }
        (_, None) if bearer.is_none() && refresh.is_none() => return Err(ApiError::missing_token()),
        (_, Some(id)) if id.live => {
            let ended = match scope {
                Scope::Others => {
                    let selector = SessionSelector::User {
                        user_id: id.user_id.clone(),
                        except: Some(id.sid),
                    };
                    let entries = state
                        .sessions
                        .revoke_sessions(
                            &selector,
                            RevokeReason::LogoutAll,
                            state.now(),
                            state.revocation_keep(),
                        )
                        .await?;
                    state.revocations.apply(&entries);
                    entries.len()
                }
                _ => {
                    let ended = users::cut_off(state, &id.user_id, RevokeReason::LogoutAll).await?;
                    if let Some(claims) = &id.access {
                        state.deny(claims).await?;
                    }
                    ended
                }
            };
            state.audit(
                "logout",
                Some(id.user_id.as_str()),
                Some(&id.sid),
                client,
                scope.as_str(),
            );
            ended
        }
        _ => {
            return Err(ApiError::invalid_token(
                "invalid_token",
                "a live access or refresh token is required",
            ))
        }
    };
    Ok(ended)
}

/// What an RFC 7009 revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The token's session (refresh token) or the token itself (access token) is now revoked,
    /// or already was.
    Done,
    /// Not a token of ours, or already past its life: nothing to do (still a 200).
    Unknown,
    /// An authentic token of another client: refused, nothing revoked (RFC 7009 §2.1).
    OtherClient,
}

/// RFC 7009 for a refresh token: ends its session, and with it every access token of the
/// session, when `client_id` is the session's client.
pub async fn revoke_refresh(
    state: &AppState,
    token: &RefreshToken,
    client_id: &str,
    client: &ClientMeta,
) -> Result<Revoked, ApiError> {
    let Some(session) = state.sessions.session_from_source(&token.sid).await? else {
        return Ok(Revoked::Unknown);
    };
    // Rule: only an authentic token (its MAC matches the stored nonce) names a session; a
    // forged one with a guessed session id revokes nothing and learns nothing.
    let authentic = state.names_session(token, &session);
    // A session already over (revoked or expired) has nothing left to revoke, whoever asks.
    if !authentic || session.revoked.is_some() || session.expires_at() <= state.now() {
        return Ok(Revoked::Unknown);
    }
    if session.client.client_id != client_id {
        return Ok(Revoked::OtherClient);
    }
    state.end_session(session.id, RevokeReason::Logout).await?;
    state.audit(
        "token_revoked",
        Some(session.user_id.as_str()),
        Some(&session.id),
        client,
        "refresh_token",
    );
    Ok(Revoked::Done)
}

/// RFC 7009 for an access token (authentic, even expired): denied until it expires, when
/// `client_id` is its client.
pub async fn revoke_access(
    state: &AppState,
    claims: &AccessClaims,
    client_id: &str,
    client: &ClientMeta,
) -> Result<Revoked, ApiError> {
    let leeway = i64::try_from(state.rules.leeway.as_secs()).unwrap_or(i64::MAX);
    if claims.exp.saturating_add(leeway) < state.now().as_secs() {
        return Ok(Revoked::Unknown); // dead by itself: nothing to store, whoever asks
    }
    if claims.client_id != client_id {
        return Ok(Revoked::OtherClient);
    }
    state.deny(claims).await?;
    state.audit(
        "token_revoked",
        Some(&claims.sub),
        Some(&claims.sid),
        client,
        "access_token",
    );
    Ok(Revoked::Done)
}
