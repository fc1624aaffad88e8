//! `POST /account/sign-out`: ends the session and gives the browser a fresh anonymous cookie.

use poem::{Response, handler};
use serde::Deserialize;

use super::{Browser, PageError, paths, protected_form::ProtectedForm, see_other};
use crate::accounts::{secret_token, session_cookie, sessions};
use crate::db::audit_event;

/// The sign-out form carries only its CSRF token.
#[derive(Deserialize)]
pub struct SignOutForm {}

/// `POST /account/sign-out`.
#[handler]
pub async fn post(
    browser: Browser,
    ProtectedForm(_form): ProtectedForm<SignOutForm>,
) -> Result<Response, PageError> {
    let state = browser.state();
    sessions::end_by_cookie(state.db(), browser.cookie())
        .await
        .map_err(PageError::from)?;
    if let Some(user) = &browser.user {
        audit_event::record(
            state.db(),
            &format!("user:{}", user.user_id),
            "user.signed_out",
            "user",
            &user.user_id,
            serde_json::json!({"session": user.session_id}),
        )
        .await
        .map_err(PageError::internal)?;
    }
    let fresh = secret_token::generate();
    let cookie = session_cookie::set(
        secrecy::ExposeSecret::expose_secret(&fresh),
        state.accounts().secure_cookies(),
    );
    Ok(see_other(
        &format!("{}?done=signed-out", paths::SIGN_IN),
        Some(cookie),
    ))
}
