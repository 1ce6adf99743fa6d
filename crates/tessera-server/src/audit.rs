//! Security events as structured log lines on the `tessera::audit` target: who, which session,
//! from where, what happened. Never a password, a token or a key.

use tessera_core::ids::SessionId;

/// Where a request came from, as far as the server can tell.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    /// Peer address.
    pub ip: Option<String>,
    /// `User-Agent`, truncated to 256 bytes.
    pub user_agent: Option<String>,
}

/// Records one security event.
pub fn event(
    kind: &'static str,
    user: Option<&str>,
    sid: Option<&SessionId>,
    client: &ClientMeta,
    outcome: &str,
) {
    tracing::info!(
        target: "tessera::audit",
        event = kind,
        user_id = user.unwrap_or("-"),
        session_id = %sid.map(ToString::to_string).unwrap_or_else(|| "-".into()),
        client_ip = client.ip.as_deref().unwrap_or("-"),
        outcome,
    );
}
