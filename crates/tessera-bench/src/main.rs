//! `tessera-bench`: drives STATEFUL token flows against a running Tessera and reports throughput
//! and latency. Every virtual user keeps its own state: a refresh chain always presents the newest
//! refresh token, as a real client does.
//!
//! ```text
//! tessera-bench --url http://127.0.0.1:8080 --mode refresh --concurrency 16 --duration 10s
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Log in repeatedly (argon2 bound).
    Login,
    /// Each virtual user logs in once, then refreshes in a chain.
    Refresh,
    /// Each virtual user presents the same access token repeatedly.
    Verify,
    /// A fresh access token for every verification (no remembered signature).
    VerifyFresh,
    /// Log in, then log out (the logout is what is timed).
    Logout,
    /// Mostly verify, some refresh, a few logins (90 / 9 / 1).
    Mixed,
    /// The empty route (`/healthz`): the HTTP ceiling of the same server.
    Empty,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for whole Tessera token flows")]
struct Args {
    /// Base URL of the Tessera under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// What to drive.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Virtual users (concurrent connections).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured duration.
    #[arg(long, default_value = "10s", value_parser = humantime_like)]
    duration: Duration,
    /// Warm-up before measuring (not counted).
    #[arg(long, default_value = "2s", value_parser = humantime_like)]
    warmup: Duration,
    /// Password of the generated users (created in the set-up phase).
    #[arg(long, default_value = "bench password 0123456789")]
    password: String,
    /// Admin API key: `logout` then makes each session with the admin API (no argon2) instead of
    /// a login, so the run measures logout rather than password hashing.
    #[arg(long, env = "TESSERA_ADMIN_API_KEY")]
    admin_key: Option<String>,
    /// `logout`: sessions each virtual user makes before the run (with the admin API key), so
    /// that the measured loop is the logout alone (a user whose pool runs out makes one session
    /// per logout again).
    #[arg(long, default_value_t = 0)]
    pool: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Exit non-zero if any answer was not 2xx or any request failed (for smoke runs in CI).
    #[arg(long)]
    fail_on_error: bool,
}

fn humantime_like(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(60 * n)),
        _ => Err(format!("bad duration unit in {text:?} (ms, s, m)")),
    }
}

