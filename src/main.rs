//! The `oxbadge` command: parse the CLI, init telemetry, load settings, build the app, run.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use oxbadge::{
    App,
    config::{Overrides, Settings},
    db,
    oauth::{ScopeSet, tokens},
    telemetry,
};
use secrecy::ExposeSecret;

#[derive(Parser)]
#[command(
    name = "oxbadge",
    version,
    about = "Open Badges 3.0 issuer and verifier service"
)]
struct Cli {
    /// Settings file (TOML). Default: ./oxbadge.toml when it exists. Env: OXBADGE_CONFIG.
    #[arg(long, global = true, env = "OXBADGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; shared by every command that touches the database.
#[derive(Args)]
struct StorageArgs {
    /// Data directory (SQLite file, development KEK). Env: OXBADGE_DATA_DIR. Default ./data.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…). Env: DATABASE_URL.
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Inspect and manage issuer signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Apply, roll back or inspect database migrations.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Print the OpenAPI document (regenerate openapi/openapi.json with `oxbadge openapi > openapi/openapi.json`).
    Openapi,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port). Env: OXBADGE_LISTEN. Default 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Externally visible base URL. Env: OXBADGE_PUBLIC_URL.
    #[arg(long)]
    public_url: Option<url::Url>,
    /// PEM certificate chain for HTTPS. Env: OXBADGE_TLS_CERT.
    #[arg(long, requires = "tls_key", conflicts_with = "dev_tls")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS. Env: OXBADGE_TLS_KEY.
    #[arg(long, requires = "tls_cert", conflicts_with = "dev_tls")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a generated self-signed certificate for localhost (development only).
    #[arg(long)]
    dev_tls: bool,
    /// Do not apply pending migrations at start-up (start fails if any are pending).
    #[arg(long)]
    no_migrate: bool,
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Create a client-credentials client and print its id and secret (shown once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Space-separated scopes, e.g. "issuers:read credentials:issue".
        #[arg(long)]
        scopes: String,
        /// Print one JSON object {"client_id", "client_secret", "scopes"} on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List signing keys (public parts and states) of every issuer, or of one.
    List {
        /// Only this issuer (CUID).
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Rotate an issuer's signing key now.
    Rotate {
        /// Issuer id (CUID).
        #[arg(long)]
        issuer: String,
    },
    /// Re-encrypt every private key under the active KEK (after adding a new KEK and making it
    /// active); the old KEK can be removed afterwards.
    Rewrap,
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// Apply pending migrations (all, or the next N).
    Up {
        #[arg(short = 'n', long)]
        steps: Option<u32>,
    },
    /// Roll back applied migrations (the last one, or the last N).
    Down {
        #[arg(short = 'n', long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
    /// Drop every table and re-apply all migrations (destroys all data).
    Fresh,
}

fn storage_overrides(storage: &StorageArgs) -> Overrides {
    Overrides {
        data_dir: storage.data_dir.clone(),
        database_url: storage.database_url.clone(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Openapi) {
        print!("{}", oxbadge::http::openapi_json());
        return ExitCode::SUCCESS;
    }
    let mut overrides = storage_overrides(&cli.storage);
    if let Command::Serve(args) = &cli.command {
        overrides.listen = args.listen;
        overrides.public_url = args.public_url.clone();
        overrides.tls_cert = args.tls_cert.clone();
        overrides.tls_key = args.tls_key.clone();
        overrides.dev_tls = args.dev_tls;
        overrides.no_migrate = args.no_migrate;
    }
    let settings = match Settings::load(cli.config.as_deref(), overrides) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("oxbadge: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format, &settings.log);
    let result = match cli.command {
        Command::Serve(_) => serve(settings).await,
        Command::Clients(ClientsCommand::Create { name, scopes, json }) => {
            create_client(&settings, &name, &scopes, json).await
        }
        Command::Keys(cmd) => keys(&settings, cmd).await,
        Command::Migrate(cmd) => migrate(&settings, cmd).await,
        Command::Openapi => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "fatal");
            eprintln!("oxbadge: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let mut app = App::build(settings).await?;
    if let Some(admin) = app.take_bootstrap_admin() {
        // Printed straight to stdout, once, and never through the logger.
        println!(
            "=== oxbadge: first start, created the admin client (the secret is shown only now) ==="
        );
        println!("client_id:     {}", admin.client_id);
        println!("client_secret: {}", admin.client_secret.expose_secret());
        println!("scopes:        {}", admin.scopes);
        println!(
            "get a token:   curl -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials {}oauth/token",
            app.state().public_url()
        );
    }
    println!(
        "oxbadge listening on {} (public URL {})",
        app.local_addr(),
        app.state().public_url()
    );
    tracing::info!(addr = %app.local_addr(), public_url = %app.state().public_url(), "listening");
    app.run().await?;
    Ok(())
}

async fn create_client(
    settings: &Settings,
    name: &str,
    scopes: &str,
    json: bool,
) -> anyhow::Result<()> {
    let scopes = ScopeSet::parse(scopes)?;
    if scopes.is_empty() {
        anyhow::bail!("--scopes must name at least one scope");
    }
    let conn = db::connect(&settings.effective_database_url(), 2).await?;
    db::migrate_up(&conn).await?;
    let client = tokens::create_client(&conn, name, scopes).await?;
    if json {
        let scopes: Vec<&str> = client.scopes.iter().map(|s| s.as_str()).collect();
        println!(
            "{}",
            serde_json::json!({
                "client_id": client.client_id,
                "client_secret": client.client_secret.expose_secret(),
                "scopes": scopes,
            })
        );
    } else {
        println!("client_id:     {}", client.client_id);
        println!("client_secret: {}", client.client_secret.expose_secret());
        println!("scopes:        {}", client.scopes);
    }
    conn.close().await?;
    Ok(())
}

async fn keys(settings: &Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    use oxbadge::{
        issuers,
        keys::{ring::load_kek_ring, store::KeyStore},
    };
    let conn = db::connect(&settings.effective_database_url(), 2).await?;
    db::migrate_up(&conn).await?;
    let (ring, _) = load_kek_ring(settings)?;
    let store = KeyStore::new(ring);
    match cmd {
        KeysCommand::List { issuer } => {
            let list = match issuer {
                Some(id) => vec![issuers::find_issuer(&conn, &id).await?],
                None => issuers::list_issuers(&conn, u64::MAX >> 1, 0).await?.0,
            };
            println!("issuer\tkey\tstate\tkek\tcreated\tpublic key");
            for issuer in list {
                for key in KeyStore::list_keys(&conn, &issuer.id).await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        issuer.id,
                        key.id,
                        key.state,
                        key.kek_id,
                        key.created_at.to_rfc3339(),
                        key.public_key
                    );
                }
            }
        }
        KeysCommand::Rotate { issuer } => {
            store.verify_keks(&conn).await?;
            let issuer = issuers::find_issuer(&conn, &issuer).await?;
            let outcome = store.rotate(&conn, &issuer, "cli", None).await?;
            println!("{outcome:?}");
        }
        KeysCommand::Rewrap => {
            store.verify_keks(&conn).await?;
            let count = store.rewrap_all(&conn, "cli").await?;
            println!(
                "re-wrapped {count} key(s) under KEK `{}`",
                store.ring().active().id()
            );
        }
    }
    conn.close().await?;
    Ok(())
}

async fn migrate(settings: &Settings, cmd: MigrateCommand) -> anyhow::Result<()> {
    let conn = db::connect(&settings.effective_database_url(), 2).await?;
    match cmd {
        MigrateCommand::Up { steps } => Migrator::up(&conn, steps).await?,
        MigrateCommand::Down { steps } => Migrator::down(&conn, Some(steps)).await?,
        MigrateCommand::Fresh => Migrator::fresh(&conn).await?,
        MigrateCommand::Status => {}
    }
    for m in Migrator::get_migration_with_status(&conn).await? {
        println!("{:?}\t{}", m.status(), m.name());
    }
    conn.close().await?;
    Ok(())
}
