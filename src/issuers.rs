//! Issuers: creation (with their first signing key), profile updates, lookups, and the OB 3.0
//! Profile document they publish.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use url::Url;

use crate::{
    accounts::memberships::{self, MembershipError, Principal},
    db::{self, issuer, signing_key},
    keys::{
        identity::IdType,
        publish,
        store::{KeyError, KeyStore},
    },
};

/// Longest accepted name.
const MAX_NAME: usize = 200;
/// Longest accepted description.
const MAX_DESCRIPTION: usize = 10_000;
/// Longest accepted URL (image data URIs included).
const MAX_URL: usize = 65_536;

/// Issuer failures, each with the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// 422: a profile field is invalid.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// 404.
    #[error("issuer not found")]
    NotFound,
    /// 409: the well-known did:web identity is taken.
    #[error("another issuer already uses the identifier {0}")]
    IdentifierTaken(String),
    /// Key management failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> IssuerError {
    IssuerError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Validated profile fields.
#[derive(Debug, Clone, Default)]
pub struct ProfileFields {
    pub name: String,
    pub url: Option<String>,
    pub email: Option<String>,
    pub description: Option<String>,
    pub image: Option<String>,
}

/// A validated request to create an issuer.
#[derive(Debug, Clone)]
pub struct NewIssuer {
    pub profile: ProfileFields,
    pub id_type: IdType,
    /// did:web only: use the bare host DID (`did:web:<host>`, served at `/.well-known/did.json`).
    pub well_known: bool,
}

