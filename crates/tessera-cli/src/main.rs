//! `tessera`: the token service and its admin commands.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use figment::providers::Serialized;
use figment::Figment;
use tessera_core::SystemClock;
use tessera_server::datadir::{Access, DataDir};
use tessera_server::flows::{login, users};
use tessera_server::stores::SqlDatabase;
use tessera_server::{telemetry, Application, Settings};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: log in once, stay logged in safely, log out for real."
)]
struct Cli {
    /// Configuration file (default: ./tessera.toml if present). Also TESSERA_CONFIG.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides TESSERA_DATA_DIR and the file).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on (overrides TESSERA_LISTEN and the file).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply pending database schema migrations (PostgreSQL, MySQL; SQLite migrates itself).
    /// Safe while servers run; needed first when `auto_migrate = false`.
    Migrate,
    /// Manage users (works while the server runs; it sees the change within a second).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check the configuration and every configured store, and say what to fix. Read-only;
    /// exits non-zero when something is wrong.
    Doctor,
    /// Copy the embedded database and the keys into a directory, consistently, while the
    /// server runs.
    Backup {
        /// The backup directory (created; must not hold a backup yet).
        dir: PathBuf,
    },
    /// Put a backup back into the data directory (stop the server first). The files it
    /// replaces are moved into `before-restore-<time>/` in the data directory.
    Restore {
        /// The backup directory.
        dir: PathBuf,
    },
    /// Write every user, live session and revocation to a file (JSON lines, mode 0600), to move
    /// to another store with `tessera import`. Stop the servers first for an exact copy.
    Export {
        /// The file to write (must not exist).
        file: PathBuf,
    },
    /// Read an export into the configured stores (empty ones), keeping every session alive and
    /// every revoked token revoked. Copy keys.json from the exporting deployment first.
    Import {
        /// The export file.
        file: PathBuf,
    },
    /// OAuth 2.0 clients (for /oauth/token, /oauth/revoke, /oauth/introspect).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Signing keys and refresh MAC keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a signing key and a refresh MAC key. They are published at once and take over after
    /// `--after` (default: jwks_max_age + 2 s), so verifiers know a key before it signs; tokens
    /// and sessions of the old keys stay valid until they expire. Works while servers run: they
    /// read the keys every second.
    Rotate {
        /// How long until the new keys take over (e.g. `5m`, `0s` in an emergency).
        #[arg(long, value_parser = humantime::parse_duration)]
        after: Option<std::time::Duration>,
    },
    /// List the keys and their state (current, takes over at, verifying only).
    List,
    /// Remove a key at once (a leaked one): its tokens, or the sessions made with it, stop
    /// working within a second on every instance. Rotate first if it is the current key.
    Remove {
        /// The key id (`tessera keys list`).
        kid: String,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Make a client: prints its `[[clients]]` entry for the configuration on stdout (append it
    /// to tessera.toml and restart) and, for a confidential client, its secret on stderr (shown
    /// once; only its SHA-256 is kept).
    Create {
        /// The client_id.
        id: String,
        /// A public client (a browser or mobile app): no secret.
        #[arg(long, conflicts_with = "introspect")]
        public: bool,
        /// Allow the client to call /oauth/introspect.
        #[arg(long)]
        introspect: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Create {
        /// Username.
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "no_password")]
        password_stdin: bool,
        /// Create the user without a password (they log in through a minted session only).
        #[arg(long)]
        no_password: bool,
        /// A role to give (repeatable), e.g. `--role admin`.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Block a user: no login or refresh, and every live token dies at once.
    Block {
        /// User id or username.
        user: String,
    },
    /// Unblock a user. Tokens from before the block stay dead.
    Unblock {
        /// User id or username.
        user: String,
    },
    /// End every session of a user and kill their access tokens.
    Logout {
        /// User id or username.
        user: String,
    },
    /// Delete a user and everything they hold.
    Delete {
        /// User id or username.
        user: String,
    },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check the configuration and print the effective settings (secrets redacted).
    Check,
}

fn settings(cli: &Cli, listen: Option<SocketAddr>) -> anyhow::Result<Settings> {
    let mut overrides = Figment::new();
    if let Some(dir) = &cli.data_dir {
        overrides = overrides.merge(Serialized::default("data_dir", dir));
    }
    if let Some(listen) = listen {
        overrides = overrides.merge(Serialized::default("listen", listen.to_string()));
    }
    let settings = Settings::load(cli.config.as_deref(), overrides)?;
    Ok(settings)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve { listen } => {
            let settings = settings(&cli, *listen)?;
            telemetry::init(settings.log_format, &settings.log_level);
            for name in Settings::unknown_env_vars() {
                tracing::warn!("ignoring unknown environment variable {name}: no such setting");
            }
            let app = Application::build(settings).await?;
            let state = app.state();
            tracing::info!(
                addr = %app.local_addr(),
                data_dir = %state.settings.data_dir.display(),
                issuer = %state.rules.issuer,
                signing_alg = %state.keys().signing.current().alg(),
                admin_api = state.admin_key_hash.is_some(),
                "tessera is listening"
            );
            app.run_until_stopped().await
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let settings = settings(&cli, None)?;
            settings.admin_key()?;
            println!(
                "{}",
                toml::to_string_pretty(&settings).context("while rendering the settings")?
            );
            println!("# configuration OK");
            Ok(())
        }
        Command::Client {
            command:
                ClientCommand::Create {
                    id,
                    public,
                    introspect,
                },
        } => {
            let settings = settings(&cli, None)?;
            if *id == settings.client_id || settings.clients.iter().any(|c| c.id == *id) {
                anyhow::bail!("the client {id:?} already exists in the configuration");
            }
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                anyhow::bail!("a client id must be 1 to 128 printable characters");
            }
            let secret = (!public).then(tessera_server::clients::new_secret);
            let entry = tessera_server::config::ClientConfig {
                id: id.clone(),
                secret_sha256: secret.as_ref().map(|(_, hash)| hash.clone()),
                introspect: *introspect,
            };
            let table = toml::to_string(&entry).context("while rendering the entry")?;
            // The entry on stdout (`>> tessera.toml` appends it as is); the secret on stderr, so
            // that it never lands in the configuration file by accident.
            println!("[[clients]]\n{table}");
            if let Some((secret, _)) = secret {
                eprintln!("client secret of {id:?} (shown only now; give it to the client):");
                eprintln!("{secret}");
            }
            Ok(())
        }
        Command::Keys { command } => {
            let settings = settings(&cli, None)?;
            telemetry::init(settings.log_format, "warn");
            let now = tessera_core::Clock::now(&SystemClock);
            match command {
                KeysCommand::Rotate { after } => {
                    let done =
                        tessera_server::keyring::rotate_configured(&settings, *after, now).await?;
                    println!(
                        "new signing key {} and refresh key {} take over at {}",
                        done.signing_kid, done.refresh_kid, done.takes_over_at
                    );
                    if !done.removed.is_empty() {
                        println!("removed retired key(s): {}", done.removed.join(", "));
                    }
                }
                KeysCommand::Remove { kid } => {
                    tessera_server::keyring::remove_configured(&settings, kid).await?;
                    println!("removed key {kid}");
                }
                KeysCommand::List => {
                    for line in tessera_server::keyring::describe_configured(&settings, now).await?
                    {
                        println!("{line}");
                    }
                }
            }
            Ok(())
        }
        Command::Backup { dir } => {
            let settings = settings(&cli, None)?;
            telemetry::init(settings.log_format, "warn");
            let done = tessera_server::backup::backup(&settings, dir).await?;
            println!(
                "backed up {} session(s), {} bytes, and the keys into {}",
                done.sessions,
                done.bytes,
                dir.display()
            );
            Ok(())
        }
        Command::Restore { dir } => {
            let settings = settings(&cli, None)?;
            telemetry::init(settings.log_format, "warn");
            let done = tessera_server::backup::restore(&settings, dir).await?;
            println!(
                "restored {} session(s) and the keys from {}",
                done.sessions,
                dir.display()
            );
            if let Some(aside) = done.set_aside {
                println!("the replaced files are in {}", aside.display());
            }
            Ok(())
        }
        Command::Export { file } | Command::Import { file } => {
            let settings = settings(&cli, None)?;
            telemetry::init(settings.log_format, "warn");
            let data_dir = DataDir::open(&settings.data_dir, Access::Shared)?;
            let (state, store) =
                tessera_server::build_state(settings, Arc::new(SystemClock), &data_dir).await?;
            let exporting = matches!(cli.command, Command::Export { .. });
            let result = if exporting {
                tessera_server::transfer::export(&state, file).await
            } else {
                tessera_server::transfer::import(&state, file).await
            };
            store.close().await;
            let c = result?;
            println!(
                "{} {} user(s), {} session(s), {} revocation(s) {} {}",
                if exporting { "exported" } else { "imported" },
                c.users,
                c.sessions,
                c.revocations,
                if exporting { "to" } else { "from" },
                file.display()
            );
            Ok(())
        }
        Command::Doctor => {
            let settings = match settings(&cli, None) {
                Ok(settings) => settings,
                Err(e) => {
                    println!("FAIL  {:<26} {e:#}", "configuration");
                    anyhow::bail!("the configuration is invalid");
                }
            };
            telemetry::init(settings.log_format, "error");
            let report = tessera_server::doctor::run(&settings).await;
            print!("{report}");
            if report.failed() {
                anyhow::bail!("doctor found problems");
            }
            Ok(())
        }
        Command::Migrate => {
            let settings = settings(&cli, None)?;
            telemetry::init(settings.log_format, "warn");
            let data_dir = DataDir::open(&settings.data_dir, Access::Shared)?;
            let database = SqlDatabase::open(&settings, &data_dir, true).await?;
            let applied = database.migrate().await;
            database.close().await;
            match applied?.as_slice() {
                [] => println!("the database schema is up to date"),
                versions => println!("applied migration(s) {versions:?}"),
            }
            Ok(())
        }
        Command::User { command } => {
            let settings = settings(&cli, None)?;
            telemetry::init(settings.log_format, "warn");
            let data_dir = DataDir::open(&settings.data_dir, Access::Shared)?;
            let (state, store) =
                tessera_server::build_state(settings, Arc::new(SystemClock), &data_dir).await?;
            let result = user_command(&state, command).await;
            store.close().await;
            result
        }
    }
}

