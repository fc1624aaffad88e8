//! `/account/sign-in`: the email-and-password form; on success a new session cookie and a
//! redirect to the safe local `next` address.

use askama::Template;
use poem::{Response, handler, http::StatusCode, web::Query};
use serde::Deserialize;

use super::{
    Browser, PageError, html, layout::Layout, paths::SafeNext, protected_form::ProtectedForm,
    see_other,
};
use crate::accounts::{AccountError, session_cookie, sign_in as domain};

#[derive(Template)]
#[template(path = "pages/sign_in.html")]
struct SignInPage {
    layout: Layout,
    next: String,
    email: String,
    registration_open: bool,
}

/// Query of the sign-in page.
#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    done: Option<String>,
}

fn notice_for(done: Option<&str>) -> Option<&'static str> {
    match done {
        Some("verified") => Some("Your email address is confirmed. You can sign in now."),
        Some("reset") => Some("Your password has been changed. Sign in with the new one."),
        Some("signed-out") => Some("You have signed out."),
        _ => None,
    }
}

fn page(browser: &Browser, next: &SafeNext, email: String, layout: Layout) -> SignInPage {
    SignInPage {
        layout,
        next: next.as_str().to_owned(),
        email,
        registration_open: browser.state().accounts().registration_open(),
    }
}

/// `GET /account/sign-in`.
#[handler]
pub async fn get(browser: Browser, Query(q): Query<SignInQuery>) -> Result<Response, PageError> {
    let next = SafeNext::or_account(q.next.as_deref());
    if browser.user.is_some() {
        return Ok(see_other(next.as_str(), None));
    }
    let mut layout = Layout::new("Sign in", &browser);
    if let Some(notice) = notice_for(q.done.as_deref()) {
        layout = layout.with_notice(notice);
    }
    let resp = html(
        StatusCode::OK,
        &page(&browser, &next, String::new(), layout),
    );
    Ok(super::authorize::allow_return_to_client(browser.state(), &next, resp).await)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /account/sign-in`.
#[handler]
pub async fn post(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<SignInForm>,
) -> Result<Response, PageError> {
    let next = SafeNext::or_account(form.next.as_deref());
    let state = browser.state().clone();
    let accounts = state.accounts();
    match domain::sign_in(
        state.db(),
        accounts,
        browser.ip(),
        &form.email,
        &form.password,
        browser.user_agent(),
    )
    .await
    {
        Ok(signed_in) => {
            let cookie = session_cookie::set(
                secrecy::ExposeSecret::expose_secret(&signed_in.cookie),
                accounts.secure_cookies(),
            );
            Ok(see_other(next.as_str(), Some(cookie)))
        }
        Err(err @ (AccountError::InvalidCredentials | AccountError::EmailNotVerified)) => {
            let status = match err {
                AccountError::InvalidCredentials => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            let layout = Layout::new("Sign in", &browser).with_error(err.to_string());
            let resp = html(status, &page(&browser, &next, form.email, layout));
            Ok(super::authorize::allow_return_to_client(&state, &next, resp).await)
        }
        Err(AccountError::RateLimited { retry_after_secs }) => {
            let layout = Layout::new("Sign in", &browser).with_error(
                "Too many sign-in attempts from your network. Wait a minute and try again.",
            );
            let mut resp = html(
                StatusCode::TOO_MANY_REQUESTS,
                &page(&browser, &next, form.email, layout),
            );
            resp.headers_mut().insert(
                poem::http::header::RETRY_AFTER,
                poem::http::HeaderValue::from(retry_after_secs),
            );
            Ok(resp)
        }
        Err(other) => Err(other.into()),
    }
}
