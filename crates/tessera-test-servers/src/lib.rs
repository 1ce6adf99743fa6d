//! Servers for tests.
//!
//! - Private Redis servers for tests that must not touch the shared one on 6379: fault tests
//!   (kill, pause, MISCONF, OOM) and a real Redis Cluster. Each server binds 127.0.0.1 on a free
//!   port, keeps its files in a temporary directory, is checked to be ours (its `process_id`),
//!   and is killed when dropped.
//! - A private PostgreSQL schema or MySQL/MariaDB database per test ([`PgSchema`],
//!   [`MySqlDatabase`]), dropped when the test ends.
//! - A TCP proxy that can cut or black-hole the way to a server ([`TcpProxy`]).
//! - A private nginx ([`Nginx`]) for the `auth_request` configuration.
//! - Third-party OAuth 2.0 and JWT libraries, pinned: a Python venv ([`python`]) and Node.js
//!   packages ([`node`]).

mod interop;
mod nginx;
mod proxy;
mod sql;
pub use interop::{node, python};
pub use nginx::Nginx;
pub use proxy::TcpProxy;
pub use sql::{mysql_url, pg_url, MySqlDatabase, PgSchema};

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `redis-cli` against a port and returns its output (trimmed), or the error text.
pub fn redis_cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // Piped, redis-cli prints errors raw ("MISCONF …") and still exits 0: recognise the codes.
    const ERRORS: [&str; 12] = [
        "ERR",
        "MISCONF",
        "OOM",
        "READONLY",
        "WRONGTYPE",
        "NOSCRIPT",
        "BUSY",
        "LOADING",
        "NOAUTH",
        "EXECABORT",
        "CLUSTERDOWN",
        "(error)",
    ];
    let first = text.split_whitespace().next().unwrap_or_default();
    if out.status.success() && !ERRORS.contains(&first) {
        Ok(text)
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free port whose cluster-bus port (+10000) is free too.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if port != 0 && port < 55_000 && port_is_free(port) && port_is_free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair for redis");
}

/// One private redis-server.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server with no persistence, plus `extra` arguments (`["--maxmemory", "2mb"]`).
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let port = free_port();
        let child = spawn(port, dir.path(), &extra);
        let server = Self {
            port,
            child,
            dir,
            extra,
        };
        server.wait_until_ours();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs a command with redis-cli.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        redis_cli(self.port, args)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_until_ours(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(info) = self.cli(&["INFO", "server"]) {
                let pid = info
                    .lines()
                    .find_map(|l| l.strip_prefix("process_id:"))
                    .map(str::trim);
                assert_eq!(
                    pid,
                    Some(self.child.id().to_string().as_str()),
                    "the redis on port {} is not ours",
                    self.port
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, empty (no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, self.dir.path(), &self.extra);
        self.wait_until_ours();
    }

    /// The directory holding the server's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn spawn(port: u16, dir: &Path, extra: &[String]) -> Child {
    Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/services.sh installs it)")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of `n` masters, no replicas.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` cluster-enabled servers and joins them with `redis-cli --cluster create`.
    pub fn start(n: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..n)
            .map(|_| {
                RedisServer::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = nodes.iter().all(|s| {
                s.cli(&["CLUSTER", "INFO"])
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            });
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { nodes }
    }

    /// The nodes as a comma-separated list of `redis://` URLs.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Deletes every key of one test's prefix (`P…` and the revocation log's `{P rev}…`) from the
/// Redis at `url`. Errors are ignored: this is clean-up.
pub fn delete_redis_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut con) = client.get_connection() else {
        return;
    };
    for pattern in [format!("{prefix}*"), format!("{{{prefix}rev}}*")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut con)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut con);
        }
    }
}
