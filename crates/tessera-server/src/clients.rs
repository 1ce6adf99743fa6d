//! OAuth 2.0 clients (RFC 6749 §2): the built-in first-party client and the configured ones, and
//! client authentication.
//!
//! A confidential client proves itself with its secret (RFC 6749 §2.3.1, HTTP Basic or
//! `client_secret_post`); a public client (a browser or mobile app) only names itself. Secrets
//! are 256 random bits made by `tessera client create`, so a SHA-256 of the secret is all that is
//! kept, and the comparison of digests is constant-time.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::Settings;

/// One client.
#[derive(Debug, Clone)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// SHA-256 of the secret; `None` for a public client.
    secret_sha256: Option<[u8; 32]>,
    /// Whether it may call `/oauth/introspect`.
    pub introspect: bool,
}

impl Client {
    /// Whether the client has no secret (it cannot authenticate, only name itself).
    pub fn is_public(&self) -> bool {
        self.secret_sha256.is_none()
    }
}

/// What a request presented to identify its client. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The claimed `client_id`.
    pub id: String,
    /// The secret, if one was sent.
    pub secret: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Why a client could not be authenticated: every case answers `invalid_client` alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRejected {
    /// No client of that id.
    Unknown,
    /// A confidential client without its secret, or with a wrong one.
    BadSecret,
    /// A secret sent for a public client, which has none.
    UnexpectedSecret,
}

/// Every client the service knows.
#[derive(Debug, Clone)]
pub struct Clients {
    by_id: HashMap<String, Client>,
    first_party: String,
}

impl Clients {
    /// The first-party client (`client_id`, public) and the configured ones. The settings were
    /// validated: ids are unique and hashes are 64 hex digits.
    pub fn from_settings(settings: &Settings) -> Self {
        let mut by_id = HashMap::new();
        by_id.insert(
            settings.client_id.clone(),
            Client {
                id: settings.client_id.clone(),
                secret_sha256: None,
                introspect: false,
            },
        );
        for c in &settings.clients {
            let secret_sha256 = c.secret_sha256.as_deref().and_then(parse_hex32);
            by_id.insert(
                c.id.clone(),
                Client {
                    id: c.id.clone(),
                    secret_sha256,
                    introspect: c.introspect,
                },
            );
        }
        Self {
            by_id,
            first_party: settings.client_id.clone(),
        }
    }

    /// The first-party client's id.
    pub fn first_party(&self) -> &str {
        &self.first_party
    }

    /// The client of that id, if any.
    pub fn get(&self, id: &str) -> Option<&Client> {
        self.by_id.get(id)
    }

    /// Whether sessions of `client_id` may be refreshed without client authentication (on
    /// `/v1/auth/refresh`): only those of public clients. A confidential client's sessions need
    /// its secret, at `/oauth/token`.
    pub fn refreshes_unauthenticated(&self, client_id: &str) -> bool {
        self.get(client_id).is_some_and(Client::is_public)
    }

    /// Authenticates a client: a public client by its id alone (and never with a secret), a
    /// confidential one by its secret.
    pub fn authenticate(&self, presented: &Credentials) -> Result<&Client, ClientRejected> {
        let client = self.get(&presented.id).ok_or(ClientRejected::Unknown)?;
        match (&client.secret_sha256, &presented.secret) {
            (None, None) => Ok(client),
            (None, Some(_)) => Err(ClientRejected::UnexpectedSecret),
            (Some(_), None) => Err(ClientRejected::BadSecret),
            (Some(expected), Some(secret)) => {
                // Rule: compare digests in constant time, so the answer time says nothing about
                // how much of a guessed secret was right.
                let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                if bool::from(digest.ct_eq(expected)) {
                    Ok(client)
                } else {
                    Err(ClientRejected::BadSecret)
                }
            }
        }
    }
}

/// A new client secret (256 random bits, base64url) and the hex SHA-256 the configuration keeps.
pub fn new_secret() -> (String, String) {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hex(&Sha256::digest(secret.as_bytes()));
    (secret, hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;

    fn clients() -> (Clients, String) {
        let (secret, hash) = new_secret();
        let settings = Settings {
            clients: vec![
                ClientConfig {
                    id: "backend".into(),
                    secret_sha256: Some(hash),
                    introspect: true,
                },
                ClientConfig {
                    id: "spa".into(),
                    secret_sha256: None,
                    introspect: false,
                },
            ],
            ..Settings::default()
        };
        (Clients::from_settings(&settings), secret)
    }

    fn creds(id: &str, secret: Option<&str>) -> Credentials {
        Credentials {
            id: id.into(),
            secret: secret.map(Into::into),
        }
    }

    #[test]
    fn confidential_clients_need_their_exact_secret() {
        let (clients, secret) = clients();
        let ok = clients
            .authenticate(&creds("backend", Some(&secret)))
            .expect("right secret");
        assert_eq!(ok.id, "backend");
        assert!(ok.introspect && !ok.is_public());
        assert_eq!(
            clients.authenticate(&creds("backend", None)).err(),
            Some(ClientRejected::BadSecret),
            "no secret"
        );
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push('x');
        assert_eq!(
            clients.authenticate(&creds("backend", Some(&wrong))).err(),
            Some(ClientRejected::BadSecret),
            "a changed last character"
        );
        assert_eq!(
            clients.authenticate(&creds("backend", Some(""))).err(),
            Some(ClientRejected::BadSecret),
            "an empty secret"
        );
    }

    #[test]
    fn public_clients_only_name_themselves() {
        let (clients, secret) = clients();
        for id in ["spa", "tessera"] {
            let c = clients.authenticate(&creds(id, None)).expect("public");
            assert!(c.is_public() && !c.introspect);
            assert_eq!(
                clients.authenticate(&creds(id, Some(&secret))).err(),
                Some(ClientRejected::UnexpectedSecret)
            );
        }
        assert_eq!(
            clients.authenticate(&creds("nobody", None)).err(),
            Some(ClientRejected::Unknown)
        );
        assert!(clients.refreshes_unauthenticated("tessera"));
        assert!(clients.refreshes_unauthenticated("spa"));
        assert!(!clients.refreshes_unauthenticated("backend"));
        assert!(!clients.refreshes_unauthenticated("removed-client"));
    }

    #[test]
    fn secrets_are_random_and_their_hashes_parse() {
        let (a, hash_a) = new_secret();
        let (b, _) = new_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in base64url");
        assert!(parse_hex32(&hash_a).is_some());
        assert!(parse_hex32(&hash_a[1..]).is_none());
        assert!(parse_hex32(&"g".repeat(64)).is_none());
    }
}
