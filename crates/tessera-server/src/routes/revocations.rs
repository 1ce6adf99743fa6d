//! The revocation feed for verifiers (`tessera-verify`, or any resource server): the live
//! revocation state as a snapshot with a cursor, then a Server-Sent Events stream from a cursor.
//!
//! ```text
//! GET /v1/revocations              {"cursor": 41, "entries": [...], "heartbeat_ms": 1000}
//! GET /v1/revocations/stream?cursor=41
//!     event: revocations           id: 42   data: {"cursor": 42, "entries": [...]}
//!     event: heartbeat             id: 42   data: {"cursor": 42}
//! ```
//!
//! Entries are those of the revocation log (`denied_token`, `revoked_session`, `user_cutoff`);
//! applying one twice, or out of order, changes nothing, so a verifier may resume from any cursor
//! it was given (`?cursor=` or the standard `Last-Event-ID` of a reconnecting client).
//!
//! Heartbeats are sent only while this instance's own copy is fresh: a verifier that hears
//! nothing for longer than its bound knows it may be missing revocations and fails closed, also
//! when Tessera itself has lost its store.
//!
//! Both routes need the verifier key (or the admin key) as a bearer credential.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tessera_core::revocation::RevocationEntry;

use crate::error::ApiError;
use crate::extract::Bearer;
use crate::state::AppState;

/// How often a stream says it is alive (and how current it is).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/revocations", get(snapshot))
        .route("/v1/revocations/stream", get(stream))
}

/// The live revocation state.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// Follow the stream from here.
    pub cursor: u64,
    /// Every live entry.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<RevocationEntry>,
    /// How often the stream sends a heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// Tessera's leeway for `exp`, in seconds: entries are kept only this long past the `exp`
    /// of the tokens they kill, so a verifier must not accept tokens longer than that.
    pub leeway_secs: u64,
    /// The lifetime of the access tokens Tessera issues, in seconds.
    pub access_ttl_secs: u64,
}

/// One `revocations` event of the stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct Batch {
    /// The cursor after these entries.
    pub cursor: u64,
    /// New entries, oldest first.
    pub entries: Vec<RevocationEntry>,
}

fn authorize(state: &AppState, token: &str) -> Result<(), ApiError> {
    if state.is_verifier_key(token) {
        Ok(())
    } else {
        Err(ApiError::invalid_token(
            "invalid_token",
            "the revocation feed needs the verifier key",
        ))
    }
}

async fn snapshot(
    State(state): State<AppState>,
    Bearer(token): Bearer,
) -> Result<Json<Snapshot>, ApiError> {
    authorize(&state, &token)?;
    // A copy that may be missing revocations is no snapshot to hand out; a draining instance
    // sends verifiers to the others.
    if !state.revocations.is_fresh() || state.draining.load(Ordering::Relaxed) {
        return Err(ApiError::unavailable());
    }
    let (cursor, entries) = state.revocations.snapshot();
    Ok(Json(Snapshot {
        cursor,
        entries,
        heartbeat_ms: u64::try_from(HEARTBEAT.as_millis()).unwrap_or(u64::MAX),
        leeway_secs: state.rules.leeway.as_secs(),
        access_ttl_secs: state.rules.ttl.as_secs(),
    }))
}

/// Where a stream starts.
#[derive(Debug, Deserialize)]
struct StreamFrom {
    cursor: Option<u64>,
}

async fn stream(
    State(state): State<AppState>,
    Bearer(token): Bearer,
    headers: HeaderMap,
    from: Result<Query<StreamFrom>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &token)?;
    let Query(from) =
        from.map_err(|_| ApiError::invalid_request("cursor must be a non-negative integer"))?;
    // A reconnecting EventSource says where it was; that wins over the query.
    // Cursors are what the store hands out: they fit in an i64.
    if from.cursor.is_some_and(|c| i64::try_from(c).is_err()) {
        return Err(ApiError::invalid_request("cursor out of range"));
    }
    // A reconnecting EventSource sends back the last id it saw. One that is not a cursor of
    // ours (empty, or something else) is no id: the stream starts from `?cursor=` or the
    // beginning of the log, which repeats entries but never misses one.
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|c| i64::try_from(*c).is_ok());
    let cursor = last_event.or(from.cursor).unwrap_or(0);
    let mut response = Sse::new(follow(state, cursor)).into_response();
    // Tell nginx (and similar proxies) not to buffer the stream.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// The state of one stream.
struct Follow {
    state: AppState,
    cursor: u64,
    changes: tokio::sync::watch::Receiver<u64>,
    heartbeat: tokio::time::Interval,
    pending: VecDeque<Event>,
    catch_up: bool,
}

fn event(kind: &'static str, cursor: u64, data: &impl Serialize) -> Event {
    Event::default()
        .event(kind)
        .id(cursor.to_string())
        .json_data(data)
        .unwrap_or_else(|_| Event::default().comment("unserialisable"))
}

/// The events from `cursor` on: what the log holds after it, then each new batch as it arrives,
/// with heartbeats. Ends when the server drains or the log cannot be read (the client reconnects
/// from its last cursor).
fn follow(state: AppState, cursor: u64) -> impl Stream<Item = Result<Event, Infallible>> {
    let changes = state.revocations.subscribe();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Follow {
        state,
        cursor,
        changes,
        heartbeat,
        pending: VecDeque::new(),
        catch_up: true,
    };
    futures_util::stream::unfold(start, |mut f| async move {
        loop {
            if let Some(event) = f.pending.pop_front() {
                return Some((Ok(event), f));
            }
            if f.state.draining.load(Ordering::Relaxed) {
                return None;
            }
            let read = if std::mem::take(&mut f.catch_up) {
                true
            } else {
                tokio::select! {
                    changed = f.changes.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        true
                    }
                    _ = f.heartbeat.tick() => {
                        if f.state.revocations.is_fresh() {
                            f.pending.push_back(event(
                                "heartbeat",
                                f.cursor,
                                &serde_json::json!({ "cursor": f.cursor }),
                            ));
                        }
                        false
                    }
                }
            };
            if read && !read_log(&mut f).await {
                return None;
            }
        }
    })
}

/// Reads the log after the stream's cursor into pending events. `false`: the store failed.
async fn read_log(f: &mut Follow) -> bool {
    loop {
        let batch = match f
            .state
            .sessions
            .revocations_since(f.cursor, f.state.now())
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "revocation stream: the log could not be read; closing");
                return false;
            }
        };
        // A log that went back (an emptied Redis) hands out a smaller cursor with all its
        // entries: passed on as it is, the client's copy stays a superset and follows on.
        if !batch.entries.is_empty() || batch.cursor != f.cursor {
            f.cursor = batch.cursor;
            let data = Batch {
                cursor: batch.cursor,
                entries: batch.entries,
            };
            f.pending.push_back(event("revocations", f.cursor, &data));
        }
        if !batch.more {
            return true;
        }
    }
}
