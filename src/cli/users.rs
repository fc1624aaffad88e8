//! `oxbadge users create|list|disable|enable|reset-password`: people administration from the
//! command line. Passwords are read from standard input (`--password-stdin`), never from flags.

use std::io::BufRead;

use clap::Subcommand;
use oxbadge::{
    AppState,
    accounts::{
        passwords::NewPassword,
        self_service,
        users::{self, DisplayName, Email, NewUser},
    },
};

/// `oxbadge users …`
#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user whose email address counts as confirmed; the password is read from stdin.
    Create {
        /// Email address.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Make the user a global administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users (tab-separated, or one JSON object per line with --json).
    List {
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user (ends their sessions; they cannot sign in).
    Disable {
        /// Email address.
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Email address.
        #[arg(long)]
        email: String,
    },
    /// Mail the user a single-use password-reset link (1 h).
    ResetPassword {
        /// Email address.
        #[arg(long)]
        email: String,
    },
}

async fn find(
    state: &AppState,
    email: &str,
) -> anyhow::Result<oxbadge::accounts::records::user::Model> {
    let email = Email::parse(email)?;
    users::find_by_email(state.db(), &email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with the email address {}", email.as_str()))
}

/// Runs one `users` command.
pub async fn run(state: &AppState, cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Create {
            email,
            name,
            admin,
            password_stdin: _,
        } => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            let created = users::create_user(
                state.db(),
                state.accounts(),
                NewUser {
                    email: Email::parse(&email)?,
                    display_name: DisplayName::parse(&name)?,
                    password: NewPassword::parse(password)?,
                    is_admin: admin,
                    email_verified: true,
                },
                "cli",
            )
            .await?;
            println!(
                "created user {} <{}>{}",
                created.id,
                created.email,
                if created.is_admin { " (admin)" } else { "" }
            );
        }
        UsersCommand::List { json } => {
            let (rows, _) = users::list_users(state.db(), u64::MAX >> 1, 0).await?;
            if !json {
                println!("id\temail\tname\tadmin\tverified\tdisabled\tcreated");
            }
            for u in rows {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": u.id,
                            "email": u.email,
                            "displayName": u.display_name,
                            "isAdmin": u.is_admin,
                            "emailVerified": u.email_verified_at.is_some(),
                            "disabled": u.disabled_at.is_some(),
                            "createdAt": u.created_at.to_rfc3339(),
                        })
                    );
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        u.id,
                        u.email,
                        u.display_name,
                        u.is_admin,
                        u.email_verified_at.is_some(),
                        u.disabled_at.is_some(),
                        u.created_at.to_rfc3339()
                    );
                }
            }
        }
        UsersCommand::Disable { email } => {
            let found = find(state, &email).await?;
            users::set_disabled(state.db(), state.accounts(), &found.id, true, "cli").await?;
            println!("disabled {} (sessions ended)", found.email);
        }
        UsersCommand::Enable { email } => {
            let found = find(state, &email).await?;
            users::set_disabled(state.db(), state.accounts(), &found.id, false, "cli").await?;
            println!("enabled {}", found.email);
        }
        UsersCommand::ResetPassword { email } => {
            let found = find(state, &email).await?;
            let mail =
                self_service::reset_link_mail_for(state.db(), state.accounts(), &found.id, "cli")
                    .await?;
            state.accounts().mailer().send_now(&mail).await?;
            match state.accounts().mailer().outbox_dir() {
                Some(dir) => println!(
                    "wrote a password-reset link for {} to the outbox {}",
                    found.email,
                    dir.display()
                ),
                None => println!("mailed a password-reset link to {}", found.email),
            }
        }
    }
    Ok(())
}
