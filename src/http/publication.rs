//! Public, cacheable documents: did:web DID documents, issuer Profiles and the JWKS. Responses carry a
//! strong ETag (a hash of the body) and answer `If-None-Match` with 304.

use poem::web::Data;
use poem_openapi::{ApiResponse, OpenApi, param::Header, param::Path, payload::Json};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use super::ApiTags;
use crate::{
    app::AppState, db::issuer, error::ApiError, issuers, keys::documents, keys::identity::IdType,
};

/// Seconds public documents may be cached. Short, so that rotations and revocations show soon.
const MAX_AGE: &str = "public, max-age=300";

/// A cacheable JSON document.
#[derive(ApiResponse)]
pub enum CachedJson {
    /// The document.
    #[oai(status = 200)]
    Ok(
        Json<Value>,
        /// Strong entity tag of the body.
        #[oai(header = "ETag")]
        String,
        /// Caching policy.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// Unchanged since the tag in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// Strong entity tag of the body.
        #[oai(header = "ETag")]
        String,
    ),
}

/// Strong ETag of a JSON value as serialized.
fn etag_of(doc: &Value) -> String {
    crate::cache::strong_etag(&doc.to_string())
}

/// Whether `If-None-Match` matches `etag` (a list of tags, weak tags compared weakly, or `*`).
pub(crate) fn matches(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
    })
}

fn cached(doc: Value, if_none_match: Option<&str>) -> CachedJson {
    let etag = etag_of(&doc);
    if matches(if_none_match, &etag) {
        CachedJson::NotModified(etag)
    } else {
        CachedJson::Ok(Json(doc), etag, MAX_AGE.to_owned())
    }
}

/// Public documents (no token).
pub struct PublicationApi;

#[OpenApi(tag = "ApiTags::Publication")]
impl PublicationApi {
    /// The did:web DID document of an issuer: every non-revoked key as a verification method under
    /// `assertionMethod` (Ed25519 as `Multikey`, P-256 as `JsonWebKey2020` with `publicKeyJwk`), so
    /// credentials signed before a rotation keep verifying.
    #[oai(
        path = "/issuers/:id/did.json",
        method = "get",
        operation_id = "getIssuerDidDocument"
    )]
    async fn did_document(
        &self,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<CachedJson, ApiError> {
        let issuer = issuers::find_issuer(state.db(), &id.0).await?;
        if crate::keys::identity::is_host_did(&issuer.issuer_id) {
            // The well-known issuer's DID document lives at /.well-known/did.json.
            return Err(ApiError::NotFound {
                what: "DID document",
            });
        }
        let doc =
            documents::did_document(state.db(), &issuer)
                .await?
                .ok_or(ApiError::NotFound {
                    what: "DID document",
                })?;
        Ok(cached(doc, if_none_match.0.as_deref()))
    }

    /// The DID document of the issuer that holds the host's bare did:web identifier.
    #[oai(
        path = "/.well-known/did.json",
        method = "get",
        operation_id = "getWellKnownDidDocument"
    )]
    async fn well_known_did_document(
        &self,
        state: Data<&AppState>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<CachedJson, ApiError> {
        let did = crate::keys::publish::did_web_for(state.public_url(), &[])
            .map_err(ApiError::internal)?;
        let issuer = issuer::Entity::find()
            .filter(issuer::Column::IssuerId.eq(did))
            .filter(issuer::Column::IdType.eq(IdType::DidWeb.as_str()))
            .one(state.db())
            .await?
            .ok_or(ApiError::NotFound {
                what: "DID document",
            })?;
        let doc =
            documents::did_document(state.db(), &issuer)
                .await?
                .ok_or(ApiError::NotFound {
                    what: "DID document",
                })?;
        Ok(cached(doc, if_none_match.0.as_deref()))
    }

    /// The issuer's Open Badges 3.0 Profile as JSON-LD.
    #[oai(
        path = "/issuers/:id",
        method = "get",
        operation_id = "getIssuerProfile"
    )]
    async fn profile(
        &self,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<CachedJson, ApiError> {
        let issuer = issuers::find_issuer(state.db(), &id.0).await?;
        Ok(cached(
            issuers::profile_document(&issuer),
            if_none_match.0.as_deref(),
        ))
    }

    /// Public JWKs of every issuer's published keys (Ed25519 as OKP/EdDSA, P-256 as EC/ES256),
    /// `kid` = verification-method id.
    #[oai(
        path = "/.well-known/jwks.json",
        method = "get",
        operation_id = "getJwks"
    )]
    async fn jwks(
        &self,
        state: Data<&AppState>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<CachedJson, ApiError> {
        let doc = documents::jwks(state.db()).await?;
        Ok(cached(doc, if_none_match.0.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let tag = "\"abc\"";
        assert!(matches(Some("\"abc\""), tag));
        assert!(matches(Some("\"x\", \"abc\""), tag));
        assert!(matches(Some("W/\"abc\""), tag));
        assert!(matches(Some("*"), tag));
        assert!(!matches(Some("\"abd\""), tag));
        assert!(!matches(None, tag));
    }
}
