//! Idempotency records: a retried request with the same key gets the stored response.
//!
//! A key is claimed (a row with an empty `response`) before the work starts; the answer is written
//! in the transaction that stores the work ([`finish`]), so a key is either pending with nothing of
//! its work committed, or answered. While it works, the claiming instance renews the claim's lease
//! ([`renew`]); a pending key whose lease ran out belongs to a worker that died and is taken over
//! by the next retry ([`claim`]). A worker whose key was taken over cannot commit: [`finish`]
//! matches no row and its transaction is rolled back.
use chrono::{TimeDelta, Utc};
use sea_orm::{ActiveModelTrait, Condition, ConnectionTrait, Set, entity::prelude::*};

/// An idempotency row, unique per (client, key).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub client_id: String,
    pub key: String,
    /// SHA-256 of the request body (a reused key with another body is refused).
    pub request_hash: String,
    /// The response body that was sent (empty while pending).
    pub response: String,
    pub created_at: DateTimeUtc,
    /// While pending: the claim is valid until then (renewed by the worker). Rows claimed before
    /// leases existed have none and fall back to [`LEGACY_STALE_PENDING`] after `created_at`.
    pub lease_until: Option<DateTimeUtc>,
    /// The process (boot id) that claimed the key.
    pub owner: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// How long a claim stays valid without renewal. A worker renews it every [`LEASE_RENEW`], so
/// only a dead (or cut-off) worker lets it run out.
pub const LEASE: TimeDelta = TimeDelta::seconds(6);

/// How often a worker renews its claim.
pub const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(2);

/// Pending rows without a lease (claimed by an older version) are stale after this long.
pub const LEGACY_STALE_PENDING: TimeDelta = TimeDelta::minutes(15);

/// This process's boot id, recorded as the owner of the keys it claims.
pub fn boot_id() -> &'static str {
    static BOOT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT_ID.get_or_init(super::new_id)
}

/// The outcome of [`claim`].
#[derive(Debug)]
pub enum Claimed {
    /// The key is ours (row id): do the work, then [`finish`] in its transaction.
    Fresh(String),
    /// The key was answered before: this is the stored response.
    Answered(String),
    /// The key was used with another request body.
    Reused,
    /// Another live worker holds the key; retry after about this long.
    InProgress(std::time::Duration),
}

/// Claims `key` for `client_id`, takes over a pending claim whose lease ran out, or returns the
/// stored answer.
pub async fn claim(
    db: &impl ConnectionTrait,
    client_id: &str,
    key: &str,
    request_hash: &str,
) -> Result<Claimed, DbErr> {
    let now = Utc::now();
    let existing = Entity::find()
        .filter(Column::ClientId.eq(client_id))
        .filter(Column::Key.eq(key))
        .one(db)
        .await?;
    if let Some(row) = existing {
        if row.request_hash != request_hash {
            return Ok(Claimed::Reused);
        }
        if !row.response.is_empty() {
            return Ok(Claimed::Answered(row.response));
        }
        let expires = row
            .lease_until
            .unwrap_or(row.created_at + LEGACY_STALE_PENDING);
        if expires > now {
            return Ok(Claimed::InProgress(
                (expires - now).to_std().unwrap_or_default(),
            ));
        }
        // Dead worker: nothing of its work committed (the answer commits with it). The delete is
        // conditional on the row still being pending with an expired lease, so one retry wins and
        // a worker that renewed or finished meanwhile keeps its key.
        let removed = Entity::delete_many()
            .filter(Column::Id.eq(&row.id))
            .filter(Column::Response.eq(""))
            .filter(
                Condition::any().add(Column::LeaseUntil.lt(now)).add(
                    Condition::all()
                        .add(Column::LeaseUntil.is_null())
                        .add(Column::CreatedAt.lt(now - LEGACY_STALE_PENDING)),
                ),
            )
            .exec(db)
            .await?
            .rows_affected;
        if removed == 0 {
            return Ok(Claimed::InProgress(LEASE_RENEW));
        }
        tracing::warn!(
            key_row = %row.id,
            owner = row.owner.as_deref().unwrap_or("unknown"),
            "took over a pending idempotency key whose worker stopped renewing it"
        );
    }
    let id = super::new_id();
    let inserted = ActiveModel {
        id: Set(id.clone()),
        client_id: Set(client_id.to_owned()),
        key: Set(key.to_owned()),
        request_hash: Set(request_hash.to_owned()),
        response: Set(String::new()),
        created_at: Set(now),
        lease_until: Set(Some(now + LEASE)),
        owner: Set(Some(boot_id().to_owned())),
    }
    .insert(db)
    .await;
    match inserted {
        Ok(_) => Ok(Claimed::Fresh(id)),
        Err(err) if super::is_unique_violation(&err) => Ok(Claimed::InProgress(LEASE_RENEW)),
        Err(err) => Err(err),
    }
}

/// Extends the lease of a pending claim. False when the claim is gone (taken over or released).
pub async fn renew(db: &impl ConnectionTrait, row_id: &str) -> Result<bool, DbErr> {
    let updated = Entity::update_many()
        .col_expr(Column::LeaseUntil, Expr::value(Some(Utc::now() + LEASE)))
        .filter(Column::Id.eq(row_id))
        .filter(Column::Response.eq(""))
        .exec(db)
        .await?
        .rows_affected;
    Ok(updated == 1)
}

/// Stores the answer of a pending claim, inside the transaction that commits its work. False when
/// the claim is no longer ours (another retry took it over): the caller must roll back.
pub async fn finish(
    txn: &impl ConnectionTrait,
    row_id: &str,
    response: String,
) -> Result<bool, DbErr> {
    let updated = Entity::update_many()
        .col_expr(Column::Response, Expr::value(response))
        .col_expr(Column::LeaseUntil, Expr::value(Option::<DateTimeUtc>::None))
        .filter(Column::Id.eq(row_id))
        .filter(Column::Response.eq(""))
        .exec(txn)
        .await?
        .rows_affected;
    Ok(updated == 1)
}

/// Gives up a pending claim whose work committed nothing (a retry starts afresh).
pub async fn release(db: &impl ConnectionTrait, row_id: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::Id.eq(row_id))
        .filter(Column::Response.eq(""))
        .exec(db)
        .await?;
    Ok(())
}
