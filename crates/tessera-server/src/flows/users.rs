//! Acting on a user as a whole: block, unblock, force logout, delete. Used by the admin API, the
//! `tessera user …` commands and "log out everywhere".

use tessera_core::ids::UserId;
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::RevokeReason;
use tessera_store::{SessionSelector, User};

use crate::error::ApiError;
use crate::state::AppState;

/// The user named by `key`: a user id, or else a username.
pub async fn resolve(state: &AppState, key: &str) -> Result<User, ApiError> {
    let found = match key.parse::<UserId>() {
        Ok(id) => state.users.user_by_id(&id).await?,
        Err(_) => state.users.user_by_username(key).await?,
    };
    found.ok_or_else(|| ApiError::not_found("no such user"))
}

/// Ends every session of the user and kills every access token issued so far: raises the durable
/// cutoff, revokes the sessions, records the cutoff entry. Returns how many sessions ended.
///
/// Each step is idempotent, so a failed call (503) can simply be repeated.
pub async fn cut_off(
    state: &AppState,
    user_id: &UserId,
    reason: RevokeReason,
) -> Result<usize, ApiError> {
    let now = state.now();
    let keep = state.revocation_keep();
    state.users.raise_cutoff(user_id, now).await?;
    state.user_cache.forget(user_id);
    let selector = SessionSelector::User {
        user_id: user_id.clone(),
        except: None,
    };
    let mut entries = state
        .sessions
        .revoke_sessions(&selector, reason, now, keep)
        .await?;
    let ended = entries.len();
    let cutoff = RevocationEntry::UserCutoff {
        sub: user_id.to_string(),
        at: now,
        until: now.plus(keep),
    };
    state
        .sessions
        .record(std::slice::from_ref(&cutoff), now)
        .await?;
    entries.push(cutoff);
    state.revocations.apply(&entries);
    Ok(ended)
}

/// Blocks the user: no login, no refresh, and every live token dies at once.
pub async fn block(state: &AppState, user: &User) -> Result<usize, ApiError> {
    state.users.set_blocked(&user.id, true, state.now()).await?;
    state.user_cache.forget(&user.id);
    cut_off(state, &user.id, RevokeReason::UserBlocked).await
}

/// Unblocks the user. Tokens from before the block stay dead; new logins work.
pub async fn unblock(state: &AppState, user: &User) -> Result<(), ApiError> {
    state
        .users
        .set_blocked(&user.id, false, state.now())
        .await?;
    state.user_cache.forget(&user.id);
    Ok(())
}

/// Forces the user out of every session.
pub async fn force_logout(state: &AppState, user: &User) -> Result<usize, ApiError> {
    cut_off(state, &user.id, RevokeReason::ForcedLogout).await
}

/// Deletes the user after ending everything they hold.
pub async fn delete(state: &AppState, user: &User) -> Result<usize, ApiError> {
    let ended = cut_off(state, &user.id, RevokeReason::UserDeleted).await?;
    state.users.delete_user(&user.id).await?;
    state.user_cache.forget(&user.id);
    Ok(ended)
}
