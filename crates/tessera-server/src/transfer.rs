//! `tessera export` and `tessera import`: users, live sessions and the live revocation state,
//! moved between stores (the embedded SQLite to PostgreSQL, say) without logging anybody out.
//!
//! The file is JSON lines: a header, then one `user`, `session` or `revocation` object per line,
//! then an `end` line with the counts (so a truncated file is refused). Sessions keep their id,
//! nonce, key id and generation, so every refresh token keeps working where the same
//! `keys.json` is used; revocation entries keep every logged-out or denied access token dead;
//! users keep their id (the `sub` of their tokens), password hash, block and cutoff.
//!
//! The file holds password hashes and the session nonces: it is written with mode 0600 and
//! should be treated like the database itself.

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, BufWriter, IsTerminal as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tessera_core::ids::{SessionId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{ClientInfo, Session};
use tessera_core::Timestamp;
use tessera_store::User;

use crate::state::AppState;

/// The format version this build writes and reads.
const FORMAT: u32 = 1;
/// Users read per page while exporting.
const PAGE: u32 = 500;

/// How many of each kind were moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Users.
    pub users: u64,
    /// Live sessions.
    pub sessions: u64,
    /// Live revocation entries.
    pub revocations: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header {
        tessera_export: u32,
        exported_at: Timestamp,
    },
    User(UserRecord),
    Session(SessionRecord),
    Revocation(RevocationEntry),
    End(Counts),
}

#[derive(Serialize, Deserialize)]
struct UserRecord {
    id: UserId,
    username: String,
    password_hash: Option<String>,
    roles: Vec<String>,
    blocked: bool,
    cutoff: Option<Timestamp>,
    created_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct SessionRecord {
    id: SessionId,
    user_id: UserId,
    /// base64url.
    nonce: String,
    key_id: String,
    generation: u64,
    created_at: Timestamp,
    rotated_at: Timestamp,
    last_used_at: Timestamp,
    idle_expires_at: Timestamp,
    absolute_expires_at: Timestamp,
    client: ClientInfo,
}

impl From<&User> for UserRecord {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            roles: u.roles.clone(),
            blocked: u.blocked,
            cutoff: u.cutoff,
            created_at: u.created_at,
        }
    }
}

impl From<UserRecord> for User {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id,
            username: u.username,
            password_hash: u.password_hash,
            roles: u.roles,
            blocked: u.blocked,
            cutoff: u.cutoff,
            created_at: u.created_at,
        }
    }
}

impl From<&Session> for SessionRecord {
    fn from(s: &Session) -> Self {
        Self {
            id: s.id,
            user_id: s.user_id.clone(),
            nonce: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.nonce),
            key_id: s.key_id.clone(),
            generation: s.generation,
            created_at: s.created_at,
            rotated_at: s.rotated_at,
            last_used_at: s.last_used_at,
            idle_expires_at: s.idle_expires_at,
            absolute_expires_at: s.absolute_expires_at,
            client: s.client.clone(),
        }
    }
}

impl TryFrom<SessionRecord> for Session {
    type Error = anyhow::Error;

    fn try_from(s: SessionRecord) -> anyhow::Result<Self> {
        let nonce: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&s.nonce)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("session {}: the nonce is not 32 bytes of base64url", s.id))?;
        Ok(Session {
            id: s.id,
            user_id: s.user_id,
            nonce,
            key_id: s.key_id,
            generation: s.generation,
            created_at: s.created_at,
            rotated_at: s.rotated_at,
            last_used_at: s.last_used_at,
            idle_expires_at: s.idle_expires_at,
            absolute_expires_at: s.absolute_expires_at,
            revoked: None,
            client: s.client,
        })
    }
}

/// Progress on standard error, when it is a terminal.
struct Progress {
    on: bool,
    verb: &'static str,
}

impl Progress {
    fn new(verb: &'static str) -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
            verb,
        }
    }

    fn show(&self, c: &Counts) {
        if self.on && (c.users + c.sessions + c.revocations).is_multiple_of(1000) {
            eprint!(
                "\r{} {} users, {} sessions, {} revocations…",
                self.verb, c.users, c.sessions, c.revocations
            );
        }
    }

    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

fn write_line(out: &mut impl std::io::Write, line: &Line) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes every user, live session and live revocation entry of `state`'s stores to `path`
/// (created with mode 0600; an existing file is never overwritten). It can run beside servers,
/// but for an exact move stop them first: a session rotated while the export runs is exported
/// at its old generation, so its next refresh on the new store counts as reuse (one log-in again).
/// Sessions ended while it runs are caught by the import (their revocation entries win).
pub async fn export(state: &AppState, path: &Path) -> anyhow::Result<Counts> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("while creating {} (it must not exist)", path.display()))?;
    let mut out = BufWriter::new(file);
    let now = state.now();
    let progress = Progress::new("exported");
    let mut counts = Counts::default();
    write_line(
        &mut out,
        &Line::Header {
            tessera_export: FORMAT,
            exported_at: now,
        },
    )?;
    let mut after: Option<UserId> = None;
    loop {
        let page = state.users.list_users(after.as_ref(), PAGE).await?;
        for user in &page {
            write_line(&mut out, &Line::User(user.into()))?;
            counts.users += 1;
            for session in state.sessions.live_sessions(&user.id, now).await? {
                write_line(&mut out, &Line::Session((&session).into()))?;
                counts.sessions += 1;
                progress.show(&counts);
            }
            progress.show(&counts);
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some(last.id.clone()),
            _ => break,
        }
    }
    let mut cursor = 0;
    loop {
        let batch = state.sessions.revocations_since(cursor, now).await?;
        for entry in batch.entries {
            write_line(&mut out, &Line::Revocation(entry))?;
            counts.revocations += 1;
            progress.show(&counts);
        }
        cursor = batch.cursor;
        if !batch.more {
            break;
        }
    }
    write_line(&mut out, &Line::End(counts))?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    progress.done();
    Ok(counts)
}

