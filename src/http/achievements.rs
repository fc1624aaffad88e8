//! Achievements of an issuer: `/api/v1/issuers/{id}/achievements`, and the public achievement
//! document at `/achievements/{id}` that credentials link to.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::tenancy::{self, Role};
use super::{
    ApiTags,
    auth::{Authorized, scope},
};
use crate::{
    app::AppState,
    db::achievement,
    error::ApiError,
    issue::{self, IssueError},
    oauth::Scope,
    ob,
};

impl From<IssueError> for ApiError {
    fn from(err: IssueError) -> Self {
        match err {
            IssueError::Invalid(e) => ApiError::Unprocessable {
                code: "invalid_request",
                detail: e.to_string(),
            },
            IssueError::NotFound(what) => ApiError::NotFound { what },
            IssueError::Unsignable(detail) => ApiError::BadRequest {
                code: "unsignable_credential",
                detail,
            },
            IssueError::Key(k) => k.into(),
            IssueError::Contention | IssueError::Unavailable => ApiError::Unavailable,
            IssueError::Db(db) => db.into(),
        }
    }
}

/// Criteria.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CriteriaInput {
    /// How the achievement is earned.
    pub narrative: Option<String>,
    /// URI of a criteria page.
    pub id: Option<String>,
}

/// An alignment to a framework or competency.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AlignmentInput {
    /// Name of the aligned item.
    pub target_name: String,
    /// URL of the aligned item.
    pub target_url: String,
    /// Description.
    pub target_description: Option<String>,
    /// Code.
    pub target_code: Option<String>,
    /// Framework name.
    pub target_framework: Option<String>,
    /// Type (e.g. `ceasn:Competency`).
    pub target_type: Option<String>,
}

/// An achievement definition.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AchievementInput {
    /// Name (1–500 characters).
    pub name: String,
    /// Description.
    pub description: String,
    /// Criteria: a narrative and/or an id.
    pub criteria: CriteriaInput,
    /// Image: an https URL or a `data:image/…` URI.
    pub image: Option<String>,
    /// OB 3.0 achievement type (`Badge`, `Certificate`, …, or `ext:Name`).
    pub achievement_type: Option<String>,
    /// Tags.
    #[oai(default)]
    pub tag: Vec<String>,
    /// Alignments.
    #[oai(default)]
    pub alignment: Vec<AlignmentInput>,
    /// Human-readable code.
    pub human_code: Option<String>,
    /// Field of study.
    pub field_of_study: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Credits available.
    pub credits_available: Option<f64>,
}

impl TryFrom<AchievementInput> for ob::AchievementDefinition {
    type Error = ob::Invalid;

    fn try_from(a: AchievementInput) -> Result<Self, Self::Error> {
        Ok(ob::AchievementDefinition {
            name: a.name,
            description: a.description,
            criteria: ob::Criteria {
                id: a.criteria.id,
                narrative: a.criteria.narrative,
            },
            image: a.image.map(|i| ob::Image::new("image", &i)).transpose()?,
            achievement_type: a.achievement_type,
            tag: a.tag,
            alignment: a
                .alignment
                .into_iter()
                .map(|x| ob::Alignment {
                    kind: vec!["Alignment".into()],
                    target_name: x.target_name,
                    target_url: x.target_url,
                    target_description: x.target_description,
                    target_code: x.target_code,
                    target_framework: x.target_framework,
                    target_type: x.target_type,
                })
                .collect(),
            human_code: a.human_code,
            field_of_study: a.field_of_study,
            version: a.version,
            credits_available: a.credits_available,
        })
    }
}

/// A stored achievement.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AchievementResource {
    /// Our id (CUID).
    pub id: String,
    /// The issuer (CUID).
    pub issuer_id: String,
    /// The `id` it has in credentials.
    pub achievement_id: String,
    /// The OB 3.0 Achievement as it appears in credentials.
    pub achievement: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Created.
#[derive(ApiResponse)]
pub enum CreatedAchievement {
    /// The achievement was created.
    #[oai(status = 201)]
    Created(Json<AchievementResource>),
}

fn resource(state: &AppState, m: achievement::Model) -> AchievementResource {
    let url = issue::achievement_url(state, &m.id);
    let achievement = serde_json::from_str::<ob::AchievementDefinition>(&m.document)
        .map(|d| d.to_achievement(&url))
        .unwrap_or_default();
    AchievementResource {
        id: m.id,
        issuer_id: m.issuer_id,
        achievement_id: url,
        achievement,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn invalid(e: ob::Invalid) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_achievement",
        detail: e.to_string(),
    }
}

