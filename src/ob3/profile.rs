//! `getProfile` / `putProfile`: the Profile of whoever the token acts for.
//!
//! - A token a person granted (its principal is a user): that person's Profile. Until they PUT
//!   one it is built from the account: `id` `urn:oxbadge:user:<user id>`, `type: ["Profile"]`,
//!   `name` (display name) and `email` (only once verified). PUT replaces it with the whole
//!   Profile given, kept exactly as sent.
//! - A client's own token (client credentials) that acts for exactly one issuer (an issuer's back
//!   end): that issuer's public Profile. It is read-only here (PUT is 403): issuer profiles are
//!   changed through the Issuers API, which also controls what credentials embed.
//! - Any other client token has no Profile: 403.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, EntityTrait};
use serde_json::{Value, json};

use super::{ownership::lock_holder, statement};
use crate::{accounts::records::user, db::ob3_holder};

/// Why a Profile cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// 422: the PUT body is not a valid Profile.
    #[error("{0}")]
    Invalid(String),
    /// 404: the user no longer exists.
    #[error("the profile does not exist")]
    NotFound,
    /// Database failure (500).
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The id of a user's default Profile.
pub fn default_profile_id(user_id: &str) -> String {
    format!("urn:oxbadge:user:{user_id}")
}

/// The user's Profile as JSON text (the stored one exactly, or the default).
pub async fn user_profile(db: &DatabaseConnection, user_id: &str) -> Result<String, ProfileError> {
    if let Some(holder) = ob3_holder::Entity::find_by_id(user_id.to_owned())
        .one(db)
        .await?
        && let Some(profile) = holder.profile
    {
        return Ok(profile);
    }
    let u = user::Entity::find_by_id(user_id.to_owned())
        .one(db)
        .await?
        .ok_or(ProfileError::NotFound)?;
    let mut profile = json!({
        "id": default_profile_id(user_id),
        "type": ["Profile"],
        "name": u.display_name,
    });
    if u.email_verified_at.is_some()
        && let Some(map) = profile.as_object_mut()
    {
        map.insert("email".into(), json!(u.email));
    }
    Ok(profile.to_string())
}

fn is_uri(text: &str) -> bool {
    url::Url::parse(text).is_ok() && !text.chars().any(char::is_whitespace)
}

/// Checks a Profile (OB 3.0 `Profile`): an object, `id` a URI, `type` containing `Profile`, and
/// the common members well-typed when present.
pub fn validate_profile(profile: &Value) -> Result<(), ProfileError> {
    let invalid = |m: &str| Err(ProfileError::Invalid(m.to_owned()));
    let Some(map) = profile.as_object() else {
        return invalid("the Profile must be a JSON object");
    };
    match map.get("id").and_then(Value::as_str) {
        Some(id) if is_uri(id) => {}
        _ => return invalid("`id` is required and must be a URI"),
    }
    let has_type = match map.get("type") {
        Some(Value::String(t)) => t == "Profile",
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str() == Some("Profile")),
        _ => false,
    };
    if !has_type {
        return invalid("`type` is required and must include \"Profile\"");
    }
    for key in ["name", "description", "email", "phone"] {
        if let Some(v) = map.get(key)
            && !v.is_string()
        {
            return Err(ProfileError::Invalid(format!("`{key}` must be a string")));
        }
    }
    if let Some(Value::String(email)) = map.get("email")
        && crate::ob::normalize_email(email).is_err()
    {
        return invalid("`email` must be an email address");
    }
    for key in ["url", "official"] {
        if let Some(v) = map.get(key)
            && !v.as_str().is_some_and(is_uri)
        {
            return Err(ProfileError::Invalid(format!("`{key}` must be a URI")));
        }
    }
    Ok(())
}

/// Replaces the user's Profile with `text` (already validated JSON); returns it.
pub async fn put_user_profile(
    db: &DatabaseConnection,
    user_id: &str,
    text: &str,
) -> Result<String, ProfileError> {
    if user::Entity::find_by_id(user_id.to_owned())
        .one(db)
        .await?
        .is_none()
    {
        return Err(ProfileError::NotFound);
    }
    let txn = crate::db::begin_write(db).await?;
    let now = Utc::now();
    lock_holder(&txn, user_id, now).await?;
    txn.execute_raw(statement(
        txn.get_database_backend(),
        "UPDATE ob3_holders SET profile = ?, updated_at = ? WHERE user_id = ?",
        vec![text.into(), now.into(), user_id.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_need_an_id_and_the_profile_type() {
        assert!(
            validate_profile(&json!({"id": "urn:x:1", "type": ["Profile"], "name": "A"})).is_ok()
        );
        assert!(validate_profile(&json!({"id": "urn:x:1", "type": "Profile"})).is_ok());
        assert!(validate_profile(&json!({"type": ["Profile"]})).is_err());
        assert!(validate_profile(&json!({"id": "not a uri", "type": ["Profile"]})).is_err());
        assert!(validate_profile(&json!({"id": "urn:x:1", "type": ["Issuer"]})).is_err());
        assert!(
            validate_profile(&json!({"id": "urn:x:1", "type": ["Profile"], "email": "x"})).is_err()
        );
        assert!(validate_profile(&json!([1])).is_err());
    }
}
