//! A private nginx (Debian's `nginx-light` or `nginx`) on a free loopback port, with its
//! configuration and logs in a temporary directory, stopped when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One nginx master process in the foreground.
#[derive(Debug)]
pub struct Nginx {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// Where Debian installs the binary.
const BINARY: &str = "/usr/sbin/nginx";

impl Nginx {
    /// Starts nginx with `http_block` as the body of its `http { }` block; `{port}` in it is
    /// replaced by the port nginx listens on. Panics (the test fails) if nginx is missing or
    /// does not start: `.ci/run` installs it.
    pub fn start(http_block: &str) -> Self {
        assert!(
            Path::new(BINARY).exists(),
            "nginx is not installed ({BINARY}); `apt-get install nginx-light` (.ci/run does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::free_port();
        let prefix = dir.path();
        std::fs::create_dir_all(prefix.join("logs")).expect("logs dir");
        let temp = prefix.join("tmp");
        std::fs::create_dir_all(&temp).expect("tmp dir");
        let conf = format!(
            "worker_processes 1;\n\
             pid {pid};\n\
             error_log {prefix}/logs/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {tmp}/body;\n\
               proxy_temp_path {tmp}/proxy;\n\
               fastcgi_temp_path {tmp}/fastcgi;\n\
               uwsgi_temp_path {tmp}/uwsgi;\n\
               scgi_temp_path {tmp}/scgi;\n\
             {body}\n\
             }}\n",
            pid = prefix.join("nginx.pid").display(),
            prefix = prefix.display(),
            tmp = temp.display(),
            body = http_block.replace("{port}", &port.to_string()),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(BINARY)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Self { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
