//! Administration of people (scope `admin`): create staff accounts and list users.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query, payload::Json};

use super::{
    ApiTags,
    account::account_error,
    auth::{Authorized, scope},
};
use crate::{
    accounts::{
        passwords::NewPassword,
        records::user,
        self_service,
        users::{self, DisplayName, Email, NewUser},
    },
    app::AppState,
    error::ApiError,
    oauth::Scope,
};

/// A staff account to create.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreateUserRequest {
    /// Email address (normalized to lower case; counts as confirmed).
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// Display name (1–100 characters).
    #[oai(validator(max_length = 200))]
    pub display_name: String,
    /// Initial password (at least 12 characters, not a common password). When omitted, the
    /// account gets a random password and a password-reset link is mailed to it.
    #[oai(validator(max_length = 1024))]
    pub password: Option<String>,
    /// Global administrator (default false).
    #[oai(default)]
    pub is_admin: bool,
}

/// A user as the API shows it (never password material).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UserInfo {
    /// User id.
    pub id: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Global administrator.
    pub is_admin: bool,
    /// When the email address was confirmed.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When the account was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<user::Model> for UserInfo {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            email: m.email,
            display_name: m.display_name,
            is_admin: m.is_admin,
            email_verified_at: m.email_verified_at,
            disabled_at: m.disabled_at,
            created_at: m.created_at,
        }
    }
}

/// A page of users.
#[derive(Debug, Object)]
pub struct UserPage {
    /// Users on this page, by email.
    pub items: Vec<UserInfo>,
    /// Total number of users.
    pub total: u64,
}

/// Created.
#[derive(ApiResponse)]
pub enum CreateUserResponse {
    /// The user was created.
    #[oai(status = 201)]
    Created(Json<UserInfo>),
}

/// People administration.
pub struct UsersApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// Create a staff account (scope `admin`). 409 `email_taken` when the address has an account.
    #[oai(path = "/api/v1/users", method = "post", operation_id = "createUser")]
    async fn create_user(
        &self,
        #[oai(scope = "Scope::Admin")] auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        body: Json<CreateUserRequest>,
    ) -> Result<CreateUserResponse, ApiError> {
        let email = Email::parse(&body.email).map_err(account_error)?;
        let display_name = DisplayName::parse(&body.display_name).map_err(account_error)?;
        let (password, send_link) = match &body.password {
            Some(p) => (NewPassword::parse(p).map_err(account_error)?, false),
            None => {
                let random = hex::encode(rand::random::<[u8; 32]>());
                (NewPassword::parse(&random).map_err(account_error)?, true)
            }
        };
        let actor = auth.actor();
        let created = users::create_user(
            state.db(),
            state.accounts(),
            NewUser {
                email,
                display_name,
                password,
                is_admin: body.is_admin,
                email_verified: true,
            },
            &actor,
        )
        .await
        .map_err(account_error)?;
        if send_link {
            let mail = self_service::reset_link_mail_for(
                state.db(),
                state.accounts(),
                &created.id,
                &actor,
            )
            .await
            .map_err(account_error)?;
            state.accounts().mailer().send_later(mail);
        }
        Ok(CreateUserResponse::Created(Json(created.into())))
    }

    /// List users by email (scope `admin`).
    #[oai(path = "/api/v1/users", method = "get", operation_id = "listUsers")]
    async fn list_users(
        &self,
        #[oai(scope = "Scope::Admin")] _auth: Authorized<scope::Admin>,
        state: Data<&AppState>,
        /// Page size (1–500, default 100).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u64>,
        /// Users to skip.
        #[oai(default)]
        offset: Query<u64>,
    ) -> Result<Json<UserPage>, ApiError> {
        let (rows, total) = users::list_users(state.db(), *limit, *offset)
            .await
            .map_err(account_error)?;
        Ok(Json(UserPage {
            items: rows.into_iter().map(UserInfo::from).collect(),
            total,
        }))
    }
}

fn default_limit() -> u64 {
    100
}
