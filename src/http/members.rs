//! Issuer members: `/api/v1/issuers/{id}/members` (owners only). Lists, adds, re-roles and removes
//! the clients and users that may act on an issuer; the last owner cannot be removed or demoted.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};

use super::tenancy;
use super::{
    ApiTags,
    auth::{Authorized, scope},
    clients::MemberRole,
};
use crate::{
    accounts::memberships::{self, Member, Principal, Role},
    app::AppState,
    error::ApiError,
    invalidation::{self, Change},
    oauth::Scope,
};

/// Whether a member is a client or a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum MemberKind {
    /// An OAuth client acting on its own behalf.
    Client,
    /// A user (through user-bound tokens).
    User,
}

/// One member of an issuer.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct MemberResource {
    /// `client` or `user`.
    pub kind: MemberKind,
    /// The client id (when `kind` is `client`).
    pub client_id: Option<String>,
    /// The user id (when `kind` is `user`).
    pub user_id: Option<String>,
    /// `owner`, `issuer` or `viewer`.
    pub role: MemberRole,
    /// When the membership was created.
    pub created_at: Option<DateTime<Utc>>,
}

impl MemberResource {
    fn new(principal: &Principal, role: Role, created_at: Option<DateTime<Utc>>) -> Self {
        let (kind, client_id, user_id) = match principal {
            Principal::Client(id) => (MemberKind::Client, Some(id.clone()), None),
            Principal::User(id) => (MemberKind::User, None, Some(id.clone())),
        };
        Self {
            kind,
            client_id,
            user_id,
            role: role.into(),
            created_at,
        }
    }
}

impl From<Member> for MemberResource {
    fn from(m: Member) -> Self {
        Self::new(&m.principal, m.role, Some(m.created_at))
    }
}

/// Add a member or change its role: exactly one of `clientId` and `userId`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SetMemberRequest {
    /// A client id.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub client_id: Option<String>,
    /// A user id.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub user_id: Option<String>,
    /// `owner`, `issuer` or `viewer`.
    pub role: MemberRole,
}

/// Outcome of setting a member.
#[derive(ApiResponse)]
pub enum SetMemberResponse {
    /// The principal was added.
    #[oai(status = 201)]
    Added(Json<MemberResource>),
    /// The member's role was changed (or already was this role).
    #[oai(status = 200)]
    Updated(Json<MemberResource>),
}

/// Removed.
#[derive(ApiResponse)]
pub enum RemoveMemberResponse {
    /// The member was removed.
    #[oai(status = 204)]
    Removed,
}

fn principal(kind: MemberKind, id: String) -> Principal {
    match kind {
        MemberKind::Client => Principal::Client(id),
        MemberKind::User => Principal::User(id),
    }
}

/// Issuer members.
pub struct MembersApi;

#[OpenApi(tag = "ApiTags::Issuers")]
impl MembersApi {
    /// List an issuer's members (clients and users) with their roles. Owners only.
    #[oai(
        path = "/api/v1/issuers/:id/members",
        method = "get",
        operation_id = "listIssuerMembers"
    )]
    async fn list(
        &self,
        #[oai(scope = "Scope::IssuersRead")] auth: Authorized<scope::IssuersRead>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
    ) -> Result<Json<Vec<MemberResource>>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Owner)?;
        crate::issuers::find_issuer(state.db(), &id).await?;
        let members = memberships::list_members(state.db(), &id).await?;
        Ok(Json(
            members.into_iter().map(MemberResource::from).collect(),
        ))
    }

    /// Add a client or user to an issuer with a role, or change a member's role (201 when added,
    /// 200 when changed). Demoting the last owner is refused with 409 `last_owner`. Owners only.
    #[oai(
        path = "/api/v1/issuers/:id/members",
        method = "put",
        operation_id = "setIssuerMember"
    )]
    async fn set(
        &self,
        #[oai(scope = "Scope::IssuersWrite")] auth: Authorized<scope::IssuersWrite>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        body: Json<SetMemberRequest>,
    ) -> Result<SetMemberResponse, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Owner)?;
        let body = body.0;
        let who = match (body.client_id, body.user_id) {
            (Some(c), None) => Principal::Client(c),
            (None, Some(u)) => Principal::User(u),
            _ => {
                return Err(ApiError::Unprocessable {
                    code: "invalid_request",
                    detail: "name exactly one of clientId and userId".into(),
                });
            }
        };
        let role = Role::from(body.role);
        let previous = memberships::set_member(state.db(), &id, &who, role, &auth.actor()).await?;
        invalidation::changed(&state, Change::Principal(who.clone())).await;
        let resource = MemberResource::new(&who, role, None);
        Ok(match previous {
            None => SetMemberResponse::Added(Json(resource)),
            Some(_) => SetMemberResponse::Updated(Json(resource)),
        })
    }

    /// Remove a member (`kind` is `client` or `user`). The last owner cannot be removed (409
    /// `last_owner`). Owners only.
    #[oai(
        path = "/api/v1/issuers/:id/members/:kind/:member_id",
        method = "delete",
        operation_id = "removeIssuerMember"
    )]
    async fn remove(
        &self,
        #[oai(scope = "Scope::IssuersWrite")] auth: Authorized<scope::IssuersWrite>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        /// `client` or `user`.
        kind: Path<MemberKind>,
        /// The client or user id.
        member_id: Path<String>,
    ) -> Result<RemoveMemberResponse, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Owner)?;
        let who = principal(kind.0, member_id.0);
        memberships::remove_member(state.db(), &id, &who, &auth.actor()).await?;
        invalidation::changed(&state, Change::Principal(who)).await;
        Ok(RemoveMemberResponse::Removed)
    }
}
