//! The `oxbadge` command: parse the CLI, init telemetry, load settings, build the app, run.

mod cli;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use oxbadge::{
    App,
    config::{Overrides, Settings},
    db, telemetry,
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
    Clients(cli::clients::ClientsCommand),
    /// Manage people: create, list, disable, enable, send a password-reset link.
    #[command(subcommand)]
    Users(cli::users::UsersCommand),
    /// Connect other OB 3.0 hosts, import from them, push to them.
    #[command(subcommand)]
    Hosts(cli::hosts::HostsCommand),
    /// Inspect and manage issuer signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Apply, roll back or inspect database migrations.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Issue one achievement to every recipient of a CSV file (columns: `email` or `id`, optional
    /// `validUntil`), printing one JSON line per credential to stdout and progress to stderr.
    Issue(IssueArgs),
    /// Create demo data (an issuer, two achievements, a few credentials) and print how to use it.
    Seed {
        /// Required: this command writes demo data.
        #[arg(long)]
        demo: bool,
    },
    /// Print the OpenAPI document (regenerate openapi/openapi.json with `oxbadge openapi > openapi/openapi.json`).
    Openapi,
    /// Back up, restore, check or inspect the database.
    #[command(subcommand)]
    Db(cli::db::DbCommand),
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

#[derive(Args)]
struct IssueArgs {
    /// CSV file with a header row.
    #[arg(long)]
    csv: PathBuf,
    /// Achievement id (CUID).
    #[arg(long)]
    achievement: String,
    /// `data-integrity` (default) or `jwt`.
    #[arg(long, default_value = "data-integrity")]
    format: String,
    /// With `--format jwt`: `EdDSA` (default) or `ES256` (the issuer's P-256 key, created on
    /// first use).
    #[arg(long)]
    jwt_algorithm: Option<String>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List signing keys (public parts and states) of every issuer, or of one.
    List {
        /// Only this issuer (CUID).
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Rotate an issuer's signing key of one algorithm now (creates the first P-256 key of an
    /// issuer that has none).
    Rotate {
        /// Issuer id (CUID).
        #[arg(long)]
        issuer: String,
        /// `Ed25519` (Data Integrity and EdDSA JWTs) or `P-256` (ES256 JWTs).
        #[arg(long, default_value = "Ed25519")]
        algorithm: String,
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
    let _telemetry = telemetry::init_with_export(
        settings.log_format,
        &settings.log,
        settings.otlp_endpoint.as_deref(),
    );
    let result = match cli.command {
        Command::Serve(_) => serve(settings).await,
        Command::Clients(cmd) => cli::clients::run(&settings, cmd).await,
        Command::Keys(cmd) => keys(&settings, cmd).await,
        Command::Users(cmd) => match cli_state(settings).await {
            Ok(state) => {
                let result = cli::users::run(&state, cmd).await;
                let _ = state.db().close_by_ref().await;
                result
            }
            Err(err) => Err(err),
        },
        Command::Hosts(cmd) => match cli_state(settings).await {
            Ok(state) => {
                let result = cli::hosts::run(&state, cmd).await;
                let _ = state.db().close_by_ref().await;
                result
            }
            Err(err) => Err(err),
        },
        Command::Issue(args) => issue_csv(settings, args).await,
        Command::Seed { demo } => {
            if demo {
                seed_demo(settings).await
            } else {
                Err(anyhow::anyhow!("use `oxbadge seed --demo`"))
            }
        }
        Command::Migrate(cmd) => migrate(&settings, cmd).await,
        Command::Openapi => Ok(()),
        Command::Db(cmd) => cli::db::run(&settings, cmd).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "fatal");
            eprintln!("oxbadge: {err}");
            exit_code_for(&err)
        }
    }
}

/// 2 when the database does not match this build (an edited or unknown applied migration): a
/// refusal that no restart fixes; 1 for every other failure.
fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    let mismatch = err.chain().any(|cause| {
        cause
            .downcast_ref::<oxbadge::app::StartupError>()
            .is_some_and(|e| e.is_schema_mismatch())
            || matches!(
                cause.downcast_ref::<migration::ChecksumError>(),
                Some(
                    migration::ChecksumError::Edited { .. }
                        | migration::ChecksumError::Unknown { .. }
                )
            )
    });
    if mismatch {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
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
            println!("issuer\tkey\talgorithm\tstate\tkek\tcreated\tpublic key");
            for issuer in list {
                for key in KeyStore::list_keys(&conn, &issuer.id).await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        issuer.id,
                        key.id,
                        key.algorithm,
                        key.state,
                        key.kek_id,
                        key.created_at.to_rfc3339(),
                        key.public_key
                    );
                }
            }
        }
        KeysCommand::Rotate { issuer, algorithm } => {
            let algorithm: oxbadge::keys::store::KeyAlgorithm = algorithm
                .parse()
                .map_err(|e| anyhow::anyhow!("--algorithm: {e}"))?;
            store.verify_keks(&conn).await?;
            let issuer = issuers::find_issuer(&conn, &issuer).await?;
            let outcome = store.rotate(&conn, &issuer, algorithm, "cli", None).await?;
            // Running servers on PostgreSQL drop their cached key at once (others within
            // cache_revalidate_ms).
            if let Err(err) = oxbadge::invalidation::announce(
                &conn,
                &oxbadge::invalidation::Change::Issuer(issuer.id.clone()),
            )
            .await
            {
                tracing::warn!(error = %err, "could not announce the rotation");
            }
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
        MigrateCommand::Up { steps } => migration::checksums::up(&conn, steps).await?,
        MigrateCommand::Down { steps } => migration::checksums::down(&conn, Some(steps)).await?,
        MigrateCommand::Fresh => {
            Migrator::fresh(&conn).await?;
            migration::checksums::record(&conn).await?;
        }
        MigrateCommand::Status => {
            migration::checksums::verify(&conn).await?;
        }
    }
    for m in Migrator::get_migration_with_status(&conn).await? {
        println!("{:?}\t{}", m.status(), m.name());
    }
    conn.close().await?;
    Ok(())
}

