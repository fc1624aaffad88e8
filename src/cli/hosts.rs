//! `oxbadge hosts connect|list|import|push|disconnect`: connections to other OB 3.0 hosts for
//! scripted use, acting as the user named by `--email` (the same checks as the pages: an
//! issuer's connection needs the role owner or issuer). `connect` prints the authorization URL:
//! the person opens it in a browser where they are signed in here, and the host sends them back
//! to `/account/hosts/callback`, which completes the connection.

use clap::{Subcommand, ValueEnum};
use oxbadge::{
    AppState,
    accounts::users::{self, Email},
    ob3::consumer::{
        connection::{self, Access, Owner},
        import, push,
        remote_host::HostBase,
    },
};
use serde_json::json;

/// What to ask the host for.
#[derive(Clone, Copy, ValueEnum)]
pub enum AccessArg {
    /// Read badges and the profile.
    Read,
    /// Add badges and update the profile.
    Write,
    /// Both.
    Full,
}

/// `oxbadge hosts …`
#[derive(Subcommand)]
pub enum HostsCommand {
    /// Discover and register at a host; print the authorization URL to open.
    Connect {
        /// The user acting (and, without --issuer, the owner of the connection).
        #[arg(long)]
        email: String,
        /// The host's base URL.
        #[arg(long)]
        base_url: String,
        /// Make the connection for this issuer (the user needs the role owner or issuer).
        #[arg(long)]
        issuer: Option<String>,
        /// Access to ask for (default: read for a person, write for an issuer).
        #[arg(long, value_enum)]
        access: Option<AccessArg>,
    },
    /// List connections (one JSON object per line).
    List {
        #[arg(long)]
        email: String,
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Import the user's badges and profile through a connection; prints the report as JSON.
    Import {
        #[arg(long)]
        email: String,
        /// The connection id.
        #[arg(long)]
        connection: String,
    },
    /// Push an issued credential (`--credential`) or the issuer's Profile (`--profile`).
    Push {
        #[arg(long)]
        email: String,
        #[arg(long)]
        issuer: String,
        /// The connection id.
        #[arg(long)]
        connection: String,
        /// The credential id here.
        #[arg(long, conflicts_with = "profile", required_unless_present = "profile")]
        credential: Option<String>,
        /// Put the issuer's Profile.
        #[arg(long)]
        profile: bool,
    },
    /// Revoke a connection's tokens at the host and forget them.
    Disconnect {
        #[arg(long)]
        email: String,
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long)]
        connection: String,
    },
}

async fn user_id(state: &AppState, email: &str) -> anyhow::Result<String> {
    let email = Email::parse(email)?;
    Ok(users::find_by_email(state.db(), &email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with the email address {}", email.as_str()))?
        .id)
}

async fn owner_for(state: &AppState, user: &str, issuer: Option<String>) -> anyhow::Result<Owner> {
    let owner = match issuer {
        Some(id) => Owner::Issuer(id),
        None => Owner::User(user.to_owned()),
    };
    connection::authorize_owner(state.db(), user, &owner).await?;
    Ok(owner)
}

/// Runs one `hosts` command.
pub async fn run(state: &AppState, cmd: HostsCommand) -> anyhow::Result<()> {
    match cmd {
        HostsCommand::Connect {
            email,
            base_url,
            issuer,
            access,
        } => {
            let user = user_id(state, &email).await?;
            let owner = owner_for(state, &user, issuer).await?;
            let access = match access {
                Some(AccessArg::Read) => Access::Read,
                Some(AccessArg::Write) => Access::Write,
                Some(AccessArg::Full) => Access::Full,
                None => Access::default_for(&owner),
            };
            let started =
                connection::start(state, &owner, &user, HostBase::parse(&base_url)?, access)
                    .await?;
            eprintln!(
                "connection {} registered; open this URL in a browser signed in here as {email} \
                 (valid 10 minutes):",
                started.connection_id
            );
            println!("{}", started.authorization_url);
        }
        HostsCommand::List { email, issuer } => {
            let user = user_id(state, &email).await?;
            let owner = owner_for(state, &user, issuer).await?;
            for c in connection::list(state.db(), &owner).await? {
                println!(
                    "{}",
                    json!({
                        "id": c.id, "baseUrl": c.base_url, "hostName": c.host_name,
                        "status": c.status, "scopes": c.scopes,
                        "tokenExpiresAt": c.token_expires_at, "lastError": c.last_error,
                    })
                );
            }
        }
        HostsCommand::Import { email, connection } => {
            let user = user_id(state, &email).await?;
            let row = connection::get(state.db(), &Owner::User(user), &connection).await?;
            let report = import::import(state, row).await?;
            println!(
                "{}",
                json!({
                    "pages": report.pages,
                    "total": report.total,
                    "received": report.received,
                    "imported": report.imported.iter().map(|i| json!({"credentialId": i.credential_id, "outcome": i.outcome})).collect::<Vec<_>>(),
                    "rejected": report.rejected.iter().map(|r| json!({"credentialId": r.credential_id, "reason": r.reason})).collect::<Vec<_>>(),
                    "profile": report.profile,
                })
            );
        }
        HostsCommand::Push {
            email,
            issuer,
            connection,
            credential,
            profile,
        } => {
            let user = user_id(state, &email).await?;
            let owner = owner_for(state, &user, Some(issuer)).await?;
            let row = connection::get(state.db(), &owner, &connection).await?;
            if profile {
                let (_, stored) = push::push_issuer_profile(state, row).await?;
                println!("{stored}");
            } else if let Some(credential) = credential {
                let (_, outcome) = push::push_issued_credential(state, row, &credential).await?;
                eprintln!(
                    "the host answered {} ({})",
                    outcome.status,
                    if outcome.created() {
                        "created"
                    } else {
                        "replaced or kept"
                    }
                );
                println!("{}", outcome.body);
            }
        }
        HostsCommand::Disconnect {
            email,
            issuer,
            connection,
        } => {
            let user = user_id(state, &email).await?;
            let owner = owner_for(state, &user, issuer).await?;
            let row = connection::get(state.db(), &owner, &connection).await?;
            connection::disconnect(state, row).await?;
            eprintln!("disconnected");
        }
    }
    Ok(())
}
