//! Liveness, readiness and metrics endpoints (public: they reveal no data).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, payload::PlainText};

use super::ApiTags;
use crate::{app::AppState, db, error::ApiError};

/// Health status.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HealthStatus {
    /// `ok` or `ready`.
    pub status: String,
    /// Service version.
    pub version: String,
}

/// Prometheus text exposition.
#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Metrics in Prometheus text format 0.0.4.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

/// Health and operations endpoints.
pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process is up and serving HTTP.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<HealthStatus> {
        Json(HealthStatus {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Readiness: the database answers. 503 (problem document) when it does not.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, state: Data<&AppState>) -> Result<Json<HealthStatus>, ApiError> {
        if db::ping(state.db()).await {
            Ok(Json(HealthStatus {
                status: "ready".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            }))
        } else {
            Err(ApiError::Unavailable)
        }
    }

    /// Prometheus metrics: requests by operation and status, latency histograms.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> MetricsResponse {
        MetricsResponse::Ok(PlainText(state.metrics().render()))
    }
}
