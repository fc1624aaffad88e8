//! Credentials earners upload (`upsertCredential`): parsed once at the edge into an [`Upload`]
//! that keeps the exact bytes, verified with our verifier, and stored under the OB 3.0 equality
//! rule: same `issuer.id` and same credential `id` (percent-decoded, trimmed) is the same
//! credential, and the newer `validFrom` (`issuanceDate`) wins.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Set,
};
use serde_json::Value;

use super::{ownership::lock_holder, statement};
use crate::{
    app::AppState,
    db::ob3_upload,
    verify::{
        self, VerifyOptions,
        input::{Source, Submitted},
        report::{Outcome, Report},
    },
};

/// How the credential travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFormat {
    /// A JSON credential (embedded proof).
    Json,
    /// A compact JWS (VC-JWT), `text/plain`.
    Jwt,
}

impl UploadFormat {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Jwt => "jwt",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "jwt" { Self::Jwt } else { Self::Json }
    }
}

/// An uploaded credential, parsed.
#[derive(Debug, Clone)]
pub struct Upload {
    pub format: UploadFormat,
    /// Exactly what was received (whitespace around a JWS trimmed).
    pub body: String,
    /// The credential (decoded from the JWT payload for a VC-JWT).
    pub credential: Value,
    /// `issuer.id`.
    pub issuer_id: String,
    /// The credential `id`, percent-decoded and trimmed.
    pub credential_id: String,
    pub valid_from: DateTime<Utc>,
}

/// Why an upload is refused (422 `invalid_data` at the edge).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The body is not a credential this API can take.
    #[error("{0}")]
    Malformed(String),
    /// The credential did not verify; the report says why.
    #[error("the credential did not verify ({outcome}): {summary}")]
    Unverified {
        outcome: &'static str,
        summary: String,
    },
    /// Database failure (500).
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn date_of(value: &Value, keys: &[&str]) -> Option<DateTime<Utc>> {
    keys.iter()
        .find_map(|k| value.get(*k))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The OB 3.0 equality form of an identifier: percent-decoded and trimmed.
pub fn equality_id(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw.trim())
        .decode_utf8_lossy()
        .trim()
        .to_owned()
}

impl Upload {
    /// Parses a body: JSON for the JSON media types, a compact JWS for `text/plain`.
    pub fn parse(format: UploadFormat, body: &[u8]) -> Result<Self, UploadError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| UploadError::Malformed("the body is not UTF-8 text".into()))?;
        let (body, credential) = match format {
            UploadFormat::Json => {
                let value: Value = serde_json::from_str(text)
                    .map_err(|e| UploadError::Malformed(format!("the body is not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(UploadError::Malformed(
                        "the body must be a JSON credential object".into(),
                    ));
                }
                (text.to_owned(), value)
            }
            UploadFormat::Jwt => {
                let jws = text.trim();
                if !verify::input::is_compact_jws(jws) {
                    return Err(UploadError::Malformed(
                        "a text/plain body must be a compact JWS (VC-JWT)".into(),
                    ));
                }
                let decoded = verify::jwt::decode(jws).map_err(UploadError::Malformed)?;
                let credential = decoded.credential().map_err(UploadError::Malformed)?;
                (jws.to_owned(), credential)
            }
        };
        let issuer_id = verify::jwt::issuer_id(&credential)
            .map(equality_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| UploadError::Malformed("the credential has no issuer id".into()))?;
        let credential_id = credential
            .get("id")
            .and_then(Value::as_str)
            .map(equality_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| UploadError::Malformed("the credential has no id".into()))?;
        let valid_from = date_of(&credential, &["validFrom", "issuanceDate"]).ok_or_else(|| {
            UploadError::Malformed(
                "the credential has no validFrom (or issuanceDate) date-time".into(),
            )
        })?;
        Ok(Self {
            format,
            body,
            credential,
            issuer_id,
            credential_id,
            valid_from,
        })
    }

    /// Verifies the credential with this service's verifier. Authentic and current, or authentic
    /// and expired (an earner may keep an expired badge), passes; anything else is refused with
    /// the report's failed checks.
    pub async fn verify(&self, state: &AppState) -> Result<Report, UploadError> {
        let submitted = match self.format {
            UploadFormat::Json => Submitted::Json(self.credential.clone(), Source::Json),
            UploadFormat::Jwt => Submitted::Jwt(self.body.clone(), Source::Jwt),
        };
        let report = verify::verify(state, submitted, &VerifyOptions::default()).await;
        match report.outcome {
            Outcome::Verified | Outcome::Expired => Ok(report),
            outcome => {
                let summary = report
                    .checks
                    .iter()
                    .filter(|c| {
                        !matches!(
                            c.status,
                            verify::report::CheckStatus::Passed
                                | verify::report::CheckStatus::Skipped
                        )
                    })
                    .map(|c| {
                        let detail = c
                            .problem
                            .as_ref()
                            .map(|p| format!("{}: {}", p.title, p.detail))
                            .or_else(|| c.detail.clone())
                            .unwrap_or_default();
                        format!("{} {:?}: {detail}", c.check, c.status).to_lowercase()
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(UploadError::Unverified {
                    outcome: outcome.as_str(),
                    summary,
                })
            }
        }
    }
}

/// What an upsert did. Each carries the credential to answer with, in its stored format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// New to the collection (201).
    Created { format: UploadFormat, body: String },
    /// Replaced an older copy (200).
    Replaced { format: UploadFormat, body: String },
    /// The stored copy is newer and was kept (200, the stored copy).
    KeptNewer { format: UploadFormat, body: String },
}

