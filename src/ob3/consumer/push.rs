//! Pushing to a recipient's host through an issuer's connection: `upsertCredential` (POST
//! `/credentials`, a JSON credential or a VC-JWT as `text/plain`) and `putProfile`.

use reqwest::Method;
use serde_json::Value;

use super::{ConsumerError, connection, excerpt};
use crate::{app::AppState, db::host_connection, verify::fetch::OutboundRequest};

/// A credential to push.
#[derive(Debug, Clone)]
pub enum Pushed {
    /// A JSON credential with an embedded proof.
    Json(Value),
    /// A compact JWS (VC-JWT).
    Jwt(String),
}

/// The host's answer to `upsertCredential`.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// 201 (new at the host) or 200 (replaced, or the host kept its newer copy).
    pub status: u16,
    /// What the host echoed.
    pub body: String,
}

impl PushOutcome {
    /// Whether the host created it.
    pub fn created(&self) -> bool {
        self.status == 201
    }
}

fn host_refused(operation: &str, status: u16, body: &[u8]) -> ConsumerError {
    // An Imsx_StatusInfo's description is the useful part.
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let minor = v
                .pointer("/imsx_CodeMinor/imsx_codeMinorField/0/imsx_codeMinorFieldValue")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let description = v
                .get("imsx_description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match (minor, description) {
                (None, None) => None,
                (m, d) => Some(format!(
                    "{} {}",
                    m.unwrap_or_default(),
                    d.unwrap_or_default()
                )),
            }
        })
        .unwrap_or_else(|| excerpt(body));
    ConsumerError::HostError(format!(
        "{operation} answered HTTP {status}: {}",
        detail.trim()
    ))
}

/// `upsertCredential` at the connection's host.
pub async fn upsert_credential(
    state: &AppState,
    row: host_connection::Model,
    credential: &Pushed,
) -> Result<(host_connection::Model, PushOutcome), ConsumerError> {
    let url = format!("{}/credentials", row.api_base.trim_end_matches('/'));
    let (row, answer) = connection::authorized_send(state, row, || {
        let request = OutboundRequest::new(Method::POST, &url);
        match credential {
            Pushed::Json(value) => request.json(value),
            Pushed::Jwt(jws) => request.body("text/plain", jws.as_bytes().to_vec()),
        }
    })
    .await?;
    if answer.status != 200 && answer.status != 201 {
        return Err(host_refused(
            "upsertCredential",
            answer.status,
            &answer.body,
        ));
    }
    Ok((
        row,
        PushOutcome {
            status: answer.status,
            body: String::from_utf8_lossy(&answer.body).into_owned(),
        },
    ))
}

/// `putProfile` at the connection's host; answers the Profile the host stored.
pub async fn put_profile(
    state: &AppState,
    row: host_connection::Model,
    profile: &Value,
) -> Result<(host_connection::Model, Value), ConsumerError> {
    let url = format!("{}/profile", row.api_base.trim_end_matches('/'));
    let (row, answer) = connection::authorized_send(state, row, || {
        OutboundRequest::new(Method::PUT, &url).json(profile)
    })
    .await?;
    if answer.status != 200 && answer.status != 201 {
        return Err(host_refused("putProfile", answer.status, &answer.body));
    }
    Ok((row, answer.json().unwrap_or(Value::Null)))
}

/// Pushes the issuer's credential `credential_id` (issued here) to the connection's host.
pub async fn push_issued_credential(
    state: &AppState,
    row: host_connection::Model,
    credential_id: &str,
) -> Result<(host_connection::Model, PushOutcome), ConsumerError> {
    use sea_orm::EntityTrait;
    let connection::Owner::Issuer(issuer_id) = row.owner() else {
        return Err(ConsumerError::NotConnected(
            "only an issuer's connection pushes issued credentials".into(),
        ));
    };
    let credential = crate::db::credential::Entity::find_by_id(credential_id)
        .one(state.db())
        .await?
        .filter(|c| c.issuer_id == issuer_id)
        .ok_or(ConsumerError::NotFound)?;
    let pushed = if credential.format == "jwt" {
        Pushed::Jwt(credential.document)
    } else {
        Pushed::Json(
            serde_json::from_str(&credential.document)
                .map_err(|e| ConsumerError::HostError(format!("stored credential: {e}")))?,
        )
    };
    upsert_credential(state, row, &pushed).await
}

/// Puts the issuer's Profile at the connection's host.
pub async fn push_issuer_profile(
    state: &AppState,
    row: host_connection::Model,
) -> Result<(host_connection::Model, Value), ConsumerError> {
    use sea_orm::EntityTrait;
    let connection::Owner::Issuer(issuer_id) = row.owner() else {
        return Err(ConsumerError::NotConnected(
            "only an issuer's connection puts the issuer's Profile".into(),
        ));
    };
    let issuer = crate::db::issuer::Entity::find_by_id(issuer_id.as_str())
        .one(state.db())
        .await?
        .ok_or(ConsumerError::NotFound)?;
    let profile = crate::issuers::profile_document(&issuer);
    put_profile(state, row, &profile).await
}
