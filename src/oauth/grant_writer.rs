//! Group commit of token grants: concurrent `POST /oauth/token` requests (client credentials,
//! code exchanges, refreshes) do their checks with reads only ([`code_exchange::prepare`],
//! [`refresh_family::prepare`], [`tokens::prepare_client_token`]), in parallel, then queue for one
//! writer task. The writer takes whatever is waiting (up to [`MAX_GROUP`]) and stores it in ONE
//! write transaction with a handful of statements whatever the group's size: one compare-and-set
//! `UPDATE … RETURNING` for all the codes, one for all the refresh tokens being rotated, one
//! multi-row `INSERT` each for the access tokens, the refresh tokens and the audit events, one
//! `UPDATE` for the clients' first-token marks. Every request is answered only after that
//! transaction commits, so a durable commit (an fsync on SQLite, a WAL flush on PostgreSQL) is paid
//! once per group and no token is handed out before it is stored.
//!
//! Races are decided inside the transaction: of two requests presenting one code or one refresh
//! token (in one group or in two), the compare-and-set lets exactly one win; the other is the
//! replay, and its refusal revokes the whole grant, the winner's new tokens included (the
//! revocations run after the inserts). A code or refresh token that was revoked in the meantime is
//! refused without writes. When the group's transaction fails, nothing of it was stored, and each
//! grant is stored again in a transaction of its own, so one failure never fails another caller's
//! grant.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Statement, Value};
use tokio::sync::{mpsc, oneshot};

use super::{
    OAuthError, TokenGrant,
    code_exchange::{self, CodeRequest, ExchangeFailure, Exchanged, PreparedExchange},
    refresh_family::{self, PreparedRefresh, RefreshFailure, Refreshed},
    tokens::{self, PreparedToken},
};
use crate::{
    accounts::memberships::Principal,
    app::AppState,
    db::{self, access_token, audit_event, authorization_code, oauth_client, refresh_token},
};

/// Most grants committed in one transaction.
pub const MAX_GROUP: usize = 128;

/// One grant whose checks passed, ready to be stored.
#[derive(Debug)]
pub enum Grant {
    /// `client_credentials`.
    ClientCredentials {
        client_id: String,
        first_token: bool,
        token: PreparedToken,
    },
    /// `authorization_code`.
    Code {
        client_id: String,
        first_token: bool,
        exchange: PreparedExchange,
    },
    /// `refresh_token`.
    Refresh {
        client_id: String,
        refresh: PreparedRefresh,
    },
}

/// What a grant produced.
#[derive(Debug)]
pub enum Granted {
    ClientCredentials(Result<TokenGrant, OAuthError>),
    Code(Result<Exchanged, ExchangeFailure>),
    Refresh(Result<Refreshed, RefreshFailure>),
}

/// A grant's outcome inside the transaction, before the commit hands out its secrets.
#[derive(Debug)]
enum Verdict {
    Stored,
    RefusedCode(ExchangeFailure),
    RefusedRefresh(RefreshFailure),
}

/// One queued grant and where its answer goes.
pub struct Request {
    grant: Grant,
    reply: oneshot::Sender<Granted>,
}

/// The queue in front of the grant writer (see [`run`]).
pub type GrantQueue = crate::writer::WriterQueue<Request>;

/// The `client_credentials` grant for an authenticated service client.
pub async fn client_credentials(
    state: &AppState,
    client: &oauth_client::Model,
    scope: Option<&str>,
) -> Result<TokenGrant, OAuthError> {
    let token =
        tokens::prepare_client_token(client, scope, state.settings().access_token_ttl_secs)?;
    let grant = Grant::ClientCredentials {
        client_id: client.id.clone(),
        first_token: client.first_token_at.is_none(),
        token,
    };
    match submit(state, grant).await {
        Granted::ClientCredentials(result) => result,
        _ => Err(mismatch()),
    }
}