/// Reads an export from `path` into `state`'s stores. The file is read whole and checked (format,
/// the counts of its end line, every session's user and refresh key) before anything is written;
/// revocations are written first, then users (with the cutoffs of the log applied), then the
/// sessions the log does not say were ended. Users and sessions already present with the same id
/// are left as they are, so an interrupted import can be run again.
pub async fn import(state: &AppState, path: &Path) -> anyhow::Result<Counts> {
    let file =
        std::fs::File::open(path).with_context(|| format!("while opening {}", path.display()))?;
    let mut lines = Vec::new();
    for (n, text) in BufReader::new(file).lines().enumerate() {
        let text = text.with_context(|| format!("while reading {}", path.display()))?;
        let line: Line = serde_json::from_str(&text)
            .with_context(|| format!("{} line {}: not an export line", path.display(), n + 1))?;
        lines.push(line);
    }
    match lines.first() {
        Some(Line::Header { tessera_export, .. }) if *tessera_export == FORMAT => {}
        Some(Line::Header { tessera_export, .. }) => {
            bail!("export format {tessera_export} is not supported (this build reads {FORMAT})")
        }
        _ => bail!(
            "{} is not a Tessera export (no header line)",
            path.display()
        ),
    }
    let Some(Line::End(expected)) = lines.last() else {
        bail!(
            "{} is truncated (no end line); export again",
            path.display()
        );
    };
    let expected = *expected;
    let mut found = Counts::default();
    for line in &lines {
        match line {
            Line::User(_) => found.users += 1,
            Line::Session(_) => found.sessions += 1,
            Line::Revocation(_) => found.revocations += 1,
            _ => {}
        }
    }
    if found != expected {
        bail!(
            "{} is damaged: its end line says {expected:?}, it holds {found:?}",
            path.display()
        );
    }

    // Sort the file and check what can be checked before writing anything.
    let mut users = Vec::new();
    let mut sessions = Vec::new();
    let mut revocations = Vec::new();
    for line in lines {
        match line {
            Line::User(record) => users.push(User::from(record)),
            Line::Session(record) => sessions.push(Session::try_from(record)?),
            Line::Revocation(entry) => revocations.push(entry),
            Line::Header { .. } | Line::End(_) => {}
        }
    }
    let user_ids: std::collections::HashSet<&UserId> = users.iter().map(|u| &u.id).collect();
    let keys = state.keys();
    for session in &sessions {
        if keys.refresh.get(&session.key_id).is_none() {
            bail!(
                "session {} uses refresh key {:?}, which this deployment's keys.json does not have; copy keys.json from the exporting deployment first",
                session.id, session.key_id
            );
        }
        if !user_ids.contains(&session.user_id) {
            bail!(
                "{} is damaged: session {} belongs to no exported user",
                path.display(),
                session.id
            );
        }
    }
    // A session or cutoff revoked while the export ran is in the log but may also have been
    // read as live: the log wins.
    let mut revoked = std::collections::HashSet::new();
    let mut cutoffs: std::collections::HashMap<&str, Timestamp> = std::collections::HashMap::new();
    for entry in &revocations {
        match entry {
            RevocationEntry::RevokedSession { sid, .. } => {
                revoked.insert(*sid);
            }
            RevocationEntry::UserCutoff { sub, at, .. } => {
                let cutoff = cutoffs.entry(sub.as_str()).or_insert(*at);
                *cutoff = (*cutoff).max(*at);
            }
            RevocationEntry::DeniedToken { .. } => {}
        }
    }

    let now = state.now();
    let keep = state.revocation_keep();
    let progress = Progress::new("imported");
    let mut counts = Counts::default();
    // Revocations first: a run cut short never leaves a live session whose revocation is missing.
    for chunk in revocations.chunks(500) {
        state.sessions.record(chunk, now).await?;
        counts.revocations += chunk.len() as u64;
        progress.show(&counts);
    }
    for mut user in users {
        if let Some(at) = cutoffs.get(user.id.as_str()) {
            user.cutoff = Some(user.cutoff.map_or(*at, |c| c.max(*at)));
        }
        match state.users.user_by_id(&user.id).await? {
            Some(existing) if existing == user => {}
            Some(_) => bail!(
                "the target already has a different user with the id {} ({}); import into an empty store",
                user.id, user.username
            ),
            None => state
                .users
                .import_user(&user, now)
                .await
                .with_context(|| format!("while importing user {}", user.username))?,
        }
        counts.users += 1;
        progress.show(&counts);
    }
    for session in sessions {
        counts.sessions += 1;
        if revoked.contains(&session.id) {
            continue; // ended while the export ran
        }
        if state
            .sessions
            .session_from_source(&session.id)
            .await?
            .is_none()
        {
            state
                .sessions
                .create_session(&session, u32::MAX, keep)
                .await
                .with_context(|| format!("while importing session {}", session.id))?;
        }
        progress.show(&counts);
    }
    progress.done();
    Ok(counts)
}
