//! `/account/forgot-password` (ask for a link; same answer for every address) and
//! `/account/reset-password?token=…` (set a new password with the single-use link).

use askama::Template;
use poem::{Response, handler, http::StatusCode, web::Query};
use serde::Deserialize;

use super::{
    Browser, MessagePage, PageError, html, layout::Layout, paths, protected_form::ProtectedForm,
    see_other,
};
use crate::accounts::{
    AccountError,
    links::{self, Purpose},
    self_service,
};

#[derive(Template)]
#[template(path = "pages/forgot_password.html")]
struct ForgotPage {
    layout: Layout,
}

#[derive(Template)]
#[template(path = "pages/reset_password.html")]
struct ResetPage {
    layout: Layout,
    token: String,
}

/// `GET /account/forgot-password`.
#[handler]
pub async fn forgot_get(browser: Browser) -> Result<Response, PageError> {
    Ok(html(
        StatusCode::OK,
        &ForgotPage {
            layout: Layout::new("Reset your password", &browser),
        },
    ))
}

/// The forgot-password form.
#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// `POST /account/forgot-password`.
#[handler]
pub async fn forgot_post(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<ForgotForm>,
) -> Result<Response, PageError> {
    let state = browser.state();
    browser
        .state()
        .accounts()
        .address_limiter()
        .check(browser.ip())
        .await?;
    self_service::request_password_reset(state.db(), state.accounts(), &form.email).await?;
    Ok(html(
        StatusCode::OK,
        &MessagePage {
            layout: Layout::new("Check your inbox", &browser),
            message: "If an account uses this address, we have sent it a link to set a new \
                      password. The link works once, for 1 hour.",
            link: None,
        },
    ))
}

fn invalid_link(browser: &Browser) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        &MessagePage {
            layout: Layout::new("This link does not work", browser),
            message: "This link is invalid, has already been used or has expired. Ask for a new one.",
            link: Some((paths::FORGOT_PASSWORD, "Ask for a new link")),
        },
    )
}

/// The link's query.
#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `GET /account/reset-password`.
#[handler]
pub async fn reset_get(
    browser: Browser,
    Query(q): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let state = browser.state();
    if !links::is_usable(state.db(), state.clock(), &q.token, Purpose::ResetPassword).await? {
        return Ok(invalid_link(&browser));
    }
    Ok(html(
        StatusCode::OK,
        &ResetPage {
            layout: Layout::new("Choose a new password", &browser),
            token: q.token,
        },
    ))
}

/// The new-password form.
#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// `POST /account/reset-password`.
#[handler]
pub async fn reset_post(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<ResetForm>,
) -> Result<Response, PageError> {
    let state = browser.state();
    match self_service::reset_password(state.db(), state.accounts(), &form.token, &form.password)
        .await
    {
        Ok(()) => Ok(see_other(&format!("{}?done=reset", paths::SIGN_IN), None)),
        Err(AccountError::InvalidLink) => Ok(invalid_link(&browser)),
        Err(err @ AccountError::WeakPassword(_)) => Ok(html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ResetPage {
                layout: Layout::new("Choose a new password", &browser).with_error(err.to_string()),
                token: form.token,
            },
        )),
        Err(other) => Err(other.into()),
    }
}