/// The `authorization_code` grant for an authenticated client.
pub async fn exchange_code(
    state: &AppState,
    client: &oauth_client::Model,
    request: CodeRequest<'_>,
) -> Result<Exchanged, ExchangeFailure> {
    let settings = state.settings();
    let request = request.check()?;
    let issued = code_exchange::Issued {
        access_ttl_secs: settings.user_token_ttl_secs,
        refresh: settings.refresh_lifetimes(),
    };
    let exchange = code_exchange::prepare(
        state.db(),
        state.ceiling_cache(),
        state.clock().now(),
        client,
        &request,
        issued,
    )
    .await?;
    let grant = Grant::Code {
        client_id: client.id.clone(),
        first_token: client.first_token_at.is_none(),
        exchange,
    };
    let result = match submit(state, grant).await {
        Granted::Code(result) => result,
        _ => Err(mismatch().into()),
    };
    if let Err(failure) = &result {
        forget_user_tokens(state, failure.grant_revoked_for.as_deref());
    }
    result
}

/// The `refresh_token` grant for an authenticated client.
pub async fn refresh(
    state: &AppState,
    client: &oauth_client::Model,
    presented: &str,
    scope: Option<&str>,
) -> Result<Refreshed, RefreshFailure> {
    let settings = state.settings();
    let request = refresh_family::check_request(presented, scope)?;
    let refresh = refresh_family::prepare(
        state.db(),
        state.ceiling_cache(),
        state.clock().now(),
        client,
        &request,
        settings.refresh_lifetimes(),
        settings.user_token_ttl_secs,
    )
    .await?;
    let grant = Grant::Refresh {
        client_id: client.id.clone(),
        refresh,
    };
    let result = match submit(state, grant).await {
        Granted::Refresh(result) => result,
        _ => Err(mismatch().into()),
    };
    if let Err(failure) = &result {
        forget_user_tokens(state, failure.family_revoked_for.as_deref());
    }
    result
}

/// After a refusal revoked `user`'s grant: their cached tokens must be resolved again.
fn forget_user_tokens(state: &AppState, user: Option<&str>) {
    if let Some(user) = user {
        state
            .token_cache()
            .evict_principal(&Principal::User(user.to_owned()));
    }
}

fn mismatch() -> OAuthError {
    OAuthError::server_error(&"the token writer answered another grant")
}

/// Stores `grant` through the writer; answers once it is committed (or refused).
pub async fn submit(state: &AppState, grant: Grant) -> Granted {
    let kind = Kind::of(&grant);
    let (reply, answer) = oneshot::channel();
    if state
        .grant_queue()
        .send(Request { grant, reply })
        .await
        .is_err()
    {
        return kind.failed(OAuthError::server_error(&"the token writer is not running"));
    }
    answer.await.unwrap_or_else(|_| {
        kind.failed(OAuthError::server_error(
            &"the token writer stopped before answering",
        ))
    })
}

/// Which grant a request is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    ClientCredentials,
    Code,
    Refresh,
}

impl Kind {
    fn of(grant: &Grant) -> Self {
        match grant {
            Grant::ClientCredentials { .. } => Self::ClientCredentials,
            Grant::Code { .. } => Self::Code,
            Grant::Refresh { .. } => Self::Refresh,
        }
    }

    fn failed(self, error: OAuthError) -> Granted {
        match self {
            Self::ClientCredentials => Granted::ClientCredentials(Err(error)),
            Self::Code => Granted::Code(Err(error.into())),
            Self::Refresh => Granted::Refresh(Err(error.into())),
        }
    }
}

/// The writer: runs until every sender is gone (or the task is aborted at shutdown).
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Request>) {
    let mut buf = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut buf, MAX_GROUP).await > 0 {
        let requests = std::mem::replace(&mut buf, Vec::with_capacity(MAX_GROUP));
        commit_group(&state, requests).await;
    }
}

