//! Group commit of token grants: concurrent `POST /oauth/token` requests (client credentials,
//! code exchanges, refreshes) queue for one writer task, which takes whatever is waiting (up to
//! [`MAX_GROUP`]) and runs each grant in its own savepoint of ONE write transaction, answering
//! every request only after that transaction commits. A durable commit (an fsync on SQLite, a WAL
//! flush on PostgreSQL) is paid once per group instead of once per token.
//!
//! Each grant keeps its own result and its own writes: a refused grant's savepoint is rolled back,
//! unless the refusal itself must be stored (a replayed code or a reused refresh token revokes the
//! grant; that revocation is committed with the group and the caller is told `invalid_grant`). A
//! grant that hits a database error, and every grant of a group whose commit fails, runs again in
//! a transaction of its own (nothing of it was stored), so one failure never fails another
//! caller's grant. No token is handed out before the transaction holding it has committed.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use super::{
    OAuthError, TokenGrant,
    code_exchange::{self, CheckedCode, ExchangeFailure, Exchanged, Issued},
    refresh_family::{self, CheckedRefresh, RefreshFailure, RefreshLifetimes, Refreshed},
    tokens,
};
use crate::{app::AppState, db, db::oauth_client};

/// Most grants committed in one transaction.
pub const MAX_GROUP: usize = 128;

/// One grant to store.
pub enum Grant {
    /// `client_credentials` for an authenticated service client.
    ClientCredentials {
        client: oauth_client::Model,
        scope: Option<String>,
        ttl_secs: u64,
    },
    /// `authorization_code` with checked parameters.
    Code {
        client: oauth_client::Model,
        now: DateTime<Utc>,
        request: CheckedCode,
        issued: Issued,
    },
    /// `refresh_token` with checked parameters.
    Refresh {
        client: oauth_client::Model,
        now: DateTime<Utc>,
        request: CheckedRefresh,
        lifetimes: RefreshLifetimes,
        access_ttl_secs: u64,
    },
}

/// What a grant produced.
#[derive(Debug)]
pub enum Granted {
    ClientCredentials(Result<TokenGrant, OAuthError>),
    Code(Result<Exchanged, ExchangeFailure>),
    Refresh(Result<Refreshed, RefreshFailure>),
}

impl Granted {
    /// Whether the grant's writes belong in the commit: it succeeded, or its refusal revoked
    /// something.
    fn keeps_writes(&self) -> bool {
        match self {
            Self::ClientCredentials(r) => r.is_ok(),
            Self::Code(r) => r
                .as_ref()
                .map_or_else(ExchangeFailure::keeps_writes, |_| true),
            Self::Refresh(r) => r
                .as_ref()
                .map_or_else(RefreshFailure::keeps_writes, |_| true),
        }
    }

    /// Whether the grant failed on the database (it is then run again on its own).
    fn database_failed(&self) -> bool {
        let error = match self {
            Self::ClientCredentials(Err(e)) => e,
            Self::Code(Err(f)) => &f.error,
            Self::Refresh(Err(f)) => &f.error,
            _ => return false,
        };
        error.error == "server_error"
    }

    fn from_db(grant: &Grant, err: &DbErr) -> Self {
        Self::failed(grant.kind(), OAuthError::from(err.clone()))
    }

    fn failed(kind: Kind, error: OAuthError) -> Self {
        match kind {
            Kind::ClientCredentials => Self::ClientCredentials(Err(error)),
            Kind::Code => Self::Code(Err(error.into())),
            Kind::Refresh => Self::Refresh(Err(error.into())),
        }
    }
}

/// Which grant a request is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    ClientCredentials,
    Code,
    Refresh,
}

impl Grant {
    fn kind(&self) -> Kind {
        match self {
            Self::ClientCredentials { .. } => Kind::ClientCredentials,
            Self::Code { .. } => Kind::Code,
            Self::Refresh { .. } => Kind::Refresh,
        }
    }

    /// Runs the grant on `conn` (a savepoint of the group, or a transaction of its own).
    async fn run(&self, conn: &impl ConnectionTrait) -> Granted {
        match self {
            Self::ClientCredentials {
                client,
                scope,
                ttl_secs,
            } => Granted::ClientCredentials(
                tokens::issue_token(conn, client, scope.as_deref(), *ttl_secs).await,
            ),
            Self::Code {
                client,
                now,
                request,
                issued,
            } => Granted::Code(
                code_exchange::exchange_in(conn, *now, client, request, *issued).await,
            ),
            Self::Refresh {
                client,
                now,
                request,
                lifetimes,
                access_ttl_secs,
            } => Granted::Refresh(
                refresh_family::refresh_in(
                    conn,
                    *now,
                    client,
                    request,
                    *lifetimes,
                    *access_ttl_secs,
                )
                .await,
            ),
        }
    }
}

