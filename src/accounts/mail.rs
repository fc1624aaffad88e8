//! Outgoing mail: one [`Mailer`] with two real back ends, SMTP (`lettre`; `smtp://` with
//! `?tls=required` for STARTTLS, or `smtps://` for implicit TLS) and, when no SMTP URL is
//! configured, a file outbox `<data dir>/outbox/*.eml`. Mail is handed over after the database
//! commit and retried in the background; a failure is logged (without the message, which holds
//! links) and never undoes the account change.

use std::{path::PathBuf, sync::Arc, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};

/// Errors building or sending mail.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL or sender address is invalid (stops start-up).
    #[error("mail configuration: {0}")]
    Config(String),
    /// The message could not be built (an invalid recipient address).
    #[error("mail message: {0}")]
    Message(String),
    /// Delivery failed (will be retried).
    #[error("mail delivery: {0}")]
    Delivery(String),
}

/// A message to send: one plain-text part.
#[derive(Clone)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body carries single-use links: never print it.
        f.debug_struct("OutgoingMail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// Sends mail through SMTP or into the file outbox. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Arc<Transport>,
    from: Mailbox,
    attempts: u32,
}

impl Mailer {
    /// SMTP when `smtp_url` is given, else the outbox under `data_dir` (with a warning).
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        data_dir: &std::path::Path,
    ) -> Result<Self, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailError::Config(format!("mail_from `{from}`: {e}")))?;
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    // The URL may hold a password: never echo it.
                    .map_err(|e| MailError::Config(format!("smtp_url: {e}")))?
                    .timeout(Some(Duration::from_secs(30)))
                    .build(),
            ),
            None => {
                let dir = data_dir.join("outbox");
                tracing::warn!(
                    dir = %dir.display(),
                    "no SMTP server configured (OXBADGE_SMTP_URL): mail is written to the outbox directory instead of being sent"
                );
                Transport::Outbox(dir)
            }
        };
        Ok(Self {
            transport: Arc::new(transport),
            from,
            attempts: 5,
        })
    }

    /// Whether this mailer writes to the file outbox.
    pub fn outbox_dir(&self) -> Option<&std::path::Path> {
        match self.transport.as_ref() {
            Transport::Outbox(dir) => Some(dir),
            Transport::Smtp(_) => None,
        }
    }

    fn build(&self, mail: &OutgoingMail) -> Result<Message, MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError::Message(format!("recipient: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .map_err(|e| MailError::Message(e.to_string()))
    }

    /// Sends one message now (one attempt).
    pub async fn send_now(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = self.build(mail)?;
        match self.transport.as_ref() {
            Transport::Smtp(smtp) => {
                smtp.send(message)
                    .await
                    .map_err(|e| MailError::Delivery(e.to_string()))?;
            }
            Transport::Outbox(dir) => {
                let bytes = message.formatted();
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    crate::db::new_id()
                );
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    // Mail holds single-use links: the outbox and its files are the service
                    // user's only (0700 / 0600), like the database and the KEK file.
                    crate::db::create_private_dir(&dir)?;
                    // Written under a temporary name and renamed, so readers never see half a file.
                    let tmp = dir.join(format!(".{name}.tmp"));
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    std::io::Write::write_all(&mut options.open(&tmp)?, &bytes)?;
                    std::fs::rename(&tmp, dir.join(&name))
                })
                .await
                .map_err(|e| MailError::Delivery(e.to_string()))?
                .map_err(|e| MailError::Delivery(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Sends in the background, retrying with back-off (1 s, 2 s, 4 s, …) up to five attempts.
    /// Call it after the database change the mail is about has been committed.
    pub fn send_later(&self, mail: OutgoingMail) {
        let mailer = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            for attempt in 1..=mailer.attempts {
                match mailer.send_now(&mail).await {
                    Ok(()) => {
                        tracing::info!(subject = %mail.subject, attempt, "mail handed over");
                        return;
                    }
                    Err(MailError::Message(err)) => {
                        tracing::warn!(subject = %mail.subject, error = %err, "mail cannot be built; not retried");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(subject = %mail.subject, attempt, error = %err, "mail delivery failed");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
            tracing::error!(subject = %mail.subject, "mail given up after repeated failures");
        });
    }
}
