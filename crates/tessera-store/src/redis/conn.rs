//! Connecting to Redis or Redis Cluster: bounded timeouts, reconnection, the eviction-policy
//! check, the revocation channel, and error mapping.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError, ScriptInvocation};
use tessera_core::ids::{SessionId, UserId};
use tokio::sync::{Notify, RwLock};

use crate::StoreError;

/// How to reach Redis and how to lay out keys.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port[/db]` (`rediss://` for TLS), or several URLs separated by commas
    /// (cluster nodes).
    /// A single URL pointing at a cluster node is detected as a cluster.
    pub url: String,
    /// Prefix of every key (must not contain `{` or `}`).
    pub prefix: String,
    /// Bound on every command; a slower answer counts as "unavailable".
    pub timeout: Duration,
    /// Run even if `maxmemory-policy` lets Redis evict keys (only with a warning).
    pub accept_eviction: bool,
    /// How long session keys outlive their session (one access-token lifetime plus leeway).
    pub keep: Duration,
    /// For `rediss://`: a PEM file of the CA to trust instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Key names (see the module docs for the layout).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn session(&self, sid: &SessionId) -> String {
        format!("{}s:{{{sid}}}", self.prefix)
    }
    pub(super) fn user(&self, user: &UserId) -> String {
        format!("{}u:{{{user}}}", self.prefix)
    }
    pub(super) fn rev_seq(&self) -> String {
        format!("{{{}rev}}:seq", self.prefix)
    }
    pub(super) fn rev_log(&self) -> String {
        format!("{{{}rev}}:log", self.prefix)
    }
    pub(super) fn rev_exp(&self) -> String {
        format!("{{{}rev}}:exp", self.prefix)
    }
    pub(super) fn channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }
}

/// The Redis session store.
pub struct RedisStore {
    conn: RwLock<Option<Conn>>,
    nodes: Vec<String>,
    cluster: bool,
    pub(super) keys: Keys,
    pub(super) options: RedisOptions,
    signal: Arc<Notify>,
    ca_pem: Option<Vec<u8>>,
    /// Session marks that failed after their log entry was written, retried on each log read.
    pub(super) pending: std::sync::Mutex<
        Vec<(
            SessionId,
            tessera_core::session::RevokeReason,
            tessera_core::Timestamp,
        )>,
    >,
    /// The cursor and member of the last log entry read, to detect a log that went back.
    pub(super) last_read: std::sync::Mutex<Option<(u64, String)>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("nodes", &self.nodes.len())
            .field("cluster", &self.cluster)
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// Redis errors that mean "not now": the store is down, slow, failing over, out of memory, or
/// refusing writes (`MISCONF`, `READONLY`). Retryable; never a verdict.
pub(super) fn map_err(e: RedisError) -> StoreError {
    const NOT_NOW: [&str; 9] = [
        "MISCONF",
        "READONLY",
        "OOM",
        "BUSY",
        "LOADING",
        "MASTERDOWN",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "NOREPLICAS",
    ];
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_cluster_error()
        || e.code().is_some_and(|c| NOT_NOW.contains(&c));
    if transient {
        unavailable(e)
    } else {
        StoreError::Backend(Box::new(e))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("redis did not answer within {0:?}")]
struct Timeout(Duration);

impl RedisStore {
    /// Connects. If Redis does not answer yet, the store still starts and connects on first use
    /// (answering 503 until then). Fails if Redis answers with an eviction policy that can evict
    /// Tessera's keys, unless `accept_eviction`.
    pub async fn connect(options: RedisOptions) -> Result<Self, StoreError> {
        if options.prefix.contains(['{', '}']) {
            return Err(StoreError::Backend(
                "the redis prefix must not contain { or }".into(),
            ));
        }
        let (nodes, ca_pem) = endpoints(&options)?;
        let cluster = nodes.len() > 1
            || is_cluster_node(&nodes[0], ca_pem.as_deref(), options.timeout)
                .await
                .unwrap_or(false);
        let store = Self {
            conn: RwLock::new(None),
            nodes,
            cluster,
            keys: Keys {
                prefix: options.prefix.clone(),
            },
            options,
            signal: Arc::new(Notify::new()),
            ca_pem,
            pending: std::sync::Mutex::new(Vec::new()),
            last_read: std::sync::Mutex::new(None),
        };
        match store.connection().await {
            Ok(_) => {}
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "redis is not reachable yet; will retry")
            }
            Err(e) => return Err(e),
        }
        store.spawn_subscriber();
        Ok(store)
    }

