//! The `keyward` binary: `serve`, `migrate`, `init`, `keys …`, `users …`, `signing-keys …`,
//! `scan`, `mcp` and `config check`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keyward::cli::{KeysCommand, OrgsCommand, print_secrets};
use keyward::config::{Config, LogFormat, Overrides, ServerOverrides};
use keyward_core::clock::{SystemClock, rfc3339};
use keyward_core::member::MemberRole;
use keyward_core::typeid::OrganizationId;
use keyward_delivery::Deliverer;
use keyward_server::AppState;
use keyward_service::credentials::Issued;
use keyward_service::signing::MasterKey;
use keyward_service::{Operator, Service};
use keyward_store::SqlStore;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// mimalloc in place of the system allocator: a request makes a few dozen small
/// allocations, which mimalloc serves from pages of the thread's own (BENCHMARKS.md
/// measures glibc's malloc against it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keyward: self-hosted API credentials.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about)]
struct Cli {
    /// A TOML configuration file
    #[arg(long, env = "KEYWARD_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (on a fresh database, first create an organization, its
    /// bootstrap credential and a dashboard member, and print their secrets once)
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080]
        #[arg(long, env = "KEYWARD_LISTEN")]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        server: ServerOverrides,
    },
    /// Apply pending database migrations and exit
    Migrate,
    /// Create an organization and a bootstrap credential with every scope; print its
    /// secrets once
    Init {
        /// The organization's name
        #[arg(long, default_value = "Default organization")]
        org_name: String,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Manage the keys that sign access tokens
    SigningKeys {
        #[command(subcommand)]
        command: SigningKeysCommand,
    },
    /// Manage credentials directly in the database
    Keys {
        // Boxed: its settings make it much larger than the other commands.
        #[command(subcommand)]
        command: Box<KeysCommand>,
    },
    /// The deployment's organizations
    Orgs {
        #[command(subcommand)]
        command: OrgsCommand,
    },
    /// Manage the organization members who log in to the dashboard
    Users {
        #[command(subcommand)]
        command: keyward::users::UsersCommand,
    },
    /// Find Keyward API keys and client secrets in files, directories (recursively) or
    /// `-` (standard input), by their format and checksum. Exit status: 0 when none is
    /// found, 1 when one is, 2 on an error
    Scan {
        /// Files, directories, or `-` for standard input
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also look each secret up in the database and say whether it still works
        #[arg(long)]
        live: bool,
        /// Instead, ask a running Keyward at this URL (`POST /v1/keys/lookup`) with the API
        /// key in `KEYWARD_API_KEY` (scope `keys:read`): secrets of its organization only
        #[arg(long, value_name = "URL", conflicts_with = "live")]
        server: Option<String>,
        /// Print one JSON array instead of text
        #[arg(long)]
        json: bool,
    },
    /// Serve Keyward's MCP tools on standard input and output, for an AI assistant that
    /// starts them as a local process: each call goes to a running Keyward's `/mcp` as the
    /// credential in `KEYWARD_API_KEY` (or the key file), within its scopes
    Mcp {
        /// The Keyward server
        #[arg(long, env = "KEYWARD_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Read the API key or access token from this file instead of `KEYWARD_API_KEY`
        #[arg(long, env = "KEYWARD_API_KEY_FILE", value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// Configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SigningKeysCommand {
    /// Make a new signing key: published now, signing after `oauth.publish_lead_seconds`;
    /// the current key's private half is erased once the new one signs
    Rotate,
    /// List the published signing keys
    List,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets redacted
    Check {
        #[command(flatten)]
        server: ServerOverrides,
    },
}

/// Runs the command; a failure is one line on standard error (the error and its causes,
/// outermost first) and exit status 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    // `scan` keeps 1 for "a secret was found": its errors are 2.
    let failure = match cli.command {
        Command::Scan { .. } => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    };
    match run_cli(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            failure
        }
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<ExitCode> {
    let (listen, server) = match &cli.command {
        Command::Serve { listen, server } => (*listen, server.clone()),
        Command::Config {
            command: ConfigCommand::Check { server },
        } => (None, server.clone()),
        _ => (None, ServerOverrides::default()),
    };
    let overrides = cli.overrides.clone().with_server(server);
    let config = Config::load(cli.config.as_deref(), &overrides, listen)?;
    // A server logs what it does; a command says what it did on standard output, and its
    // log holds only what went wrong.
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    init_logging(config.log_format, default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command, config))
}

/// Logs to standard error, filtered by `KEYWARD_LOG` (else `default_level`), coloured only
/// on a terminal.
fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let filter =
        EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    // The MCP SDK logs whole requests and results below info, and a tool's result can hold
    // a new key's secrets: its debug and trace events are dropped whatever KEYWARD_LOG says.
    let no_sdk_payloads = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("rmcp") && *meta.level() > tracing::Level::INFO)
    });
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(no_sdk_payloads);
    match format {
        LogFormat::Json => registry.with(output.json()).init(),
        LogFormat::Text => registry.with(output).init(),
    }
}