/// Stores a group in one transaction and answers; when that fails, stores each grant alone.
async fn commit_group(state: &AppState, requests: Vec<Request>) {
    let single = requests.len() == 1;
    let grants: Vec<&Grant> = requests.iter().map(|r| &r.grant).collect();
    match store(state, &grants).await {
        Ok(verdicts) => answer(requests, verdicts),
        Err(err) if single => {
            // Retry a lost race (busy database, serialization failure) a few times.
            let mut last = err;
            for _ in 0..3 {
                if !db::is_retryable(&last) {
                    break;
                }
                db::retry_backoff().await;
                match store(state, &grants).await {
                    Ok(verdicts) => return answer(requests, verdicts),
                    Err(err) => last = err,
                }
            }
            for request in requests {
                let kind = Kind::of(&request.grant);
                let _ = request
                    .reply
                    .send(kind.failed(OAuthError::from(last.clone())));
            }
        }
        Err(err) => {
            tracing::warn!(
                grants = requests.len(),
                error = %err,
                "a grouped grant commit failed; granting one by one"
            );
            drop(grants);
            for request in requests {
                Box::pin(commit_group(state, vec![request])).await;
            }
        }
    }
}

/// Hands every request its outcome (the group is committed).
fn answer(requests: Vec<Request>, verdicts: Vec<Verdict>) {
    for (request, verdict) in requests.into_iter().zip(verdicts) {
        let granted = match (request.grant, verdict) {
            (Grant::ClientCredentials { token, .. }, _) => {
                Granted::ClientCredentials(Ok(token.grant))
            }
            (Grant::Code { .. }, Verdict::RefusedCode(failure)) => Granted::Code(Err(failure)),
            (
                Grant::Code {
                    exchange: PreparedExchange::Fresh(fresh),
                    ..
                },
                _,
            ) => Granted::Code(Ok(fresh.into_exchanged())),
            (Grant::Refresh { .. }, Verdict::RefusedRefresh(failure)) => {
                Granted::Refresh(Err(failure))
            }
            (
                Grant::Refresh {
                    refresh: PreparedRefresh::Rotate(rotation),
                    ..
                },
                _,
            ) => Granted::Refresh(Ok(rotation.into_refreshed())),
            (grant, _) => Kind::of(&grant).failed(mismatch()),
        };
        let _ = request.reply.send(granted);
    }
}

/// Stores `grants` in one transaction; the verdicts are in the same order.
async fn store(state: &AppState, grants: &[&Grant]) -> Result<Vec<Verdict>, DbErr> {
    let started = std::time::Instant::now();
    let now = state.clock().now();
    let txn = db::begin_write(state.writer_db()).await?;
    let began = started.elapsed();
    let verdicts = apply(&txn, now, grants).await?;
    let applied = started.elapsed();
    txn.commit().await?;
    tracing::debug!(
        grants = grants.len(),
        begin_us = began.as_micros() as u64,
        apply_us = (applied - began).as_micros() as u64,
        commit_us = (started.elapsed() - applied).as_micros() as u64,
        "grant group committed"
    );
    Ok(verdicts)
}

