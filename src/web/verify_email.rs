//! `/account/verify-email?token=…`: the link from the confirmation mail. GET shows a button
//! (so link scanners that fetch mail links cannot use the single-use token up); POST confirms.

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
#[template(path = "pages/verify_email.html")]
struct VerifyPage {
    layout: Layout,
    token: String,
}

/// The link's query.
#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn invalid_link(browser: &Browser) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        &MessagePage {
            layout: Layout::new("This link does not work", browser),
            message: "This link is invalid, has already been used or has expired. Sign in to get \
                      a new confirmation link.",
            link: Some((paths::SIGN_IN, "Sign in")),
        },
    )
}

/// `GET /account/verify-email`.
#[handler]
pub async fn get(browser: Browser, Query(q): Query<TokenQuery>) -> Result<Response, PageError> {
    let state = browser.state();
    if !links::is_usable(state.db(), state.clock(), &q.token, Purpose::VerifyEmail).await? {
        return Ok(invalid_link(&browser));
    }
    Ok(html(
        StatusCode::OK,
        &VerifyPage {
            layout: Layout::new("Confirm your email address", &browser),
            token: q.token,
        },
    ))
}

/// The confirmation form.
#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    token: String,
}

/// `POST /account/verify-email`.
#[handler]
pub async fn post(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<VerifyForm>,
) -> Result<Response, PageError> {
    let state = browser.state();
    match self_service::verify_email(state.db(), state.accounts(), &form.token).await {
        Ok(_) => Ok(see_other(
            &format!("{}?done=verified", paths::SIGN_IN),
            None,
        )),
        Err(AccountError::InvalidLink) => Ok(invalid_link(&browser)),
        Err(other) => Err(other.into()),
    }
}