async fn open_state(config: &Config) -> anyhow::Result<AppState> {
    let mut server = config.server.clone();
    server.service.signing.master_key = master_key(&config.master_key_file)?;
    let store = SqlStore::open(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                keyward::config::redact_url(&config.database_url)
            )
        })?;
    Ok(AppState::new(
        Arc::new(store),
        Arc::new(SystemClock),
        server,
    ))
}

/// The master key: `KEYWARD_MASTER_KEY` (base64), or the file, created with a fresh key
/// (mode 0600) when missing.
fn master_key(path: &std::path::Path) -> anyhow::Result<MasterKey> {
    if let Ok(text) = std::env::var("KEYWARD_MASTER_KEY").map(zeroize::Zeroizing::new) {
        return MasterKey::from_base64(&text).context("KEYWARD_MASTER_KEY");
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let key = MasterKey::generate();
            std::io::Write::write_all(&mut file, key.to_base64().as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing the master key to {}", path.display()))?;
            tracing::info!(path = %path.display(), "created a master key; every node needs the same one");
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the master key from {}", path.display()))?,
            );
            MasterKey::from_base64(&text)
                .with_context(|| format!("the master key in {}", path.display()))
        }
        Err(error) => {
            Err(error).with_context(|| format!("creating the master key file {}", path.display()))
        }
    }
}

/// `keyward scan`: prints what it found (with `live`, whether each secret still works in
/// the database `live` names); exit status 1 when it found a secret, 2 when a path could
/// not be read (what was found is printed all the same).
/// Where `keyward scan` asks whether found secrets still work.
enum Lookup {
    /// It does not ask.
    None,
    /// The database, across organizations.
    Database(Box<AppState>),
    /// A running Keyward, for the organization of the key in `KEYWARD_API_KEY`.
    Server(String),
}

