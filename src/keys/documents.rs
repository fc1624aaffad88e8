//! Public documents built from the key store: an issuer's did:web DID document and the JWKS of all
//! issuers. Every non-revoked key of every algorithm is listed, so credentials signed by retired
//! keys keep verifying.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use super::{
    identity::{IdType, verification_method_id},
    publish,
    store::state,
};
use crate::db::{issuer, signing_key};

/// Keys of `issuer` that are still published (active and retired), oldest first.
async fn published_keys(
    db: &impl ConnectionTrait,
    issuer_id: &str,
) -> Result<Vec<signing_key::Model>, DbErr> {
    signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(issuer_id))
        .filter(signing_key::Column::State.ne(state::REVOKED))
        .order_by_asc(signing_key::Column::CreatedAt)
        .order_by_asc(signing_key::Column::Id)
        .all(db)
        .await
}

/// The published keys of `issuer` as verification methods (controller = the issuer id): Ed25519
/// keys as `Multikey`, P-256 keys as JWK methods with `publicKeyJwk` (what ES256 JWT verifiers
/// read). What its DID document lists, and what the verifier resolves our own issuers' keys from.
pub async fn verification_methods(
    db: &impl ConnectionTrait,
    issuer: &issuer::Model,
) -> Result<Vec<Value>, DbErr> {
    let keys = published_keys(db, &issuer.id).await?;
    let mut methods = Vec::with_capacity(keys.len());
    for key in &keys {
        let Ok(public) = publish::PublicKey::from_multibase(&key.public_key) else {
            tracing::error!(key = %key.id, "stored public key does not parse; not published");
            continue;
        };
        methods.push(
            public.verification_method(&verification_method_id(issuer, key), &issuer.issuer_id),
        );
    }
    Ok(methods)
}

/// The DID document of a did:web issuer: every published key as a verification method (controller
/// = the issuer DID) referenced from `assertionMethod`. `None` for other id types.
pub async fn did_document(
    db: &impl ConnectionTrait,
    issuer: &issuer::Model,
) -> Result<Option<Value>, DbErr> {
    if issuer.id_type != IdType::DidWeb.as_str() {
        return Ok(None);
    }
    let methods = verification_methods(db, issuer).await?;
    let ids: Vec<Value> = methods.iter().map(|m| m["id"].clone()).collect();
    let mut context = vec![
        json!("https://www.w3.org/ns/did/v1"),
        json!("https://w3id.org/security/multikey/v1"),
    ];
    if methods.iter().any(|m| m.get("publicKeyJwk").is_some()) {
        context.push(json!(publish::JWK_METHOD_CONTEXT));
    }
    Ok(Some(json!({
        "@context": context,
        "id": issuer.issuer_id,
        "verificationMethod": methods,
        "assertionMethod": ids,
    })))
}

/// The JWK Set of every issuer's published keys; `kid` is the verification-method id.
pub async fn jwks(db: &impl ConnectionTrait) -> Result<Value, DbErr> {
    let rows = signing_key::Entity::find()
        .find_also_related(issuer::Entity)
        .filter(signing_key::Column::State.ne(state::REVOKED))
        .order_by_asc(signing_key::Column::CreatedAt)
        .order_by_asc(signing_key::Column::Id)
        .all(db)
        .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for (key, issuer) in rows {
        let (Some(issuer), Ok(public)) =
            (issuer, publish::PublicKey::from_multibase(&key.public_key))
        else {
            continue;
        };
        keys.push(public.jwk(&verification_method_id(&issuer, &key)));
    }
    Ok(json!({ "keys": keys }))
}
