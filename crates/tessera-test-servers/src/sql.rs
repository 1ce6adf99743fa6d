//! A private PostgreSQL schema or MySQL/MariaDB database per test, on the local servers
//! (`TESSERA_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`;
//! `TESSERA_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`), created with the
//! servers' own command-line clients and dropped with everything in it when the guard is
//! dropped. A server that cannot be reached makes the test FAIL.

use std::process::Command;

/// The local PostgreSQL the suites use.
pub fn pg_url() -> String {
    std::env::var("TESSERA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The local MySQL/MariaDB the suites use.
pub fn mysql_url() -> String {
    std::env::var("TESSERA_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn unique_name() -> String {
    let mut bytes = [0u8; 8];
    getrandom(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("tessera_t{hex}")
}

/// Random bytes from the kernel, without a dependency for it.
fn getrandom(buf: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("reading /dev/urandom");
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A fresh schema in the test database of the local PostgreSQL, dropped (cascading) on drop.
#[derive(Debug)]
pub struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    /// Creates the schema; panics (failing the test) if PostgreSQL cannot be reached.
    pub fn create() -> Self {
        let base = pg_url();
        let name = unique_name();
        if let Err(e) = run("psql", &[&base, "-qc", &format!("create schema {name}")]) {
            panic!("PostgreSQL is needed for this test and could not be used: {e}");
        }
        Self { base, name }
    }

    /// A URL whose connections use this schema (`search_path`).
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.base, self.name)
    }

    /// Runs SQL in this schema with `psql` and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let sql = format!("set search_path = {}; {sql}", self.name);
        run("psql", &[&self.base, "-qAtc", &sql])
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = run(
            "psql",
            &[
                &self.base,
                "-qc",
                &format!("drop schema if exists {} cascade", self.name),
            ],
        );
    }
}

/// A fresh database on the local MySQL/MariaDB, dropped on drop.
#[derive(Debug)]
pub struct MySqlDatabase {
    base: String,
    name: String,
}

/// `mysql://user[:password]@host[:port]/db` → the client's connection arguments.
fn mysql_args(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (auth, hostpart) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let host_port = hostpart.split('/').next().unwrap_or("127.0.0.1");
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "3306"));
    let mut args = vec![
        "-h".to_owned(),
        host.to_owned(),
        "-P".to_owned(),
        port.to_owned(),
        "-u".to_owned(),
        user.to_owned(),
    ];
    if !password.is_empty() {
        args.push(format!("-p{password}"));
    }
    args
}

impl MySqlDatabase {
    /// Creates the database; panics (failing the test) if MySQL/MariaDB cannot be reached.
    pub fn create() -> Self {
        let base = mysql_url();
        let name = unique_name();
        let db = Self { base, name };
        if let Err(e) = db.client(None, &format!("create database {}", db.name)) {
            panic!("MySQL/MariaDB is needed for this test and could not be used: {e}");
        }
        db
    }

    /// A URL of this database.
    pub fn url(&self) -> String {
        let (server, _) = self.base.rsplit_once('/').unwrap_or((&self.base, ""));
        format!("{server}/{}", self.name)
    }

    /// Runs SQL in this database with the `mariadb` client and returns its output.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        self.client(Some(&self.name), sql)
    }

    fn client(&self, db: Option<&str>, sql: &str) -> Result<String, String> {
        let mut args = mysql_args(&self.base);
        args.extend([
            "-N".to_owned(),
            "-B".to_owned(),
            "-e".to_owned(),
            sql.to_owned(),
        ]);
        if let Some(db) = db {
            args.push(db.to_owned());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run("mariadb", &refs)
    }
}

impl Drop for MySqlDatabase {
    fn drop(&mut self) {
        let _ = self.client(None, &format!("drop database if exists {}", self.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_urls_become_client_arguments() {
        assert_eq!(
            mysql_args("mysql://root@127.0.0.1:3306/test"),
            ["-h", "127.0.0.1", "-P", "3306", "-u", "root"]
        );
        assert_eq!(
            mysql_args("mysql://u:pw@db:3307/x"),
            ["-h", "db", "-P", "3307", "-u", "u", "-ppw"]
        );
    }
}