    /// Whether the store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Notified whenever another instance appends to the revocation log.
    pub fn revocation_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.signal)
    }

    async fn connection(&self) -> Result<Conn, StoreError> {
        if let Some(conn) = self.conn.read().await.as_ref() {
            return Ok(conn.clone());
        }
        let mut slot = self.conn.write().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let limit = self.options.timeout * 4;
        let conn = tokio::time::timeout(limit, self.open())
            .await
            .map_err(|_| unavailable(Timeout(limit)))??;
        self.check_eviction_policy().await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn open(&self) -> Result<Conn, StoreError> {
        let t = self.options.timeout;
        if self.cluster {
            let mut builder = redis::cluster::ClusterClient::builder(self.nodes.clone())
                .connection_timeout(t * 2)
                .response_timeout(t)
                .retries(2);
            if let Some(pem) = &self.ca_pem {
                builder = builder.certs(certificates(pem));
            }
            let client = builder.build().map_err(map_err)?;
            Ok(Conn::Cluster(
                client.get_async_connection().await.map_err(map_err)?,
            ))
        } else {
            let client = client(&self.nodes[0], self.ca_pem.as_deref()).map_err(map_err)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(t * 2))
                .set_response_timeout(Some(t))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            Ok(Conn::Single(
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(map_err)?,
            ))
        }
    }

    /// Refuses a Redis that may evict keys: eviction silently un-revokes logged-out tokens.
    async fn check_eviction_policy(&self) -> Result<(), StoreError> {
        let mut nodes = self.nodes.clone();
        let ca = self.ca_pem.as_deref();
        if self.cluster {
            if let Ok(masters) = cluster_masters(&self.nodes[0], ca, self.options.timeout).await {
                nodes = masters;
            }
        }
        for node in &nodes {
            let policy = config_get(node, ca, "maxmemory-policy", self.options.timeout).await;
            let problem = match policy {
                Ok(p) if p == "noeviction" => continue,
                Ok(p) => format!("redis at {node} has maxmemory-policy {p}, which may evict Tessera's keys and so un-revoke logged-out tokens; set `maxmemory-policy noeviction`"),
                Err(e) => format!("cannot read maxmemory-policy of redis at {node} ({e}); make sure it is noeviction"),
            };
            if self.options.accept_eviction {
                tracing::warn!("{problem} (accepted by redis_accept_eviction)");
            } else {
                return Err(StoreError::Backend(
                    format!("{problem}, or set redis_accept_eviction = true to run anyway").into(),
                ));
            }
        }
        Ok(())
    }

    /// Runs one command, within the timeout.
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let conn = self.connection().await?;
        let limit = self.options.timeout * 2;
        let run = async {
            match conn {
                Conn::Single(mut c) => cmd.query_async(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
            }
        };
        tokio::time::timeout(limit, run)
            .await
            .map_err(|_| unavailable(Timeout(limit)))?
            .map_err(map_err)
    }

    /// Runs one script (EVALSHA, loading it on NOSCRIPT), within the timeout.
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let conn = self.connection().await?;
        let limit = self.options.timeout * 2;
        let run = async {
            match conn {
                Conn::Single(mut c) => inv.invoke_async(&mut c).await,
                Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
            }
        };
        tokio::time::timeout(limit, run)
            .await
            .map_err(|_| unavailable(Timeout(limit)))?
            .map_err(map_err)
    }

    /// Follows the revocation channel, reconnecting forever; each message wakes the log reader.
    fn spawn_subscriber(&self) {
        let (node, channel, signal) = (
            self.nodes[0].clone(),
            self.keys.channel(),
            Arc::clone(&self.signal),
        );
        let ca = self.ca_pem.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            use futures_util::StreamExt as _;
            loop {
                let subscribed = async {
                    let client = client(&node, ca.as_deref())?;
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        signal.notify_one();
                    }
                    Ok::<(), RedisError>(())
                };
                if let Err(e) = subscribed.await {
                    tracing::debug!(error = %e, "revocation channel lost; resubscribing");
                }
                // Whatever was missed meanwhile is read from the log at the next poll.
                signal.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

fn certificates(ca_pem: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca_pem.to_vec()),
    }
}