/// One queued grant and where its answer goes.
pub struct Request {
    grant: Grant,
    reply: oneshot::Sender<Granted>,
}

/// The queue in front of the grant writer (see [`run`]).
pub type GrantQueue = crate::writer::WriterQueue<Request>;

/// Stores `grant` through the writer; answers once it is committed (or refused).
pub async fn submit(state: &AppState, grant: Grant) -> Granted {
    let kind = grant.kind();
    let unavailable = || {
        Granted::failed(
            kind,
            OAuthError::server_error(&"the token writer is not running"),
        )
    };
    let (reply, answer) = oneshot::channel();
    if state
        .grant_queue()
        .send(Request { grant, reply })
        .await
        .is_err()
    {
        return unavailable();
    }
    answer.await.unwrap_or_else(|_| unavailable())
}

/// The writer: runs until every sender is gone (or the task is aborted at shutdown).
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Request>) {
    let mut buf = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut buf, MAX_GROUP).await > 0 {
        let requests = std::mem::replace(&mut buf, Vec::with_capacity(MAX_GROUP));
        commit_group(&state, requests).await;
    }
}

/// Runs a group in one transaction and answers; falls back to one transaction per grant for the
/// grants that could not be stored with the group.
async fn commit_group(state: &AppState, requests: Vec<Request>) {
    if requests.len() == 1 {
        for request in requests {
            alone(state, request).await;
        }
        return;
    }
    let txn = match db::begin_write(state.db()).await {
        Ok(txn) => txn,
        Err(err) => {
            tracing::warn!(error = %err, "cannot open the grant transaction; granting one by one");
            for request in requests {
                alone(state, request).await;
            }
            return;
        }
    };
    let mut done: Vec<(Request, Granted)> = Vec::with_capacity(requests.len());
    let mut retry: Vec<Request> = Vec::new();
    for request in requests {
        match in_savepoint(&txn, &request.grant).await {
            Ok(granted) if granted.database_failed() => retry.push(request),
            Ok(granted) => done.push((request, granted)),
            Err(err) => {
                tracing::debug!(error = %err, "a grouped grant's savepoint failed; retrying it alone");
                retry.push(request);
            }
        }
    }
    match txn.commit().await {
        Ok(()) => {
            for (request, granted) in done {
                let _ = request.reply.send(granted);
            }
        }
        Err(err) => {
            tracing::warn!(
                grants = done.len(),
                error = %err,
                "a grouped grant commit failed; granting one by one"
            );
            retry.extend(done.into_iter().map(|(request, _)| request));
        }
    }
    for request in retry {
        alone(state, request).await;
    }
}

/// Runs one grant in a savepoint of `txn`: released when its writes are kept, rolled back
/// otherwise.
async fn in_savepoint(txn: &DatabaseTransaction, grant: &Grant) -> Result<Granted, DbErr> {
    let savepoint = txn.begin().await?;
    let granted = grant.run(&savepoint).await;
    if granted.keeps_writes() {
        savepoint.commit().await?;
    } else {
        savepoint.rollback().await?;
    }
    Ok(granted)
}

/// Runs one grant in a transaction of its own, retrying lost races a few times, and answers.
async fn alone(state: &AppState, request: Request) {
    let mut last = None;
    for attempt in 0..3 {
        match once(state, &request.grant).await {
            Ok(granted) => {
                let _ = request.reply.send(granted);
                return;
            }
            Err(err) if db::is_retryable(&err) && attempt < 2 => {
                db::retry_backoff().await;
                last = Some(err);
            }
            Err(err) => {
                last = Some(err);
                break;
            }
        }
    }
    let err = last.unwrap_or_else(|| DbErr::Custom("grant failed".into()));
    let _ = request.reply.send(Granted::from_db(&request.grant, &err));
}

/// One grant, one transaction. A database error inside the grant is returned as the grant's own
/// answer (a server error), except a lost race, which the caller retries.
async fn once(state: &AppState, grant: &Grant) -> Result<Granted, DbErr> {
    let txn = db::begin_write(state.db()).await?;
    let granted = grant.run(&txn).await;
    if granted.keeps_writes() {
        txn.commit().await?;
    } else {
        txn.rollback().await?;
    }
    Ok(granted)
}
