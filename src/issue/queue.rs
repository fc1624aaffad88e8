//! Group commit of single issuances: concurrent `POST /api/v1/credentials` requests queue for one
//! writer task, which takes whatever is waiting (up to [`MAX_GROUP`]), picks status indexes and
//! signs for all of them, stores them in ONE transaction through the same [`super::store`] the
//! batch endpoint uses, and answers each request only after the commit. While one group commits,
//! the next one is picked and signed, so signing overlaps with the commit.
//!
//! Each request keeps its own result: an unknown achievement or an unsignable credential fails that
//! request only. When the shared transaction fails for a reason other than a lost race or an
//! unreachable database, nothing of the group was stored: each request is then prepared and stored
//! on its own, so one caller's bad request can never fail another's issuance.

use std::{collections::HashMap, sync::Arc};

use tokio::sync::{mpsc, oneshot};

use crate::keys::store::KeyError;

use super::{Award, Context, IssueError, Issued, Part, ProofFormat, context, prepare_part, store};
use crate::{app::AppState, db};

/// Most requests stored in one transaction.
pub const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Issued, IssueError>>;

/// One queued single issuance.
pub struct Request {
    achievement_id: String,
    award: Award,
    format: ProofFormat,
    actor: String,
    reply: Reply,
}

/// The queue in front of the issuance writer (see [`run`]).
pub type IssuanceQueue = crate::writer::WriterQueue<Request>;

/// Issues one credential through the writer: answers once it is signed and committed.
pub async fn issue_one(
    state: &AppState,
    achievement_id: String,
    award: Award,
    format: ProofFormat,
    actor: &str,
) -> Result<Issued, IssueError> {
    let (reply, answer) = oneshot::channel();
    state
        .issuance_queue()
        .send(Request {
            achievement_id,
            award,
            format,
            actor: actor.to_owned(),
            reply,
        })
        .await
        .map_err(|_| IssueError::Unavailable)?;
    answer.await.map_err(|_| IssueError::Unavailable)?
}

/// Requests of one achievement, format and actor within a group.
struct Pending {
    achievement_id: String,
    format: ProofFormat,
    actor: String,
    awards: Vec<Award>,
    replies: Vec<Reply>,
}

/// A group whose contexts are resolved, one entry per (achievement, format, actor).
struct Group {
    pending: Vec<(Arc<Context>, Pending)>,
}

/// The writer: runs until every sender is gone (or the task is aborted at shutdown).
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Request>) {
    let mut committing: Option<tokio::task::JoinHandle<()>> = None;
    let mut buf = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut buf, MAX_GROUP).await > 0 {
        let requests = std::mem::replace(&mut buf, Vec::with_capacity(MAX_GROUP));
        let group = resolve(&state, requests).await;
        let parts = prepare(&state, &group).await;
        // One commit at a time: the next group was signed while the previous one committed.
        if let Some(previous) = committing.take()
            && let Err(err) = previous.await
        {
            tracing::error!(error = %err, "issuance commit task failed");
        }
        let state = state.clone();
        committing = Some(tokio::spawn(commit(state, group, parts)));
    }
    if let Some(previous) = committing
        && let Err(err) = previous.await
    {
        tracing::error!(error = %err, "issuance commit task failed");
    }
}

/// Splits requests by (achievement, format, actor), keeping arrival order within each, and
/// resolves each achievement's context; requests whose context fails are answered here.
async fn resolve(state: &AppState, requests: Vec<Request>) -> Group {
    let mut order: Vec<Pending> = Vec::new();
    let mut index: HashMap<(String, ProofFormat, String), usize> = HashMap::new();
    for r in requests {
        // By the full format: a JCS and an RDFC issuance share `as_str` but not a part.
        let key = (r.achievement_id.clone(), r.format, r.actor.clone());
        let i = *index.entry(key).or_insert_with(|| {
            order.push(Pending {
                achievement_id: r.achievement_id.clone(),
                format: r.format,
                actor: r.actor.clone(),
                awards: Vec::new(),
                replies: Vec::new(),
            });
            order.len() - 1
        });
        if let Some(p) = order.get_mut(i) {
            p.awards.push(r.award);
            p.replies.push(r.reply);
        }
    }
    let mut pending = Vec::with_capacity(order.len());
    for p in order {
        match context(state, &p.achievement_id).await {
            Ok(ctx) => pending.push((ctx, p)),
            Err(first) => {
                // Errors are not Clone: each further request gets its own answer from a fresh
                // look-up (a look-up that now succeeds means a transient failure: retry).
                let mut replies = p.replies.into_iter();
                if let Some(reply) = replies.next() {
                    let _ = reply.send(Err(first));
                }
                for reply in replies {
                    let err = context(state, &p.achievement_id)
                        .await
                        .err()
                        .unwrap_or(IssueError::Contention);
                    let _ = reply.send(Err(err));
                }
            }
        }
    }
    Group { pending }
}

