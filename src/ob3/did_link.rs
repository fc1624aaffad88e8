//! Linking a DID to an account: the user asks for a nonce, signs a DID-auth Verifiable
//! Presentation with it (`holder` = the DID, a Data Integrity proof with `proofPurpose`
//! `authentication`, `challenge` = the nonce, `domain` = this service's host), and this service's
//! verifier checks it (did:key offline, did:web over the hardened client). Nonces are single use
//! (spent by the first presentation that names them, valid or not) and expire after
//! [`CHALLENGE_TTL_SECS`]; only their SHA-256 is stored. A DID belongs to at most one user.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use serde_json::Value;

use crate::{
    app::AppState,
    db::{did_challenge, user_did},
    oauth::tokens::{hash_secret, random_secret},
    verify::{
        self, VerifyOptions,
        input::{Source, Submitted},
        report::{CheckStatus, Outcome},
    },
};
use secrecy::ExposeSecret;

/// How long a nonce can be used.
pub const CHALLENGE_TTL_SECS: i64 = 600;

/// Why a DID could not be linked or unlinked.
#[derive(Debug, thiserror::Error)]
pub enum DidLinkError {
    /// 422: the presentation is not a DID-auth presentation for an open challenge of this user,
    /// or it did not verify.
    #[error("{0}")]
    Rejected(String),
    /// 409: another account already linked this DID.
    #[error("this DID is linked to another account")]
    Taken,
    /// 404: the DID is not linked to this account.
    #[error("this DID is not linked to your account")]
    NotFound,
    /// Database failure (500).
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A fresh challenge.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub nonce: String,
    pub expires_at: DateTime<Utc>,
}

/// The `domain` a presentation must name: the public URL's host, with its port when it is not
/// the scheme's default.
pub fn expected_domain(public_url: &url::Url) -> String {
    let host = public_url.host_str().unwrap_or("localhost");
    match public_url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Issues a nonce for `user_id`.
pub async fn create_challenge(
    db: &DatabaseConnection,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Challenge, DbErr> {
    let nonce = random_secret("oxbdc_").expose_secret().to_owned();
    let expires_at = now + Duration::seconds(CHALLENGE_TTL_SECS);
    did_challenge::Entity::delete_many()
        .filter(did_challenge::Column::UserId.eq(user_id))
        .filter(did_challenge::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    did_challenge::ActiveModel {
        nonce_hash: Set(hash_secret(&nonce)),
        user_id: Set(user_id.to_owned()),
        expires_at: Set(expires_at),
    }
    .insert(db)
    .await?;
    Ok(Challenge { nonce, expires_at })
}

fn proof_challenges(vp: &Value) -> Vec<String> {
    let proofs = match vp.get("proof") {
        Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    proofs
        .iter()
        .filter_map(|p| {
            p.get("challenge")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// Verifies `presentation` against an open challenge of `user_id` and links its holder DID.
pub async fn link(
    state: &AppState,
    user_id: &str,
    presentation: Value,
    now: DateTime<Utc>,
) -> Result<String, DidLinkError> {
    let db = state.db();
    let reject = |m: &str| DidLinkError::Rejected(m.to_owned());
    let is_vp = match presentation.get("type") {
        Some(Value::String(t)) => t == "VerifiablePresentation",
        Some(Value::Array(ts)) => ts
            .iter()
            .any(|t| t.as_str() == Some("VerifiablePresentation")),
        _ => false,
    };
    if !is_vp {
        return Err(reject("the body must be a VerifiablePresentation"));
    }
    let holder = presentation
        .get("holder")
        .and_then(|h| h.as_str().or_else(|| h.get("id").and_then(Value::as_str)))
        .map(str::to_owned)
        .filter(|h| h.starts_with("did:"))
        .ok_or_else(|| reject("the presentation's `holder` must be the DID to link"))?;
    // Spend the nonce first: a presentation gets one try.
    let mut nonce = None;
    for candidate in proof_challenges(&presentation) {
        let spent = did_challenge::Entity::delete_many()
            .filter(did_challenge::Column::NonceHash.eq(hash_secret(&candidate)))
            .filter(did_challenge::Column::UserId.eq(user_id))
            .filter(did_challenge::Column::ExpiresAt.gt(now))
            .exec(db)
            .await?
            .rows_affected;
        if spent > 0 {
            nonce = Some(candidate);
            break;
        }
    }
    let nonce = nonce.ok_or_else(|| {
        reject("the proof's `challenge` is not an open challenge of this account (unknown, used or expired)")
    })?;
    let options = VerifyOptions {
        challenge: Some(nonce),
        domain: Some(expected_domain(state.public_url())),
        ..VerifyOptions::default()
    };
    let report = verify::verify(state, Submitted::Json(presentation, Source::Json), &options).await;
    let proof_ok = report
        .checks
        .iter()
        .any(|c| c.check == "presentation_proof" && c.status == CheckStatus::Passed);
    let binding_ok = report
        .checks
        .iter()
        .any(|c| c.check == "presentation_binding" && c.status == CheckStatus::Passed);
    if report.kind != "presentation"
        || !proof_ok
        || !binding_ok
        || report.outcome == Outcome::Invalid
    {
        let why = report
            .checks
            .iter()
            .filter(|c| c.status != CheckStatus::Passed && c.status != CheckStatus::Skipped)
            .map(|c| {
                let detail = c
                    .problem
                    .as_ref()
                    .map(|p| p.detail.clone())
                    .or_else(|| c.detail.clone());
                format!("{}: {}", c.check, detail.unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(DidLinkError::Rejected(format!(
            "the presentation did not verify as a DID-auth proof by {holder}: {why}"
        )));
    }
    match user_did::Entity::find_by_id(holder.clone()).one(db).await? {
        Some(row) if row.user_id == user_id => return Ok(holder),
        Some(_) => return Err(DidLinkError::Taken),
        None => {}
    }
    user_did::ActiveModel {
        did: Set(holder.clone()),
        user_id: Set(user_id.to_owned()),
        linked_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => DidLinkError::Taken,
        _ => DidLinkError::Db(e),
    })?;
    tracing::info!(user_id, did = %holder, "DID linked");
    Ok(holder)
}

/// The user's linked DIDs, oldest first.
pub async fn list(db: &DatabaseConnection, user_id: &str) -> Result<Vec<user_did::Model>, DbErr> {
    user_did::Entity::find()
        .filter(user_did::Column::UserId.eq(user_id))
        .order_by_asc(user_did::Column::LinkedAt)
        .all(db)
        .await
}

/// Unlinks a DID; its credentials leave the collection at the next read.
pub async fn unlink(db: &DatabaseConnection, user_id: &str, did: &str) -> Result<(), DidLinkError> {
    let removed = user_did::Entity::delete_many()
        .filter(user_did::Column::Did.eq(did))
        .filter(user_did::Column::UserId.eq(user_id))
        .exec(db)
        .await?
        .rows_affected;
    if removed == 0 {
        return Err(DidLinkError::NotFound);
    }
    tracing::info!(user_id, did, "DID unlinked");
    Ok(())
}