/// Checks a display name.
pub fn parse_name(name: &str) -> Result<String, IssuerError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(invalid(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Checks an http(s) URL.
pub fn parse_web_url(field: &'static str, value: &str) -> Result<String, IssuerError> {
    if value.len() > 2048 {
        return Err(invalid(field, "is too long"));
    }
    let url = Url::parse(value).map_err(|e| invalid(field, format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(field, "must be an http or https URL"));
    }
    Ok(url.to_string())
}

/// Checks an email address (shape only: one `@`, no spaces, sane length).
pub fn parse_email(value: &str) -> Result<String, IssuerError> {
    let value = value.trim();
    if !crate::ob::is_email(value) {
        return Err(invalid("email", "is not an email address"));
    }
    Ok(value.to_owned())
}

/// Checks an image reference: an http(s) URL or a `data:image/…` URI.
pub fn parse_image(value: &str) -> Result<String, IssuerError> {
    if value.starts_with("data:image/") {
        if value.len() > MAX_URL {
            return Err(invalid("image", "data URI is too large"));
        }
        return Ok(value.to_owned());
    }
    parse_web_url("image", value)
}

/// Checks a description.
pub fn parse_description(value: &str) -> Result<String, IssuerError> {
    if value.chars().count() > MAX_DESCRIPTION {
        return Err(invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// The identifier an issuer gets from its id type.
fn derive_issuer_id(
    public_url: &Url,
    id: &str,
    id_type: IdType,
    well_known: bool,
    key: Option<&signing_key::ActiveModel>,
) -> Result<String, IssuerError> {
    match id_type {
        IdType::DidWeb => {
            let segments: &[&str] = if well_known { &[] } else { &["issuers", id] };
            publish::did_web_for(public_url, segments)
                .map_err(|e| invalid("idType", format!("cannot derive did:web: {e}")))
        }
        IdType::Url => {
            let base = public_url.as_str().trim_end_matches('/');
            Ok(format!("{base}/issuers/{id}"))
        }
        IdType::DidKey => {
            let public = key
                .and_then(|k| k.public_key.try_as_ref().cloned())
                .ok_or_else(|| invalid("idType", "did:key needs a key"))?;
            Ok(format!("did:key:{public}"))
        }
    }
}

/// Creates an issuer and its first active signing key in one transaction.
pub async fn create_issuer(
    db: &DatabaseConnection,
    keys: &KeyStore,
    public_url: &Url,
    new: NewIssuer,
    actor: &str,
) -> Result<(issuer::Model, signing_key::Model), IssuerError> {
    create_owned_issuer(db, keys, public_url, new, actor, None).await
}

/// Creates an issuer and its first active signing key in one transaction; `owner` (a caller that is
/// not global) becomes the issuer's first owner in the same transaction.
pub async fn create_owned_issuer(
    db: &DatabaseConnection,
    keys: &KeyStore,
    public_url: &Url,
    new: NewIssuer,
    actor: &str,
    owner: Option<&Principal>,
) -> Result<(issuer::Model, signing_key::Model), IssuerError> {
    if new.well_known && new.id_type != IdType::DidWeb {
        return Err(invalid(
            "wellKnown",
            "only did:web issuers can use the well-known DID",
        ));
    }
    let id = db::new_id();
    let first_key = keys.prepare_key(&id)?;
    let issuer_id = derive_issuer_id(
        public_url,
        &id,
        new.id_type,
        new.well_known,
        Some(&first_key),
    )?;
    let now = Utc::now();
    let txn = db::begin_write(db).await?;
    let inserted = issuer::ActiveModel {
        id: Set(id.clone()),
        issuer_id: Set(issuer_id.clone()),
        id_type: Set(new.id_type.as_str().to_owned()),
        name: Set(new.profile.name),
        url: Set(new.profile.url),
        email: Set(new.profile.email),
        description: Set(new.profile.description),
        image: Set(new.profile.image),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await;
    let issuer = match inserted {
        Ok(issuer) => issuer,
        Err(err) if db::is_unique_violation(&err) => {
            return Err(IssuerError::IdentifierTaken(issuer_id));
        }
        Err(err) => return Err(err.into()),
    };
    let key = keys.insert_prepared_key(&txn, first_key, actor).await?;
    db::audit_event::record(
        &txn,
        actor,
        "issuer.created",
        "issuer",
        &id,
        json!({"issuerId": issuer.issuer_id, "idType": issuer.id_type}),
    )
    .await?;
    if let Some(owner) = owner {
        memberships::add_owner(&txn, &issuer.id, owner, actor)
            .await
            .map_err(|e| match e {
                MembershipError::Db(db) => IssuerError::Db(db),
                other => IssuerError::Db(DbErr::Custom(other.to_string())),
            })?;
    }
    txn.commit().await?;
    Ok((issuer, key))
}

/// A partial profile update; `Some(None)` clears an optional field.
#[derive(Debug, Default)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    pub url: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub image: Option<Option<String>>,
}

/// Applies a profile update. The identifier never changes.
pub async fn update_issuer(
    db: &DatabaseConnection,
    id: &str,
    update: ProfileUpdate,
    actor: &str,
) -> Result<issuer::Model, IssuerError> {
    let txn = db::begin_write(db).await?;
    let current = issuer::Entity::find_by_id(id.to_owned())
        .one(&txn)
        .await?
        .ok_or(IssuerError::NotFound)?;
    let mut row: issuer::ActiveModel = current.into();
    if let Some(v) = update.name {
        row.name = Set(v);
    }
    if let Some(v) = update.url {
        row.url = Set(v);
    }
    if let Some(v) = update.email {
        row.email = Set(v);
    }
    if let Some(v) = update.description {
        row.description = Set(v);
    }
    if let Some(v) = update.image {
        row.image = Set(v);
    }
    row.updated_at = Set(Utc::now());
    let updated = row.update(&txn).await?;
    db::audit_event::record(&txn, actor, "issuer.updated", "issuer", id, json!({})).await?;
    txn.commit().await?;
    Ok(updated)
}

/// One issuer by our id.
pub async fn find_issuer(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<issuer::Model, IssuerError> {
    issuer::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or(IssuerError::NotFound)
}

/// A page of issuers, oldest first, and the total count.
pub async fn list_issuers(
    db: &impl ConnectionTrait,
    limit: u64,
    offset: u64,
) -> Result<(Vec<issuer::Model>, u64), DbErr> {
    let total = issuer::Entity::find().count(db).await?;
    let items = issuer::Entity::find()
        .order_by_asc(issuer::Column::CreatedAt)
        .order_by_asc(issuer::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((items, total))
}

/// A page of the issuers in `visible` (all of them when `None`), oldest first, and their count.
pub async fn list_visible_issuers(
    db: &impl ConnectionTrait,
    visible: Option<&std::collections::HashMap<String, memberships::Role>>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<issuer::Model>, u64), DbErr> {
    let Some(visible) = visible else {
        return list_issuers(db, limit, offset).await;
    };
    let ids: Vec<String> = visible.keys().cloned().collect();
    let query = issuer::Entity::find().filter(issuer::Column::Id.is_in(ids));
    let total = query.clone().count(db).await?;
    let items = query
        .order_by_asc(issuer::Column::CreatedAt)
        .order_by_asc(issuer::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((items, total))
}

/// The OB 3.0 Profile of an issuer, as JSON-LD.
pub fn profile_document(issuer: &issuer::Model) -> Value {
    let mut doc = json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
        ],
        "id": issuer.issuer_id,
        "type": ["Profile"],
        "name": issuer.name,
    });
    if let Some(map) = doc.as_object_mut() {
        if let Some(url) = &issuer.url {
            map.insert("url".into(), json!(url));
        }
        if let Some(email) = &issuer.email {
            map.insert("email".into(), json!(email));
        }
        if let Some(description) = &issuer.description {
            map.insert("description".into(), json!(description));
        }
        if let Some(image) = &issuer.image {
            map.insert("image".into(), json!({"id": image, "type": "Image"}));
        }
    }
    doc
}
