//! Public status documents: W3C Bitstring Status List credentials and 1EdTech revocation lists.

use poem::web::Data;

use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Header, Path},
};

use super::ApiTags;
use crate::{app::AppState, error::ApiError, status::lists};

/// A signed status list.
#[derive(ApiResponse)]
pub enum StatusListResponse {
    /// The `BitstringStatusListCredential`, signed with eddsa-rdfc-2022.
    #[oai(status = 200, content_type = "application/vc+ld+json")]
    Ok(
        super::documented::JsonText,
        /// Strong entity tag; it changes with every status change.
        #[oai(header = "ETag")]
        String,
        /// `max-age` equals the list's `ttl`.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// Unchanged since `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// Strong entity tag.
        #[oai(header = "ETag")]
        String,
    ),
}

/// Public status documents.
pub struct StatusApi;

#[OpenApi(tag = "ApiTags::Status")]
impl StatusApi {
    /// A W3C Bitstring Status List credential (revocation or suspension). Served from a cache that
    /// every status change invalidates, so a change is visible on the very next request.
    #[oai(
        path = "/status/:list_id",
        method = "get",
        operation_id = "getStatusList"
    )]
    async fn status_list(
        &self,
        state: Data<&AppState>,
        /// Status list id.
        list_id: Path<String>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<StatusListResponse, ApiError> {
        let list = lists::signed_list(&state, &list_id.0).await?;
        if super::publication::matches(if_none_match.0.as_deref(), &list.etag) {
            return Ok(StatusListResponse::NotModified(list.etag.clone()));
        }
        Ok(StatusListResponse::Ok(
            super::documented::JsonText(list.body.clone()),
            list.etag.clone(),
            format!("public, max-age={}", list.max_age),
        ))
    }

    /// The issuer's 1EdTech revocation list: `{"revokedCredential": [{id, revoked, revocationReason}]}`.
    /// Always current (each request checks the issuer's revocation lists' versions); served from
    /// memory while they are unchanged, with a strong ETag and 304 on `If-None-Match`.
    #[oai(
        path = "/revocations/:issuer_id",
        method = "get",
        operation_id = "getRevocationList"
    )]
    async fn revocation_list(
        &self,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        issuer_id: Path<String>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<RevocationListResponse, ApiError> {
        let doc = lists::revocation_document(&state, &issuer_id.0).await?;
        if super::publication::matches(if_none_match.0.as_deref(), &doc.etag) {
            return Ok(RevocationListResponse::NotModified(doc.etag.clone()));
        }
        Ok(RevocationListResponse::Ok(
            RawJson::<RevocationList>::new(doc.body.clone()),
            doc.etag.clone(),
            "no-cache".to_owned(),
        ))
    }
}

/// The 1EdTech revocation list document (for the OpenAPI description; the body is served as
/// serialized once).
#[derive(poem_openapi::Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct RevocationList {
    /// Every revoked credential of the issuer.
    pub revoked_credential: Vec<RevokedCredential>,
}

/// One revoked credential.
#[derive(poem_openapi::Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct RevokedCredential {
    /// The credential's `id`.
    pub id: String,
    /// Always `true`.
    pub revoked: bool,
    /// The reason given when it was revoked.
    pub revocation_reason: Option<String>,
}

/// A JSON body already serialized, described in OpenAPI by the schema of `T`.
pub struct RawJson<T> {
    body: String,
    _schema: std::marker::PhantomData<fn() -> T>,
}

impl<T> RawJson<T> {
    fn new(body: String) -> Self {
        Self {
            body,
            _schema: std::marker::PhantomData,
        }
    }
}

impl<T: poem_openapi::types::Type> poem_openapi::payload::Payload for RawJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }
}

impl<T: Send> poem::IntoResponse for RawJson<T> {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(self.body)
    }
}

/// The 1EdTech revocation list.
#[derive(ApiResponse)]
pub enum RevocationListResponse {
    /// The list.
    #[oai(status = 200)]
    Ok(
        RawJson<RevocationList>,
        /// Strong entity tag; it changes with every revocation.
        #[oai(header = "ETag")]
        String,
        /// `no-cache`: revalidate (cheaply, with the ETag) before reuse.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// Unchanged since `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// Strong entity tag.
        #[oai(header = "ETag")]
        String,
    ),
}