/// The group's writes, inside `txn`.
async fn apply(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    grants: &[&Grant],
) -> Result<Vec<Verdict>, DbErr> {
    let mut verdicts: Vec<Option<Verdict>> = grants.iter().map(|_| None).collect();

    // 1. Compare-and-set every fresh code and every rotated refresh token, each in one statement.
    let code_ids: Vec<&str> = grants
        .iter()
        .filter_map(|g| match g {
            Grant::Code {
                exchange: PreparedExchange::Fresh(f),
                ..
            } => Some(f.code.id.as_str()),
            _ => None,
        })
        .collect();
    let codes_won = claim_codes(txn, now, &code_ids).await?;
    let rotations: Vec<(&str, &str)> = grants
        .iter()
        .filter_map(|g| match g {
            Grant::Refresh {
                refresh: PreparedRefresh::Rotate(r),
                ..
            } => Some((r.row.id.as_str(), r.successor.id.as_str())),
            _ => None,
        })
        .collect();
    let refresh_won = claim_refresh_tokens(txn, now, &rotations).await?;

    // 2. Winners: the first request per code or refresh token that its compare-and-set let through.
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut access_rows = Vec::new();
    let mut refresh_rows = Vec::new();
    let mut events = Vec::new();
    let mut first_tokens: Vec<&str> = Vec::new();
    let mut late: Vec<usize> = Vec::new();
    for (i, grant) in grants.iter().enumerate() {
        match grant {
            Grant::ClientCredentials {
                client_id,
                first_token,
                token,
            } => {
                access_rows.push(access_token::ActiveModel::from(token.row.clone()));
                if *first_token {
                    first_tokens.push(client_id);
                }
                verdicts[i] = Some(Verdict::Stored);
            }
            Grant::Code {
                client_id,
                first_token,
                exchange: PreparedExchange::Fresh(fresh),
            } => {
                if codes_won.contains(fresh.code.id.as_str())
                    && claimed.insert(fresh.code.id.as_str())
                {
                    access_rows.push(access_token::ActiveModel::from(fresh.access.row.clone()));
                    if let Some((row, _)) = &fresh.refresh {
                        refresh_rows.push(refresh_token::ActiveModel::from(row.clone()));
                    }
                    if *first_token {
                        first_tokens.push(client_id);
                    }
                    events.push(audit_event::NewEvent {
                        actor: format!("client:{client_id}"),
                        action: "oauth.code_exchanged",
                        target_type: "grant",
                        target_id: fresh.code.id.clone(),
                        details: serde_json::json!({
                            "userId": fresh.code.user_id,
                            "scopes": fresh.scopes.to_string(),
                            "refreshToken": fresh.refresh.is_some(),
                        }),
                    });
                    verdicts[i] = Some(Verdict::Stored);
                } else {
                    late.push(i);
                }
            }
            Grant::Refresh {
                refresh: PreparedRefresh::Rotate(rotation),
                ..
            } => {
                if refresh_won.contains(rotation.row.id.as_str())
                    && claimed.insert(rotation.row.id.as_str())
                {
                    refresh_rows.push(refresh_token::ActiveModel::from(rotation.successor.clone()));
                    access_rows.push(access_token::ActiveModel::from(rotation.access.row.clone()));
                    verdicts[i] = Some(Verdict::Stored);
                } else {
                    late.push(i);
                }
            }
            Grant::Code { .. } | Grant::Refresh { .. } => late.push(i),
        }
    }

    // 3. The inserts, one statement each.
    if !access_rows.is_empty() {
        access_token::Entity::insert_many(access_rows)
            .exec(txn)
            .await?;
    }
    if !refresh_rows.is_empty() {
        refresh_token::Entity::insert_many(refresh_rows)
            .exec(txn)
            .await?;
    }
    if !events.is_empty() {
        audit_event::record_many(txn, events).await?;
    }
    mark_first_tokens(txn, now, &first_tokens).await?;

    // 4. Replays, reuses and lost races, after the inserts, so a revoked grant takes the tokens
    //    this group just stored for it too.
    for i in late {
        verdicts[i] = Some(match grants[i] {
            Grant::Code {
                client_id,
                exchange,
                ..
            } => {
                let code = match exchange {
                    PreparedExchange::Replay(code) => Some((**code).clone()),
                    PreparedExchange::Fresh(fresh) => {
                        authorization_code::Entity::find_by_id(fresh.code.id.clone())
                            .one(txn)
                            .await?
                    }
                };
                match code {
                    Some(code) if code.exchanged_at.is_some() => Verdict::RefusedCode(
                        code_exchange::refuse_replay(txn, &code, client_id, now).await?,
                    ),
                    _ => Verdict::RefusedCode(
                        OAuthError::invalid_grant("the authorization code was revoked").into(),
                    ),
                }
            }
            Grant::Refresh { client_id, refresh } => {
                let row = match refresh {
                    PreparedRefresh::Reuse(row) => Some((**row).clone()),
                    PreparedRefresh::Rotate(rotation) => {
                        refresh_token::Entity::find_by_id(rotation.row.id.clone())
                            .one(txn)
                            .await?
                    }
                };
                match row {
                    Some(row) if row.consumed_at.is_some() && row.revoked_at.is_none() => {
                        Verdict::RefusedRefresh(
                            refresh_family::refuse_reuse(txn, &row, client_id, now).await?,
                        )
                    }
                    Some(row) if row.consumed_at.is_some() => {
                        // Reused after its family was revoked: refused, already revoked.
                        Verdict::RefusedRefresh(RefreshFailure {
                            error: OAuthError::invalid_grant("the refresh token was already used"),
                            family_revoked_for: Some(row.user_id),
                        })
                    }
                    _ => Verdict::RefusedRefresh(
                        OAuthError::invalid_grant("the refresh token was revoked").into(),
                    ),
                }
            }
            Grant::ClientCredentials { .. } => Verdict::Stored,
        });
    }
    Ok(verdicts
        .into_iter()
        .map(|v| v.unwrap_or(Verdict::Stored))
        .collect())
}