/// One virtual user's state.
struct Vu {
    username: String,
    access: String,
    refresh: String,
    /// Access tokens of sessions made before the run, for `logout --pool`.
    pool: Vec<String>,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    /// `logout --pool`: measured logouts whose session had to be made during the run.
    sessions_made_in_run: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    mode: Mode,
    concurrency: usize,
    seconds: f64,
    ops: u64,
    ops_per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    /// `logout --pool`: measured logouts whose session had to be made during the run (the pool
    /// was too small for the run: the rate then includes making sessions).
    sessions_made_in_run: u64,
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    bearer: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = client.post(url).json(body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<(u16, Value)> {
    post(
        client,
        &format!("{base}/v1/auth/login"),
        &json!({ "username": username, "password": password }),
        None,
    )
    .await
}

async fn set_up(client: &reqwest::Client, args: &Args, run: &str) -> anyhow::Result<Vec<Vu>> {
    let mut vus = Vec::new();
    for i in 0..args.concurrency {
        let username = format!("bench-{run}-{i}");
        let (status, body) = post(
            client,
            &format!("{}/v1/users", args.url),
            &json!({ "username": username, "password": args.password }),
            None,
        )
        .await?;
        if status != 201 {
            bail!("sign-up of {username} answered {status}: {body} (is sign-up open?)");
        }
        let (status, body) = login(client, &args.url, &username, &args.password).await?;
        if status != 200 {
            bail!("login of {username} answered {status}: {body}");
        }
        vus.push(Vu {
            username,
            access: body["access_token"]
                .as_str()
                .context("access_token")?
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .context("refresh_token")?
                .to_owned(),
            pool: Vec::new(),
        });
    }
    Ok(vus)
}

/// One operation of `mode` for this virtual user; returns the HTTP status and the time of the
/// request that is measured (for `logout`, the logout alone, not the login that precedes it).
async fn step(
    client: &reqwest::Client,
    args: &Args,
    vu: &mut Vu,
    mode: Mode,
    n: u64,
) -> anyhow::Result<(u16, Duration)> {
    if let Mode::Logout = mode {
        let access = match vu.pool.pop() {
            Some(access) => access,
            None => {
                let (status, body) = new_session(client, args, vu).await?;
                if status != 200 {
                    return Ok((status, Duration::ZERO));
                }
                body["access_token"].as_str().unwrap_or_default().to_owned()
            }
        };
        let began = Instant::now();
        let status = post(
            client,
            &format!("{}/v1/auth/logout", args.url),
            &json!({}),
            Some(&access),
        )
        .await?
        .0;
        return Ok((status, began.elapsed()));
    }
    let began = Instant::now();
    let status = timed_step(client, args, vu, mode, n).await?;
    Ok((status, began.elapsed()))
}

/// A new session of this virtual user: by the admin API when its key is given (no argon2), else
/// by a login.
async fn new_session(
    client: &reqwest::Client,
    args: &Args,
    vu: &Vu,
) -> anyhow::Result<(u16, Value)> {
    match &args.admin_key {
        Some(key) => {
            let url = format!("{}/v1/admin/sessions", args.url);
            post(client, &url, &json!({ "user": vu.username }), Some(key)).await
        }
        None => login(client, &args.url, &vu.username, &args.password).await,
    }
}

/// Sessions of one pool user: below Tessera's default cap on live sessions per user (100), so
/// no pool session is ended by the cap before its logout.
const POOL_SESSIONS_PER_USER: usize = 50;

/// Fills each virtual user's pool of sessions for `logout --pool` (all users at once). Needs the
/// admin API key: the sessions are minted for password-less users made on the way.
async fn fill_pools(
    client: &reqwest::Client,
    args: &Arc<Args>,
    vus: Vec<Vu>,
) -> anyhow::Result<Vec<Vu>> {
    let mut tasks = Vec::new();
    for mut vu in vus {
        let (client, args) = (client.clone(), Arc::clone(args));
        tasks.push(tokio::spawn(async move {
            let key = args
                .admin_key
                .as_deref()
                .context("--pool needs the admin API key (--admin-key)")?;
            let url = format!("{}/v1/admin/sessions", args.url);
            while vu.pool.len() < args.pool {
                let user = format!(
                    "{}-p{}",
                    vu.username,
                    vu.pool.len() / POOL_SESSIONS_PER_USER
                );
                let (status, body) = post(
                    &client,
                    &url,
                    &json!({ "user": user, "create": true }),
                    Some(key),
                )
                .await?;
                if status != 200 {
                    bail!("making a session for the pool answered {status}: {body}");
                }
                let access = body["access_token"]
                    .as_str()
                    .context("access_token")?
                    .to_owned();
                vu.pool.push(access);
            }
            Ok(vu)
        }));
    }
    let mut filled = Vec::new();
    for task in tasks {
        filled.push(task.await??);
    }
    Ok(filled)
}

async fn timed_step(
    client: &reqwest::Client,
    args: &Args,
    vu: &mut Vu,
    mode: Mode,
    n: u64,
) -> anyhow::Result<u16> {
    let base = &args.url;
    match mode {
        Mode::Empty => Ok(client
            .get(format!("{base}/healthz"))
            .send()
            .await?
            .status()
            .as_u16()),
        Mode::Verify => Ok(client
            .get(format!("{base}/v1/auth/verify"))
            .bearer_auth(&vu.access)
            .send()
            .await?
            .status()
            .as_u16()),
        Mode::VerifyFresh => {
            // Not timed separately: the refresh that makes the fresh token is part of the step.
            let status = Box::pin(timed_step(client, args, vu, Mode::Refresh, n)).await?;
            if status != 200 {
                return Ok(status);
            }
            Ok(client
                .get(format!("{base}/v1/auth/verify"))
                .bearer_auth(&vu.access)
                .send()
                .await?
                .status()
                .as_u16())
        }
        Mode::Refresh => {
            let (status, body) = post(
                client,
                &format!("{base}/v1/auth/refresh"),
                &json!({ "refresh_token": vu.refresh }),
                None,
            )
            .await?;
            if status == 200 {
                vu.refresh = body["refresh_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                vu.access = body["access_token"].as_str().unwrap_or_default().to_owned();
            }
            Ok(status)
        }
        Mode::Login => Ok(login(client, base, &vu.username, &args.password).await?.0),
        // Timed in `step`, without the session set-up; here as a whole, for completeness.
        Mode::Logout => Ok(Box::pin(step(client, args, vu, Mode::Logout, n)).await?.0),
        Mode::Mixed => match n % 100 {
            0 => Box::pin(timed_step(client, args, vu, Mode::Login, n)).await,
            1..=9 => Box::pin(timed_step(client, args, vu, Mode::Refresh, n)).await,
            _ => Box::pin(timed_step(client, args, vu, Mode::Verify, n)).await,
        },
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros()
    );
    let mut vus = set_up(&client, &args, &run).await?;
    if matches!(args.mode, Mode::Logout) && args.pool > 0 {
        vus = fill_pools(&client, &args, vus).await?;
    }

    let start = Instant::now();
    let measure_from = start + args.warmup;
    let stop_at = measure_from + args.duration;
    let mut tasks = Vec::new();
    for mut vu in vus {
        let (client, args) = (client.clone(), Arc::clone(&args));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = 0u64;
            loop {
                let began = Instant::now();
                if began >= stop_at {
                    break;
                }
                let pool_empty = vu.pool.is_empty();
                let result = step(&client, &args, &mut vu, args.mode, n).await;
                n += 1;
                if began < measure_from {
                    continue;
                }
                if matches!(args.mode, Mode::Logout) && args.pool > 0 && pool_empty {
                    tally.sessions_made_in_run += 1;
                }
                match result {
                    Ok((status, took)) => {
                        *tally.statuses.entry(status).or_default() += 1;
                        tally
                            .latencies_us
                            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                    }
                    Err(_) => tally.transport_errors += 1,
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await?;
        all.latencies_us.extend(t.latencies_us);
        for (status, count) in t.statuses {
            *all.statuses.entry(status).or_default() += count;
        }
        all.transport_errors += t.transport_errors;
        all.sessions_made_in_run += t.sessions_made_in_run;
    }
    all.latencies_us.sort_unstable();
    let seconds = args.duration.as_secs_f64();
    let ops = all.latencies_us.len() as u64;
    let report = Report {
        mode: args.mode,
        concurrency: args.concurrency,
        seconds,
        ops,
        ops_per_sec: ops as f64 / seconds,
        p50_ms: percentile(&all.latencies_us, 0.50),
        p90_ms: percentile(&all.latencies_us, 0.90),
        p99_ms: percentile(&all.latencies_us, 0.99),
        max_ms: percentile(&all.latencies_us, 1.0),
        statuses: all.statuses,
        transport_errors: all.transport_errors,
        sessions_made_in_run: all.sessions_made_in_run,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{:?} c={} {:.0} ops/s  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  statuses {:?}  transport errors {}",
            report.mode, report.concurrency, report.ops_per_sec, report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms,
            report.statuses, report.transport_errors
        );
        if report.sessions_made_in_run > 0 {
            println!(
                "{} logouts made their session during the run: raise --pool",
                report.sessions_made_in_run
            );
        }
    }
    let failures: u64 = report
        .statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    if args.fail_on_error && (failures > 0 || report.transport_errors > 0 || report.ops == 0) {
        bail!(
            "{failures} non-2xx answers, {} transport errors, {} operations",
            report.transport_errors,
            report.ops
        );
    }
    Ok(())
}
