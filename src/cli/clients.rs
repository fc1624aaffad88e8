//! `oxbadge clients …`: create, list, update, disable, rotate the secret of, and delete OAuth
//! clients, straight on the database (audited with the actor `cli`). Secrets are printed once.

use std::collections::HashMap;

use clap::Subcommand;
use oxbadge::{
    accounts::memberships::Role,
    config::Settings,
    db,
    oauth::{
        ScopeSet,
        clients::{self, ClientSpec, ClientUpdate, ClientView, WithSecret},
    },
};
use secrecy::ExposeSecret;
use serde_json::json;

/// The audit actor of CLI changes.
const ACTOR: &str = "cli";

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Create a client-credentials client and print its id and secret (shown once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Space-separated scopes, e.g. "issuers:read credentials:issue".
        #[arg(long)]
        scopes: String,
        /// Limit the client to an issuer with a role, as ISSUER_ID:ROLE (owner, issuer or
        /// viewer); repeat for more. Without it the client is global.
        #[arg(long = "issuer")]
        issuers: Vec<String>,
        /// A redirect URI (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Print one JSON object {"client_id", "client_secret", "scopes"} on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List clients (never secrets).
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Change a client's name, scopes, redirect URIs or memberships.
    Update {
        /// Client id.
        client_id: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New space-separated scopes (narrowing them revokes the client's live tokens).
        #[arg(long)]
        scopes: Option<String>,
        /// Replace the memberships with these ISSUER_ID:ROLE pairs (the client becomes non-global).
        #[arg(long = "issuer")]
        issuers: Vec<String>,
        /// Replace the redirect URIs (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Remove every redirect URI.
        #[arg(long, conflicts_with = "redirect_uris")]
        clear_redirect_uris: bool,
        /// `true`: act on every issuer; `false`: only on its memberships.
        #[arg(long)]
        global: Option<bool>,
    },
    /// Disable a client and revoke its tokens.
    Disable {
        /// Client id.
        client_id: String,
    },
    /// Replace a client's secret (the old one stops at once; its tokens are revoked) and print the
    /// new one (shown once).
    RotateSecret {
        /// Client id.
        client_id: String,
        /// Print one JSON object {"client_id", "client_secret"} on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client with its tokens and memberships.
    Delete {
        /// Client id.
        client_id: String,
    },
}

fn parse_memberships(pairs: &[String]) -> anyhow::Result<HashMap<String, Role>> {
    let mut out = HashMap::new();
    for pair in pairs {
        let (issuer, role) = pair
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("--issuer `{pair}`: use ISSUER_ID:ROLE"))?;
        let role: Role = role.parse()?;
        if out.insert(issuer.to_owned(), role).is_some() {
            anyhow::bail!("--issuer `{issuer}` is named twice");
        }
    }
    Ok(out)
}

fn parse_scopes(scopes: &str) -> anyhow::Result<ScopeSet> {
    let scopes = ScopeSet::parse(scopes)?;
    if scopes.is_empty() {
        anyhow::bail!("--scopes must name at least one scope");
    }
    Ok(scopes)
}

fn describe(v: &ClientView) -> serde_json::Value {
    let mut issuers: Vec<_> = v
        .memberships
        .iter()
        .map(|(i, r)| json!({"issuerId": i, "role": r.as_str()}))
        .collect();
    issuers.sort_by_key(|m| m["issuerId"].as_str().unwrap_or_default().to_owned());
    json!({
        "id": v.client.id,
        "name": v.client.name,
        "scopes": v.client.scopes.split_ascii_whitespace().collect::<Vec<_>>(),
        "global": v.client.global,
        "issuers": issuers,
        "redirectUris": v.client.redirect_uris.split_ascii_whitespace().collect::<Vec<_>>(),
        "createdAt": v.client.created_at,
        "disabledAt": v.client.disabled_at,
    })
}

fn print_secret(c: &WithSecret, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "client_id": c.view.client.id,
                "client_secret": c.client_secret.expose_secret(),
                "scopes": c.view.client.scopes.split_ascii_whitespace().collect::<Vec<_>>(),
            })
        );
    } else {
        println!("client_id:     {}", c.view.client.id);
        println!("client_secret: {}", c.client_secret.expose_secret());
        println!("scopes:        {}", c.view.client.scopes);
    }
}

/// Runs one `clients` command.
pub async fn run(settings: &Settings, cmd: ClientsCommand) -> anyhow::Result<()> {
    let conn = db::connect(&settings.effective_database_url(), 2).await?;
    db::migrate_up(&conn).await?;
    let result = run_on(&conn, cmd).await;
    conn.close().await?;
    result
}

async fn run_on(conn: &sea_orm::DatabaseConnection, cmd: ClientsCommand) -> anyhow::Result<()> {
    match cmd {
        ClientsCommand::Create {
            name,
            scopes,
            issuers,
            redirect_uris,
            json,
        } => {
            let spec = ClientSpec {
                name,
                scopes: parse_scopes(&scopes)?,
                redirect_uris,
                issuers: if issuers.is_empty() {
                    None
                } else {
                    Some(parse_memberships(&issuers)?)
                },
            };
            let client = clients::create_client(conn, spec, ACTOR).await?;
            print_secret(&client, json);
        }
        ClientsCommand::List { json } => {
            let all = clients::list_clients(conn).await?;
            if json {
                let list: Vec<_> = all.iter().map(describe).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for v in &all {
                    let reach = if v.client.global {
                        "global".to_owned()
                    } else {
                        let mut m: Vec<String> = v
                            .memberships
                            .iter()
                            .map(|(i, r)| format!("{i}:{r}"))
                            .collect();
                        m.sort();
                        format!("issuers [{}]", m.join(", "))
                    };
                    let state = if v.client.disabled_at.is_some() {
                        " (disabled)"
                    } else {
                        ""
                    };
                    println!(
                        "{}  {}{}  scopes: {}  {}",
                        v.client.id, v.client.name, state, v.client.scopes, reach
                    );
                }
            }
        }
        ClientsCommand::Update {
            client_id,
            name,
            scopes,
            issuers,
            redirect_uris,
            clear_redirect_uris,
            global,
        } => {
            let update = ClientUpdate {
                name,
                scopes: scopes.as_deref().map(parse_scopes).transpose()?,
                redirect_uris: if clear_redirect_uris {
                    Some(Vec::new())
                } else if redirect_uris.is_empty() {
                    None
                } else {
                    Some(redirect_uris)
                },
                issuers: if issuers.is_empty() {
                    None
                } else {
                    Some(parse_memberships(&issuers)?)
                },
                global,
            };
            let v = clients::update_client(conn, &client_id, update, ACTOR).await?;
            println!("{}", describe(&v));
        }
        ClientsCommand::Disable { client_id } => {
            if !clients::disable_client(conn, &client_id, ACTOR).await? {
                anyhow::bail!("client `{client_id}` not found");
            }
            println!("disabled {client_id}; its tokens are revoked");
        }
        ClientsCommand::RotateSecret { client_id, json } => {
            let client = clients::rotate_secret(conn, &client_id, ACTOR).await?;
            print_secret(&client, json);
        }
        ClientsCommand::Delete { client_id } => {
            clients::delete_client(conn, &client_id, ACTOR).await?;
            println!("deleted {client_id}");
        }
    }
    Ok(())
}
