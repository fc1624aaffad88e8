//! `/account/register`: self-service sign-up (when the instance allows it). The answer is the
//! same whether or not the address already has an account.

use askama::Template;
use poem::{Response, handler, http::StatusCode};
use serde::Deserialize;

use super::{Browser, MessagePage, PageError, html, layout::Layout, protected_form::ProtectedForm};
use crate::accounts::{AccountError, self_service};

#[derive(Template)]
#[template(path = "pages/register.html")]
struct RegisterPage {
    layout: Layout,
    registration_open: bool,
    display_name: String,
    email: String,
}

/// `GET /account/register`.
#[handler]
pub async fn get(browser: Browser) -> Result<Response, PageError> {
    let open = browser.state().accounts().registration_open();
    let page = RegisterPage {
        layout: Layout::new("Create an account", &browser),
        registration_open: open,
        display_name: String::new(),
        email: String::new(),
    };
    let status = if open {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    Ok(html(status, &page))
}

/// The registration form.
#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST /account/register`.
#[handler]
pub async fn post(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<RegisterForm>,
) -> Result<Response, PageError> {
    let state = browser.state().clone();
    match self_service::register(
        state.db(),
        state.accounts(),
        browser.ip(),
        &form.email,
        &form.display_name,
        &form.password,
    )
    .await
    {
        Ok(()) => Ok(html(
            StatusCode::OK,
            &MessagePage {
                layout: Layout::new("Check your inbox", &browser),
                message: "We have sent a link to the address you gave. Open it to confirm your \
                          email address, then sign in. The link works for 24 hours.",
                link: None,
            },
        )),
        Err(
            err @ (AccountError::InvalidEmail(_)
            | AccountError::InvalidDisplayName(_)
            | AccountError::WeakPassword(_)
            | AccountError::RegistrationClosed),
        ) => {
            let open = state.accounts().registration_open();
            let page = RegisterPage {
                layout: Layout::new("Create an account", &browser).with_error(err.to_string()),
                registration_open: open,
                display_name: form.display_name,
                email: form.email,
            };
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(other) => Err(other.into()),
    }
}