/// Picks indexes and signs for every part of the group.
async fn prepare(state: &AppState, group: &Group) -> Vec<Result<Part, IssueError>> {
    let mut parts = Vec::with_capacity(group.pending.len());
    for (ctx, p) in &group.pending {
        parts.push(prepare_part(state, ctx.clone(), &p.awards, p.format, &p.actor).await);
    }
    parts
}

/// Stores the group in one transaction (retrying lost races with fresh picks) and answers.
async fn commit(state: AppState, group: Group, parts: Vec<Result<Part, IssueError>>) {
    commit_group(state, group, parts, true).await;
}

/// [`commit`]; with `isolate`, a group that fails as a whole is retried one request at a time.
async fn commit_group(
    state: AppState,
    group: Group,
    mut parts: Vec<Result<Part, IssueError>>,
    isolate: bool,
) {
    let mut pending = group.pending;
    for attempt in 0..5 {
        // Parts that could not be prepared (database failure while picking) are answered now.
        let mut ready = Vec::with_capacity(parts.len());
        let mut waiting = Vec::with_capacity(parts.len());
        for ((ctx, p), part) in pending.into_iter().zip(parts) {
            match part {
                Ok(part) => {
                    ready.push(part);
                    waiting.push((ctx, p));
                }
                Err(err) => answer_all(p.replies, &err),
            }
        }
        pending = waiting;
        if ready.is_empty() {
            return;
        }
        match store(&state, ready).await {
            Ok(results) => {
                for ((_, p), results) in pending.into_iter().zip(results) {
                    for (reply, result) in p.replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                return;
            }
            Err(IssueError::Db(err)) if db::is_retryable(&err) => {
                tracing::debug!(attempt, error = %err, "grouped issuance lost a race; picking again");
                db::retry_backoff().await;
                let group = Group { pending };
                parts = prepare(&state, &group).await;
                pending = group.pending;
            }
            Err(err) => {
                let requests: usize = pending.iter().map(|(_, p)| p.replies.len()).sum();
                let unreachable = matches!(
                    err,
                    IssueError::Unavailable
                        | IssueError::Db(sea_orm::DbErr::ConnectionAcquire(_))
                        | IssueError::Db(sea_orm::DbErr::Conn(_))
                );
                if isolate && requests > 1 && !unreachable {
                    tracing::warn!(
                        requests,
                        error = %err,
                        "a grouped issuance failed; storing its requests one by one"
                    );
                    one_by_one(&state, pending).await;
                    return;
                }
                for (_, p) in pending {
                    answer_all(p.replies, &err);
                }
                return;
            }
        }
    }
    for (_, p) in pending {
        for reply in p.replies {
            let _ = reply.send(Err(IssueError::Contention));
        }
    }
}

/// Prepares (fresh status indexes, a new signature) and stores each request of a failed group on
/// its own, in arrival order within each part.
async fn one_by_one(state: &AppState, pending: Vec<(Arc<Context>, Pending)>) {
    for (ctx, p) in pending {
        for (award, reply) in p.awards.into_iter().zip(p.replies) {
            let single = Pending {
                achievement_id: p.achievement_id.clone(),
                format: p.format,
                actor: p.actor.clone(),
                awards: vec![award],
                replies: vec![reply],
            };
            let group = Group {
                pending: vec![(ctx.clone(), single)],
            };
            let parts = prepare(state, &group).await;
            Box::pin(commit_group(state.clone(), group, parts, false)).await;
        }
    }
}

/// Answers every request of a part with the same failure.
fn answer_all(replies: Vec<Reply>, err: &IssueError) {
    for reply in replies {
        let _ = reply.send(Err(replicate(err)));
    }
}

/// A copy of a group-wide failure for each request of the group. Only database failures and lost
/// races happen group-wide; anything else is reported as a database failure with its text.
fn replicate(err: &IssueError) -> IssueError {
    match err {
        IssueError::Db(db) => IssueError::Db(db.clone()),
        IssueError::Contention => IssueError::Contention,
        IssueError::Unavailable => IssueError::Unavailable,
        IssueError::NotFound(what) => IssueError::NotFound(what),
        IssueError::Unsignable(why) => IssueError::Unsignable(why.clone()),
        IssueError::Key(KeyError::NoActiveKey(issuer)) => {
            IssueError::Key(KeyError::NoActiveKey(issuer.clone()))
        }
        IssueError::Key(KeyError::AlgorithmNotSupported { issuer, algorithm }) => {
            IssueError::Key(KeyError::AlgorithmNotSupported {
                issuer: issuer.clone(),
                algorithm: *algorithm,
            })
        }
        other => IssueError::Db(sea_orm::DbErr::Custom(other.to_string())),
    }
}