/// A client for one node; `rediss://` URLs trust `ca_pem` if given, else the system's roots.
fn client(node: &str, ca_pem: Option<&[u8]>) -> Result<redis::Client, RedisError> {
    match ca_pem {
        Some(pem) if node.starts_with("rediss://") => {
            redis::Client::build_with_tls(node, certificates(pem))
        }
        _ => redis::Client::open(node),
    }
}

async fn plain(
    node: &str,
    ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<redis::aio::MultiplexedConnection, StoreError> {
    let client = client(node, ca).map_err(map_err)?;
    tokio::time::timeout(timeout * 2, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| unavailable(Timeout(timeout * 2)))?
        .map_err(map_err)
}

async fn is_cluster_node(
    node: &str,
    ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<bool, StoreError> {
    let mut c = plain(node, ca, timeout).await?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut c)
        .await
        .map_err(map_err)?;
    Ok(info.contains("cluster_enabled:1"))
}

async fn cluster_masters(
    seed: &str,
    ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<Vec<String>, StoreError> {
    let mut c = plain(seed, ca, timeout).await?;
    let scheme = if seed.starts_with("rediss://") {
        "rediss"
    } else {
        "redis"
    };
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut c)
        .await
        .map_err(map_err)?;
    Ok(nodes
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(2)
                .is_some_and(|flags| flags.contains("master"))
        })
        .filter_map(|l| l.split(' ').nth(1))
        .filter_map(|addr| addr.split('@').next())
        .map(|addr| format!("{scheme}://{addr}"))
        .collect())
}

async fn config_get(
    node: &str,
    ca: Option<&[u8]>,
    name: &str,
    timeout: Duration,
) -> Result<String, StoreError> {
    let mut c = plain(node, ca, timeout).await?;
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(&mut c)
        .await
        .map_err(map_err)?;
    pair.get(1)
        .cloned()
        .ok_or_else(|| StoreError::Backend("empty CONFIG GET reply".into()))
}

/// What `tessera doctor` reads off one Redis node (each master of a cluster).
#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// The node's URL.
    pub node: String,
    /// `maxmemory-policy` (anything but `noeviction` can silently un-revoke tokens).
    pub maxmemory_policy: String,
    /// `appendonly` (`yes`: the AOF persists every write).
    pub appendonly: String,
    /// `save` (RDB snapshot schedule; empty: none).
    pub save: String,
    /// The node's clock (`TIME`), milliseconds since the epoch.
    pub time_ms: i64,
}

/// Reads the settings that matter to Tessera off every node `options` names (the masters of a
/// cluster), without touching any key.
pub async fn inspect(options: &RedisOptions) -> Result<Vec<NodeFacts>, StoreError> {
    let (mut nodes, ca_pem) = endpoints(options)?;
    let ca = ca_pem.as_deref();
    let seed = nodes[0].clone();
    let cluster = nodes.len() > 1
        || is_cluster_node(&seed, ca, options.timeout)
            .await
            .unwrap_or(false);
    if cluster {
        nodes = cluster_masters(&seed, ca, options.timeout).await?;
    }
    let mut facts = Vec::new();
    for node in nodes {
        let mut c = plain(&node, ca, options.timeout).await?;
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut c)
            .await
            .map_err(map_err)?;
        facts.push(NodeFacts {
            maxmemory_policy: config_get(&node, ca, "maxmemory-policy", options.timeout).await?,
            appendonly: config_get(&node, ca, "appendonly", options.timeout).await?,
            save: config_get(&node, ca, "save", options.timeout).await?,
            time_ms: secs * 1000 + micros / 1000,
            node,
        });
    }
    Ok(facts)
}

/// The node URLs of `options` (at least one) and the CA to trust, if one is configured. Installs
/// the TLS provider (rustls with ring; installing it twice is harmless).
fn endpoints(options: &RedisOptions) -> Result<(Vec<String>, Option<Vec<u8>>), StoreError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_pem = match &options.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            StoreError::Backend(
                format!("cannot read the redis CA file {}: {e}", path.display()).into(),
            )
        })?),
        None => None,
    };
    let nodes: Vec<String> = options
        .url
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if nodes.is_empty() {
        return Err(StoreError::Backend("no redis URL given".into()));
    }
    Ok((nodes, ca_pem))
}
