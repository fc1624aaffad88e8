//! `/account`: the signed-in person's profile, password change, sessions (list, end) and the
//! applications they allowed (list, withdraw: `web::consent::revoke`).

use askama::Template;
use poem::{Response, handler, http::StatusCode, web::Query};
use serde::Deserialize;

use super::{
    Browser, PageError, html, layout::Layout, paths, protected_form::ProtectedForm, see_other,
    sign_in_redirect,
};
use crate::accounts::{AccountError, SessionUser, self_service, sessions};

/// One row of the session table.
pub struct SessionRow {
    pub id: String,
    pub started: String,
    pub last_seen: String,
    pub device: String,
    pub current: bool,
}

/// One application the person allowed.
pub struct AppRow {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<&'static str>,
    pub approved: String,
}

#[derive(Template)]
#[template(path = "pages/account.html")]
struct AccountPage {
    apps: Vec<AppRow>,
    layout: Layout,
    display_name: String,
    email: String,
    email_verified: bool,
    is_admin: bool,
    sessions: Vec<SessionRow>,
}

/// Query of the account page.
#[derive(Deserialize)]
pub struct AccountQuery {
    done: Option<String>,
}

async fn render(
    browser: &Browser,
    user: &SessionUser,
    layout: Layout,
    status: StatusCode,
) -> Result<Response, PageError> {
    let state = browser.state();
    let rows = sessions::list(state.db(), state.clock(), &user.user_id)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            current: s.id == user.session_id,
            started: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            last_seen: s.last_seen_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            device: s.user_agent.unwrap_or_else(|| "unknown".into()),
            id: s.id,
        })
        .collect();
    let apps = crate::oauth::consents::list_for_user(state.db(), &user.user_id)
        .await
        .map_err(PageError::internal)?
        .into_iter()
        .map(|a| AppRow {
            client_id: a.client_id,
            name: a.client_name,
            scopes: a.scopes.iter().map(|s| s.description()).collect(),
            approved: a.approved_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        })
        .collect();
    Ok(html(
        status,
        &AccountPage {
            apps,
            layout,
            display_name: user.display_name.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            is_admin: user.is_admin,
            sessions: rows,
        },
    ))
}

/// `GET /account`.
#[handler]
pub async fn get(browser: Browser, Query(q): Query<AccountQuery>) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::ACCOUNT));
    };
    let mut layout = Layout::new("Your account", &browser);
    match q.done.as_deref() {
        Some("password") => layout = layout.with_notice("Your password has been changed."),
        Some("session-ended") => layout = layout.with_notice("The session has been ended."),
        Some("app-revoked") => {
            layout = layout.with_notice("The application's access has been withdrawn.")
        }
        _ => {}
    }
    render(&browser, &user, layout, StatusCode::OK).await
}

/// The password-change form.
#[derive(Deserialize)]
pub struct ChangePasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /account/password`.
#[handler]
pub async fn change_password(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<ChangePasswordForm>,
) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::ACCOUNT));
    };
    let state = browser.state();
    match self_service::change_password(
        state.db(),
        state.accounts(),
        &user,
        &form.current_password,
        &form.new_password,
    )
    .await
    {
        Ok(()) => Ok(see_other(
            &format!("{}?done=password", paths::ACCOUNT),
            None,
        )),
        Err(AccountError::InvalidCredentials) => {
            let layout = Layout::new("Your account", &browser)
                .with_error("The current password is not correct.");
            render(&browser, &user, layout, StatusCode::UNAUTHORIZED).await
        }
        Err(err @ AccountError::WeakPassword(_)) => {
            let layout = Layout::new("Your account", &browser).with_error(err.to_string());
            render(&browser, &user, layout, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(other) => Err(other.into()),
    }
}

/// The end-session form.
#[derive(Deserialize)]
pub struct EndSessionForm {
    #[serde(default)]
    session_id: String,
}

/// `POST /account/sessions/end`.
#[handler]
pub async fn end_session(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<EndSessionForm>,
) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::ACCOUNT));
    };
    match sessions::end_by_id(browser.state().db(), &user.user_id, &form.session_id).await {
        Ok(()) | Err(AccountError::NotFound(_)) => Ok(see_other(
            &format!("{}?done=session-ended", paths::ACCOUNT),
            None,
        )),
        Err(other) => Err(other.into()),
    }
}