/// Achievements.
pub struct AchievementsApi;

#[OpenApi(tag = "ApiTags::Achievements")]
impl AchievementsApi {
    /// Define an achievement for an issuer.
    #[oai(
        path = "/api/v1/issuers/:id/achievements",
        method = "post",
        operation_id = "createAchievement"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::IssuersWrite")] auth: Authorized<scope::IssuersWrite>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        body: Json<AchievementInput>,
    ) -> Result<CreatedAchievement, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Issuer)?;
        let def = ob::AchievementDefinition::try_from(body.0)
            .and_then(ob::AchievementDefinition::validate)
            .map_err(invalid)?;
        let row = issue::create_achievement(&state, &id.0, def, &auth.actor()).await?;
        Ok(CreatedAchievement::Created(Json(resource(&state, row))))
    }

    /// List an issuer's achievements, oldest first.
    #[oai(
        path = "/api/v1/issuers/:id/achievements",
        method = "get",
        operation_id = "listAchievements"
    )]
    async fn list(
        &self,
        #[oai(scope = "Scope::IssuersRead")] auth: Authorized<scope::IssuersRead>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
    ) -> Result<Json<Vec<AchievementResource>>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Viewer)?;
        crate::issuers::find_issuer(state.db(), &id.0).await?;
        let rows = achievement::Entity::find()
            .filter(achievement::Column::IssuerId.eq(&id.0))
            .order_by_asc(achievement::Column::CreatedAt)
            .all(state.db())
            .await?;
        Ok(Json(
            rows.into_iter().map(|m| resource(&state, m)).collect(),
        ))
    }

    /// Get one achievement.
    #[oai(
        path = "/api/v1/issuers/:id/achievements/:aid",
        method = "get",
        operation_id = "getAchievement"
    )]
    async fn get(
        &self,
        #[oai(scope = "Scope::IssuersRead")] auth: Authorized<scope::IssuersRead>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        /// Achievement id (CUID).
        aid: Path<String>,
    ) -> Result<Json<AchievementResource>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Viewer)?;
        let row = achievement::Entity::find_by_id(aid.0)
            .one(state.db())
            .await?
            .filter(|a| a.issuer_id == id.0)
            .ok_or(ApiError::NotFound {
                what: "achievement",
            })?;
        Ok(Json(resource(&state, row)))
    }

    /// Replace an achievement definition. Credentials issued before keep the copy they embed.
    #[oai(
        path = "/api/v1/issuers/:id/achievements/:aid",
        method = "put",
        operation_id = "updateAchievement"
    )]
    async fn update(
        &self,
        #[oai(scope = "Scope::IssuersWrite")] auth: Authorized<scope::IssuersWrite>,
        state: Data<&AppState>,
        /// Issuer id (CUID).
        id: Path<String>,
        /// Achievement id (CUID).
        aid: Path<String>,
        body: Json<AchievementInput>,
    ) -> Result<Json<AchievementResource>, ApiError> {
        tenancy::issuer(&auth.caller, &id, Role::Issuer)?;
        let def = ob::AchievementDefinition::try_from(body.0)
            .and_then(ob::AchievementDefinition::validate)
            .map_err(invalid)?;
        let row = issue::update_achievement(&state, &id.0, &aid.0, def, &auth.actor()).await?;
        Ok(Json(resource(&state, row)))
    }

    /// The public OB 3.0 Achievement document (what credentials link to).
    #[oai(
        path = "/achievements/:aid",
        method = "get",
        operation_id = "getPublicAchievement"
    )]
    async fn public(
        &self,
        state: Data<&AppState>,
        /// Achievement id (CUID).
        aid: Path<String>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let row = achievement::Entity::find_by_id(aid.0)
            .one(state.db())
            .await?
            .ok_or(ApiError::NotFound {
                what: "achievement",
            })?;
        let mut doc = resource(&state, row).achievement;
        if let Some(map) = doc.as_object_mut() {
            map.insert(
                "@context".into(),
                serde_json::json!([ob::CREDENTIALS_V2, ob::OB_CONTEXT]),
            );
        }
        Ok(Json(doc))
    }
}