async fn user_command(
    state: &tessera_server::state::AppState,
    command: &UserCommand,
) -> anyhow::Result<()> {
    let fail = |e: tessera_server::error::ApiError| anyhow::anyhow!("{}", e.code());
    match command {
        UserCommand::Create {
            username,
            password_stdin,
            no_password,
            roles,
        } => {
            let password = match (password_stdin, no_password) {
                (true, _) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("while reading the password")?;
                    Some(line.trim_end_matches(['\r', '\n']).to_owned())
                }
                (false, true) => None,
                (false, false) => anyhow::bail!(
                    "give --password-stdin (one line on standard input) or --no-password"
                ),
            };
            let user = login::create_user(state, username, password, roles.clone())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot create user: {} ({})", e.code(), e.status())
                })?;
            println!("created user {} ({})", user.username, user.id);
        }
        UserCommand::Block { user } => {
            let user = users::resolve(state, user).await.map_err(fail)?;
            let ended = users::block(state, &user).await.map_err(fail)?;
            println!(
                "blocked {} ({}); {ended} session(s) ended",
                user.username, user.id
            );
        }
        UserCommand::Unblock { user } => {
            let user = users::resolve(state, user).await.map_err(fail)?;
            users::unblock(state, &user).await.map_err(fail)?;
            println!("unblocked {} ({})", user.username, user.id);
        }
        UserCommand::Logout { user } => {
            let user = users::resolve(state, user).await.map_err(fail)?;
            let ended = users::force_logout(state, &user).await.map_err(fail)?;
            println!(
                "logged {} out everywhere; {ended} session(s) ended",
                user.username
            );
        }
        UserCommand::Delete { user } => {
            let user = users::resolve(state, user).await.map_err(fail)?;
            users::delete(state, &user).await.map_err(fail)?;
            println!("deleted {} ({})", user.username, user.id);
        }
        UserCommand::List => {
            let mut after = None;
            loop {
                let page = state.users.list_users(after.as_ref(), 500).await?;
                for u in &page {
                    let blocked = if u.blocked { "  blocked" } else { "" };
                    println!("{}  {}{blocked}", u.id, u.username);
                }
                match page.last() {
                    Some(last) if page.len() == 500 => after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
    }
    Ok(())
}
