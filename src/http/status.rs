//! Public status documents: W3C Bitstring Status List credentials and 1EdTech revocation lists.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Header, Path},
    payload::{Json, PlainText},
};

use super::ApiTags;
use crate::{app::AppState, error::ApiError, status::lists};

/// A signed status list.
#[derive(ApiResponse)]
pub enum StatusListResponse {
    /// The `BitstringStatusListCredential`, signed with eddsa-rdfc-2022.
    #[oai(status = 200, content_type = "application/vc+ld+json")]
    Ok(
        PlainText<String>,
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
            PlainText(list.body.clone()),
            list.etag.clone(),
            format!("public, max-age={}", list.max_age),
        ))
    }

    /// The issuer's 1EdTech revocation list: `{"revokedCredential": [{id, revoked, revocationReason}]}`.
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
    ) -> Result<Json<serde_json::Value>, ApiError> {
        Ok(Json(
            lists::revocation_list(state.db(), &issuer_id.0).await?,
        ))
    }
}
