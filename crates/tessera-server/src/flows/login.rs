//! Sign-up, login, and minting a session for a user authenticated elsewhere.

use crate::throttle::Refusal;
use tessera_core::password::{PasswordCheck, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use tessera_core::session::RevokeReason;
use tessera_core::session::{ClientInfo, Session};
use tessera_store::{NewUser, SessionSelector, User};

use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::state::{AppState, Issued};

/// Checks a username: 3–64 characters of `A–Z a–z 0–9 . _ @ + -`, and not shaped like a user id
/// (the admin API accepts either in the same place).
pub fn validate_username(name: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-');
    if !(3..=64).contains(&name.len()) || !name.chars().all(allowed) {
        return Err(ApiError::invalid_request(
            "username must be 3 to 64 characters of letters, digits and . _ @ + -",
        ));
    }
    if name.parse::<tessera_core::ids::UserId>().is_ok() {
        return Err(ApiError::invalid_request(
            "username must not be shaped like a user id",
        ));
    }
    Ok(())
}

/// Refuses a password that is too long before anything is hashed (long-password DoS).
pub fn check_password_length(password: &str) -> Result<(), ApiError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid_request(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks a new password: 8 characters to 1 KiB; no composition rules (NIST SP 800-63B).
pub fn validate_new_password(password: &str) -> Result<(), ApiError> {
    check_password_length(password)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid_request(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Creates a user with an optional password.
pub async fn create_user(
    state: &AppState,
    username: &str,
    password: Option<String>,
    roles: Vec<String>,
) -> Result<User, ApiError> {
    validate_username(username)?;
    let password_hash = match password {
        Some(p) => {
            validate_new_password(&p)?;
            Some(state.passwords.hash(p).await?)
        }
        None => None,
    };
    let new = NewUser {
        username: username.to_owned(),
        password_hash,
        roles,
    };
    let user = state
        .users
        .create_user(&new, state.now())
        .await
        .map_err(|e| match e {
            tessera_store::StoreError::Conflict(_) => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "username_taken",
                "this username is taken",
            ),
            other => other.into(),
        })?;
    Ok(user)
}

/// Logs in with username and password, starting a session of the OAuth client `client_id` (an
/// authenticated one; the first-party client by default). Unknown user, wrong password, no
/// password and blocked user get the same answer after the same work (one argon2 verification).
pub async fn login(
    state: &AppState,
    username: &str,
    password: String,
    client_id: &str,
    client: &ClientMeta,
) -> Result<(Issued, User), ApiError> {
    check_password_length(&password)?;
    // Names sign-up would refuse can never be accounts: nothing to look up or hash. This also
    // keeps look-alike spellings (`alicé`, full-width letters) away from a database collation
    // that might equate them with a real name, and from the throttle's per-name counting.
    if validate_username(username).is_err() {
        return Err(ApiError::invalid_credentials());
    }
    let attempt = match state
        .throttle
        .begin(
            state.users.as_ref(),
            username,
            client.ip.as_deref(),
            state.settings.login_address_limit,
            state.now(),
        )
        .await
    {
        Ok(attempt) => attempt,
        Err(Refusal::Wait(wait)) => {
            state.audit("login_throttled", None, None, client, "too_many_requests");
            return Err(ApiError::too_many_requests(wait));
        }
        Err(Refusal::Store(e)) => return Err(e.into()),
    };
    let user = state.users.user_by_username(username).await?;
    let phc = user.as_ref().and_then(|u| u.password_hash.clone());
    let check = state.passwords.check(password.clone(), phc).await?;
    let user = match (user, check) {
        (Some(user), PasswordCheck::Match | PasswordCheck::MatchNeedsRehash) if !user.blocked => {
            user
        }
        (user, _) => {
            let outcome = match &user {
                Some(u) if u.blocked => "blocked",
                Some(_) => "wrong_password",
                None => "unknown_user",
            };
            state.audit(
                "login_failed",
                user.as_ref().map(|u| u.id.as_str()),
                None,
                client,
                outcome,
            );
            // A failure that cannot be counted is not answered: the guess stays unconfirmed
            // (503), so a slowed database cannot buy free guesses.
            attempt.failed(state.users.as_ref(), state.now()).await?;
            return Err(ApiError::invalid_credentials());
        }
    };
    attempt.succeeded(state.users.as_ref()).await;
    if check == PasswordCheck::MatchNeedsRehash {
        // Best effort: a failed upgrade must not fail the login; it is retried next time.
        match state.passwords.hash(password).await {
            Ok(phc) => {
                if let Err(e) = state
                    .users
                    .set_password_hash(&user.id, &phc, state.now())
                    .await
                {
                    tracing::warn!(error = %e, "password rehash not stored");
                }
            }
            Err(e) => tracing::warn!(error = ?e, "password rehash failed"),
        }
    }
    let Some(issued) = start_session(state, &user, client_id, client).await? else {
        state.audit(
            "login_failed",
            Some(user.id.as_str()),
            None,
            client,
            "blocked",
        );
        return Err(ApiError::invalid_credentials());
    };
    state.audit(
        "login",
        Some(user.id.as_str()),
        Some(&issued.claims.sid),
        client,
        "ok",
    );
    Ok((issued, user))
}

/// Starts a new session for `user` and issues its first pair of tokens. Enforces the cap on live
/// sessions (the oldest go first). `Ok(None)`: the user was blocked, deleted or cut off while the
/// session was being made (a block or "log out everywhere" racing this login); the session is
/// revoked again and nothing is issued.
pub async fn start_session(
    state: &AppState,
    user: &User,
    client_id: &str,
    client: &ClientMeta,
) -> Result<Option<Issued>, ApiError> {
    let now = state.now();
    let info = ClientInfo {
        client_id: client_id.to_owned(),
        user_agent: client.user_agent.clone(),
        ip: client.ip.clone(),
    };
    let session = Session::new(
        user.id.clone(),
        state.keys().refresh.current().kid.clone(),
        info,
        &state.policy,
        now,
    );
    let evicted = state
        .sessions
        .create_session(
            &session,
            state.settings.max_sessions_per_user,
            state.revocation_keep(),
        )
        .await?;
    state.revocations.apply(&evicted);
    // A block or cutoff raises the user row first and sweeps sessions second: reading the row
    // again after the insert sees any sweep this session could have missed. "Changed since the
    // login read it" needs no clock, so instances whose clocks differ cannot fool it.
    let current = state.users.user_by_id(&user.id).await?;
    let standing = current.as_ref().map(|u| u.standing());
    let still_allowed = standing.is_some_and(|s| !s.blocked && s.cutoff == user.cutoff);
    if !still_allowed {
        let entries = state
            .sessions
            .revoke_sessions(
                &SessionSelector::One(session.id),
                RevokeReason::ForcedLogout,
                now,
                state.revocation_keep(),
            )
            .await?;
        state.revocations.apply(&entries);
        return Ok(None);
    }
    state.issue(&session, user, now).map(Some)
}