/// The state the CLI works with: the same database and KEKs as `serve`, no listener.
async fn cli_state(settings: Settings) -> anyhow::Result<oxbadge::AppState> {
    let bound = settings.listen;
    let (state, admin) = oxbadge::AppState::open(settings, bound).await?;
    if let Some(admin) = admin {
        println!("created the first admin client (shown once):");
        println!("client_id:     {}", admin.client_id);
        println!("client_secret: {}", admin.client_secret.expose_secret());
    }
    Ok(state)
}

async fn issue_csv(settings: Settings, args: IssueArgs) -> anyhow::Result<()> {
    use oxbadge::issue::{self, ProofFormat};
    use std::io::Write;
    let jwt_algorithm = args
        .jwt_algorithm
        .as_deref()
        .map(|a| a.parse::<issue::JwtAlgorithm>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("--jwt-algorithm: {e}"))?;
    let format = match (args.format.as_str(), jwt_algorithm) {
        ("jwt", algorithm) => ProofFormat::Jwt(algorithm.unwrap_or_default()),
        ("data-integrity", None) => ProofFormat::DataIntegrity,
        ("data-integrity", Some(_)) => {
            anyhow::bail!("--jwt-algorithm applies only to --format jwt")
        }
        (other, _) => anyhow::bail!("--format {other}: use data-integrity or jwt"),
    };
    let state = cli_state(settings).await?;
    let rows = issue::recipients_csv::read(std::fs::File::open(&args.csv)?)?;
    let total = rows.len();
    let (mut issued, mut failed) = (0usize, 0usize);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut done = 0usize;
    for chunk in rows.chunks(500) {
        let mut awards = Vec::new();
        for row in chunk {
            match row {
                Ok(a) => awards.push(a.clone()),
                Err(e) => {
                    failed += 1;
                    writeln!(out, "{}", serde_json::json!({"error": e}))?;
                }
            }
        }
        if !awards.is_empty() {
            for r in issue::issue(&state, &args.achievement, awards, format, "cli").await? {
                match r {
                    Ok(i) => {
                        issued += 1;
                        let line = match i.jwt {
                            Some(jwt) => serde_json::json!({"id": i.id, "jwt": jwt}),
                            None => serde_json::json!({"id": i.id, "credential": i.credential}),
                        };
                        writeln!(out, "{line}")?;
                    }
                    Err(e) => {
                        failed += 1;
                        writeln!(out, "{}", serde_json::json!({"error": e.to_string()}))?;
                    }
                }
            }
        }
        done += chunk.len();
        let width = 40;
        let filled = done * width / total.max(1);
        eprint!(
            "\r[{}{}] {done}/{total}",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
    }
    eprintln!("\nissued {issued}, failed {failed}");
    state.db().close_by_ref().await?;
    if failed > 0 && issued == 0 {
        anyhow::bail!("nothing was issued");
    }
    Ok(())
}

async fn seed_demo(settings: Settings) -> anyhow::Result<()> {
    use oxbadge::{
        issue::{self, Award, ProofFormat},
        issuers::{self, NewIssuer, ProfileFields},
        keys::identity::IdType,
        ob::{self, Recipient},
    };
    let state = cli_state(settings).await?;
    let base = state.public_url().as_str().trim_end_matches('/').to_owned();
    let (issuer, _) = issuers::create_issuer(
        state.db(),
        state.keys(),
        state.public_url(),
        NewIssuer {
            profile: ProfileFields {
                name: "Demo University".into(),
                url: Some("https://demo.example.edu".into()),
                email: Some("badges@demo.example.edu".into()),
                description: Some("A demo issuer created by `oxbadge seed --demo`.".into()),
                image: None,
            },
            id_type: IdType::DidWeb,
            well_known: false,
        },
        "cli",
    )
    .await?;
    let definition =
        |name: &str, description: &str, narrative: &str, kind: &str| ob::AchievementDefinition {
            name: name.into(),
            description: description.into(),
            criteria: ob::Criteria {
                id: None,
                narrative: Some(narrative.into()),
            },
            image: None,
            achievement_type: Some(kind.into()),
            tag: vec!["demo".into()],
            alignment: vec![],
            human_code: None,
            field_of_study: None,
            version: None,
            credits_available: None,
        };
    let teamwork = issue::create_achievement(
        &state,
        &issuer.id,
        definition(
            "Teamwork",
            "Collaborates effectively in a team.",
            "Complete a group project with a passing peer review.",
            "Badge",
        ),
        "cli",
    )
    .await?;
    let rust = issue::create_achievement(
        &state,
        &issuer.id,
        definition(
            "Rust Fundamentals",
            "Writes safe, idiomatic Rust.",
            "Pass the final assessment with 80% or more.",
            "Certificate",
        ),
        "cli",
    )
    .await?;
    let award = |r: Recipient| Award {
        recipient: r,
        results: vec![],
        evidence: vec![],
        valid_until: None,
    };
    let mut ids = Vec::new();
    for r in issue::issue(
        &state,
        &teamwork.id,
        vec![
            award(Recipient::Email("ada@example.com".into())),
            award(Recipient::Email("grace@example.com".into())),
        ],
        ProofFormat::DataIntegrity,
        "cli",
    )
    .await?
    {
        ids.push(r?.id);
    }
    for r in issue::issue(
        &state,
        &rust.id,
        vec![award(Recipient::Id("did:example:learner-42".into()))],
        ProofFormat::Jwt(issue::JwtAlgorithm::EdDsa),
        "cli",
    )
    .await?
    {
        ids.push(r?.id);
    }
    let reader = oxbadge::oauth::tokens::create_client(
        state.db(),
        "demo reader",
        [
            oxbadge::oauth::Scope::CredentialsRead,
            oxbadge::oauth::Scope::IssuersRead,
        ]
        .into_iter()
        .collect(),
    )
    .await?;
    println!(
        "Demo data created (public URL {base}). Start the server with the same settings, then:\n"
    );
    println!("Issuer            {}  ({})", issuer.id, issuer.issuer_id);
    println!(
        "DID document      curl {base}/issuers/{}/did.json",
        issuer.id
    );
    println!(
        "Achievements      {} (Teamwork), {} (Rust Fundamentals)",
        teamwork.id, rust.id
    );
    println!("Credentials       {}", ids.join(", "));
    println!("\nA read-only client (secret shown once):");
    println!(
        "  export CLIENT_ID={} CLIENT_SECRET={}",
        reader.client_id,
        reader.client_secret.expose_secret()
    );
    println!(
        "  TOKEN=$(curl -s -u \"$CLIENT_ID:$CLIENT_SECRET\" -d grant_type=client_credentials {base}/oauth/token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')"
    );
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/credentials/{}",
        ids[0]
    );
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" -o badge.png {base}/api/v1/credentials/{}/baked.png",
        ids[0]
    );
    println!("\nRevocation list   curl {base}/revocations/{}", issuer.id);
    state.db().close_by_ref().await?;
    Ok(())
}
