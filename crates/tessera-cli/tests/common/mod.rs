//! What the binary's tests share: running `tessera` and `tessera serve`.
#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `tessera` binary with a clean environment, a data directory in `dir`, cheap argon2.
pub(crate) fn tessera(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TESSERA_DATA_DIR", dir.join("data"))
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_ARGON2_MEMORY_KIB", "1024")
        .env("TESSERA_ARGON2_ITERATIONS", "1")
        .env("TESSERA_LOG_FORMAT", "json")
        .env("TESSERA_LOG_LEVEL", "info");
    cmd
}

/// A running `tessera serve`, its address, and every log line it printed.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) lines: mpsc::Receiver<String>,
}

/// Starts `tessera serve` in `dir` and waits for its address.
pub(crate) fn serve(dir: &Path) -> Server {
    serve_with(dir, &[])
}

/// Starts `tessera serve` in `dir` with extra environment variables.
pub(crate) fn serve_with(dir: &Path, env: &[(&str, String)]) -> Server {
    let mut child = tessera(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take();
    let (tx, rx) = mpsc::channel();
    let mut server = Server {
        child,
        addr: String::new(),
        lines: rx,
    };
    let stderr = stderr.expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.addr.is_empty() {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let line = server
            .lines
            .recv_timeout(wait)
            .expect("the server logs its address");
        if line.contains("tessera is listening") {
            let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            server.addr = log["addr"].as_str().expect("addr").to_owned();
        }
    }
    server
}

impl Drop for Server {
    /// A failed test must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