/// Stores `upload` in the user's collection under the equality rule (one transaction; the
/// holder row lock serializes concurrent uploads of one user).
pub async fn upsert(
    db: &DatabaseConnection,
    user_id: &str,
    upload: &Upload,
) -> Result<Upserted, DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let now = Utc::now();
    let holder = lock_holder(&txn, user_id, now).await?;
    let existing = ob3_upload::Entity::find()
        .filter(ob3_upload::Column::UserId.eq(user_id))
        .filter(ob3_upload::Column::IssuerId.eq(upload.issuer_id.as_str()))
        .filter(ob3_upload::Column::CredentialId.eq(upload.credential_id.as_str()))
        .one(&txn)
        .await?;
    let backend = txn.get_database_backend();
    let outcome = match existing {
        Some(stored) if stored.valid_from > upload.valid_from => Upserted::KeptNewer {
            format: UploadFormat::parse(&stored.format),
            body: stored.body,
        },
        Some(stored) => {
            txn.execute_raw(statement(
                backend,
                "UPDATE ob3_uploads SET format = ?, body = ?, valid_from = ?, updated_at = ? WHERE id = ?",
                vec![
                    upload.format.as_str().into(),
                    upload.body.as_str().into(),
                    upload.valid_from.into(),
                    now.into(),
                    stored.id.into(),
                ],
            ))
            .await?;
            Upserted::Replaced {
                format: upload.format,
                body: upload.body.clone(),
            }
        }
        None => {
            let id = crate::db::new_id();
            ob3_upload::ActiveModel {
                id: Set(id.clone()),
                user_id: Set(user_id.to_owned()),
                issuer_id: Set(upload.issuer_id.clone()),
                credential_id: Set(upload.credential_id.clone()),
                format: Set(upload.format.as_str().to_owned()),
                body: Set(upload.body.clone()),
                valid_from: Set(upload.valid_from),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
            let position = holder.total + 1;
            txn.execute_raw(statement(
                backend,
                "INSERT INTO ob3_holdings (user_id, position, recipient_key, credential_id, upload_id, added_at) \
                 VALUES (?, ?, NULL, NULL, ?, ?)",
                vec![user_id.into(), position.into(), id.into(), now.into()],
            ))
            .await?;
            txn.execute_raw(statement(
                backend,
                "UPDATE ob3_holders SET total = ?, updated_at = ? WHERE user_id = ?",
                vec![position.into(), now.into(), user_id.into()],
            ))
            .await?;
            Upserted::Created {
                format: upload.format,
                body: upload.body.clone(),
            }
        }
    };
    txn.commit().await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_ids_are_percent_decoded_and_trimmed() {
        assert_eq!(equality_id(" urn:uuid:a%2Db "), "urn:uuid:a-b");
        assert_eq!(equality_id("https://x.org/a%20b"), "https://x.org/a b");
    }

    #[test]
    fn parse_requires_issuer_id_and_date() {
        let ok = br#"{"id":"urn:x:1","issuer":{"id":"did:key:z1"},"validFrom":"2024-01-01T00:00:00Z","ext":1}"#;
        let up = Upload::parse(UploadFormat::Json, ok).unwrap();
        assert_eq!(up.issuer_id, "did:key:z1");
        assert_eq!(up.body.as_bytes(), ok);
        assert!(Upload::parse(UploadFormat::Json, br#"{"id":"urn:x:1"}"#).is_err());
        assert!(Upload::parse(UploadFormat::Json, b"[1]").is_err());
        assert!(Upload::parse(UploadFormat::Jwt, b"not a jws").is_err());
    }
}