/// `?, ?, …` for `n` values, numbered from `first` on PostgreSQL.
fn placeholders(backend: sea_orm::DbBackend, first: usize, n: usize) -> String {
    (0..n)
        .map(|i| match backend {
            sea_orm::DbBackend::Postgres => format!("${}", first + i),
            _ => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Marks the codes `ids` exchanged where none was exchanged or revoked yet; the ids that were.
async fn claim_codes(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    ids: &[&str],
) -> Result<HashSet<String>, DbErr> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let backend = txn.get_database_backend();
    let unique: Vec<&str> = {
        let mut seen = HashSet::new();
        ids.iter().copied().filter(|id| seen.insert(*id)).collect()
    };
    let at = placeholders(backend, 1, 1);
    let sql = format!(
        "UPDATE authorization_codes SET exchanged_at = {at} WHERE exchanged_at IS NULL \
         AND revoked_at IS NULL AND id IN ({}) RETURNING id",
        placeholders(backend, 2, unique.len())
    );
    let mut values: Vec<Value> = vec![now.into()];
    values.extend(unique.iter().map(|id| Value::from(*id)));
    returned_ids(txn, Statement::from_sql_and_values(backend, sql, values)).await
}

/// Consumes the refresh tokens of `rotations` ((presented id, successor id)) where none was
/// consumed or revoked yet, recording each successor; the presented ids that were.
async fn claim_refresh_tokens(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    rotations: &[(&str, &str)],
) -> Result<HashSet<String>, DbErr> {
    if rotations.is_empty() {
        return Ok(HashSet::new());
    }
    let backend = txn.get_database_backend();
    // The first rotation per presented token names its successor (it is the one that wins).
    let mut successors: HashMap<&str, &str> = HashMap::new();
    let mut order = Vec::new();
    for (id, successor) in rotations {
        if !successors.contains_key(id) {
            successors.insert(id, successor);
            order.push(*id);
        }
    }
    let mut values: Vec<Value> = vec![now.into()];
    let mut n = 2;
    let mut cases = String::new();
    for id in &order {
        let p = placeholders(backend, n, 2);
        let (a, b) = p.split_once(", ").unwrap_or((&p, &p));
        cases.push_str(&format!(" WHEN {a} THEN {b}"));
        values.push(Value::from(*id));
        values.push(Value::from(successors[id]));
        n += 2;
    }
    let sql = format!(
        "UPDATE refresh_tokens SET consumed_at = {}, replaced_by = CASE id{cases} END \
         WHERE consumed_at IS NULL AND revoked_at IS NULL AND id IN ({}) RETURNING id",
        placeholders(backend, 1, 1),
        placeholders(backend, n, order.len())
    );
    values.extend(order.iter().map(|id| Value::from(*id)));
    returned_ids(txn, Statement::from_sql_and_values(backend, sql, values)).await
}

async fn returned_ids(
    txn: &impl ConnectionTrait,
    statement: Statement,
) -> Result<HashSet<String>, DbErr> {
    let rows = txn.query_all_raw(statement).await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect()
}

/// Records the first token of the clients `ids` (dynamically registered clients that never get
/// one are purged, see [`super::registration::purge_unused`]).
async fn mark_first_tokens(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    ids: &[&str],
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    use sea_orm::{ColumnTrait, QueryFilter, sea_query::Expr};
    let unique: Vec<String> = ids
        .iter()
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    oauth_client::Entity::update_many()
        .col_expr(oauth_client::Column::FirstTokenAt, Expr::value(now))
        .filter(oauth_client::Column::Id.is_in(unique))
        .filter(oauth_client::Column::FirstTokenAt.is_null())
        .exec(txn)
        .await?;
    Ok(())
}