async fn scan(paths: &[PathBuf], lookup: Lookup, json: bool) -> anyhow::Result<ExitCode> {
    let found = keyward::scan::scan(paths);
    let mut rows = Vec::new();
    for finding in &found.findings {
        rows.push(serde_json::to_value(finding)?);
    }
    match &lookup {
        Lookup::None => {}
        Lookup::Database(state) => {
            for (finding, row) in found.findings.iter().zip(rows.iter_mut()) {
                let owner = state
                    .service
                    .credentials()
                    .find_by_secret(&Operator::new(), &finding.secret)
                    .await?;
                row["state"] = owner
                    .as_ref()
                    .map_or("unknown", |owner| owner.state.as_str())
                    .into();
                if let Some(owner) = owner {
                    row["key_id"] = owner.credential.id.to_string().into();
                    row["organization_id"] = owner.credential.organization_id.to_string().into();
                }
            }
        }
        Lookup::Server(url) => {
            let secrets: Vec<&str> = found.findings.iter().map(|f| f.secret.as_str()).collect();
            let results = keyward::scan::look_up(url, &secrets).await?;
            for (row, result) in rows.iter_mut().zip(results) {
                row["state"] = result["state"].clone();
                if result["key_id"].is_string() {
                    row["key_id"] = result["key_id"].clone();
                }
            }
        }
    }
    let asked = !matches!(lookup, Lookup::None);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for row in &rows {
            let field = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
            let mut line = format!(
                "{}:{}: {} {}…{}",
                field("path"),
                row["line"],
                field("kind"),
                field("prefix"),
                field("hint")
            );
            if asked {
                line.push_str(&format!(" {}", field("state")));
                match (row.get("key_id"), row.get("organization_id")) {
                    (Some(_), Some(_)) => line.push_str(&format!(
                        " ({} in {})",
                        field("key_id"),
                        field("organization_id")
                    )),
                    (Some(_), None) => line.push_str(&format!(" ({})", field("key_id"))),
                    _ => {}
                }
            }
            println!("{line}");
        }
    }
    for error in &found.errors {
        eprintln!("Error: {error}");
    }
    Ok(if !found.errors.is_empty() {
        ExitCode::from(2)
    } else if found.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    let done = match command {
        Command::Scan {
            paths,
            live,
            server,
            json,
        } => {
            let lookup = match (server, live) {
                (Some(url), _) => Lookup::Server(url),
                (None, true) => Lookup::Database(Box::new(open_state(&config).await?)),
                (None, false) => Lookup::None,
            };
            return scan(&paths, lookup, json).await;
        }
        Command::Mcp { url, key_file } => {
            keyward::mcp::serve_stdio(&url, key_file.as_deref()).await
        }
        Command::Config {
            command: ConfigCommand::Check { .. },
        } => {
            println!("{}", serde_json::to_string_pretty(&config.redacted())?);
            Ok(())
        }
        Command::Migrate => {
            open_state(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Init { org_name, json } => {
            let state = open_state(&config).await?;
            let (organization, issued) = state
                .service
                .organizations()
                .init(&Operator::new(), &org_name)
                .await?;
            print_bootstrap(&organization.id, &issued, json)
        }
        Command::Serve { .. } => serve(config).await,
        Command::SigningKeys { command } => {
            let state = open_state(&config).await?;
            signing_keys(&state.service, command).await
        }
        Command::Keys { command } => {
            let state = open_state(&config).await?;
            keyward::cli::keys(&state.service, *command).await
        }
        Command::Orgs { command } => {
            let state = open_state(&config).await?;
            keyward::cli::orgs(&state.service, command).await
        }
        Command::Users { command } => {
            let state = open_state(&config).await?;
            keyward::users::users(&state.service, command).await
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    if config.issuer_from_listen {
        let tokens = &mut config.server.engine.tokens;
        tokens.issuer = format!("http://{address}");
        tokens.audience = tokens.issuer.clone();
    }
    let state = open_state(&config).await?;
    let service = &state.service;
    let operator = Operator::new();
    if service.organizations().claim_first_run(&operator).await? {
        let (organization, issued) = service
            .organizations()
            .init(&operator, "Default organization")
            .await?;
        print_bootstrap(&organization.id, &issued, false)?;
        let (member, password) = service
            .members()
            .add(
                &operator,
                &organization.id,
                FIRST_MEMBER_EMAIL,
                Some(MemberRole::Owner),
                None,
            )
            .await?;
        if let Some(password) = password {
            println!("Dashboard: http://{address}/login");
            println!("  Email:    {}", member.email);
            println!("  Password: {}", password.as_str());
            println!(
                "The password is shown only this once; change it with `keyward users passwd`."
            );
        }
    }
    let metrics = match config.server.metrics_listen {
        Some(at) => {
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("listening for /metrics on {at}"))?;
            let bound = listener.local_addr()?;
            println!("Metrics on http://{bound}/metrics");
            Some(listener)
        }
        None => None,
    };
    let shutdown = shutdown_signal()?;
    tracing::info!(%address, "listening on http://{address}");
    println!("Keyward listening on http://{address}");
    let flusher = state.engine.spawn_usage_flusher();
    let key_schedule = service.spawn_key_schedule();
    let notice_scan = service.spawn_notice_scan();
    let deliverer = Deliverer::new(service.clone())
        .context("starting webhook delivery")?
        .spawn();
    keyward_server::serve(listener, metrics, state.clone(), shutdown).await?;
    flusher.stop().await;
    key_schedule.abort();
    notice_scan.abort();
    deliverer.abort();
    if let Err(error) = state.engine.flush_usage().await {
        tracing::warn!(%error, "could not write the last usage records");
    }
    tracing::info!("shut down");
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now, so a signal that arrives as soon as the
/// server says it listens is not lost, and returns a future that completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn signing_keys(service: &Service, command: SigningKeysCommand) -> anyhow::Result<()> {
    match command {
        SigningKeysCommand::Rotate => {
            let key = service
                .tokens()
                .rotate_signing_key(&Operator::new())
                .await?;
            println!(
                "Made signing key {} ({}); published now, signing from {}.",
                key.kid,
                key.algorithm,
                rfc3339(key.activates_at)
            );
        }
        SigningKeysCommand::List => {
            for key in service.tokens().signing_keys(&Operator::new()).await? {
                let private = if key.private_key_sealed {
                    "private key sealed"
                } else {
                    "private key erased"
                };
                let until = key
                    .published_until
                    .map(|t| format!(", published until {}", rfc3339(t)))
                    .unwrap_or_default();
                println!(
                    "{}  {}  signs from {}, {private}{until}",
                    key.kid,
                    key.algorithm,
                    rfc3339(key.activates_at)
                );
            }
        }
    }
    Ok(())
}

/// The login of the member made on first run.
const FIRST_MEMBER_EMAIL: &str = "admin@localhost";

fn print_bootstrap(
    organization_id: &OrganizationId,
    issued: &Issued,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let value = serde_json::json!({
            "organization_id": organization_id,
            "key_id": issued.credential.id,
            "api_key": issued.api_key.expose(),
            "client_id": organization_id,
            "client_secret": issued.client_secret.expose(),
        });
        println!("{value}");
    } else {
        println!(
            "Created organization {organization_id} and its bootstrap credential (every scope)."
        );
        print_secrets(organization_id, issued);
    }
    Ok(())
}
