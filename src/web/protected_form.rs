//! `ProtectedForm<T>`: a urlencoded form whose `csrf` field matches the browser's session
//! cookie, from a same-origin (or user-initiated) request. The check runs while the request is
//! extracted, so a handler that takes a `ProtectedForm` cannot run without it.

use poem::{FromRequest, Request, RequestBody, http::StatusCode, web::Form};
use serde::{Deserialize, de::DeserializeOwned};

use super::{BrowserCookie, PageError};
use crate::accounts::csrf;

/// A form that passed the CSRF checks.
pub struct ProtectedForm<T>(pub T);

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    inner: T,
}

fn refused() -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from this site. Go back, reload the page and try again.",
    )
}

impl<'a, T: DeserializeOwned + Send> FromRequest<'a> for ProtectedForm<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let fetch_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok());
        if !csrf::fetch_site_allowed(fetch_site) {
            tracing::warn!(?fetch_site, path = %req.uri().path(), "cross-site form post refused");
            return Err(refused().into());
        }
        let cookie = req
            .data::<BrowserCookie>()
            .cloned()
            .ok_or_else(|| PageError::internal("page layer missing"))?;
        let Form(form) = Form::<WithCsrf<T>>::from_request(req, body)
            .await
            .map_err(|_| {
                PageError::new(
                    StatusCode::BAD_REQUEST,
                    "The form could not be read. Go back and try again.",
                )
            })?;
        // A browser that sent no cookie cannot have a token for it.
        if cookie.fresh || !csrf::verify(&cookie.value, &form.csrf) {
            tracing::warn!(path = %req.uri().path(), "form post without a valid CSRF token refused");
            return Err(refused().into());
        }
        Ok(Self(form.inner))
    }
}
