//! `/account/hosts`: the other OB 3.0 hosts (badge wallets, backpacks) the person connected: a
//! connect form (base URL → discovery, registration, authorization at the host), the callback the
//! host sends the browser back to, importing badges and the profile, and disconnecting. The work
//! is `ob3::consumer`, the same functions the JSON API calls.

use askama::Template;
use poem::{Response, handler, http::StatusCode, web::Query};
use serde::Deserialize;

use super::{
    Browser, PageError, html, layout::Layout, paths, protected_form::ProtectedForm, see_other,
    sign_in_redirect,
};
use crate::{
    accounts::SessionUser,
    ob3::consumer::{
        ConsumerError,
        connection::{self, Access, CallbackParams, Owner},
        import,
        remote_host::HostBase,
    },
};

/// One connection as the page lists it.
pub struct HostRow {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub status: &'static str,
    pub connected: bool,
    pub since: String,
    pub last_error: Option<String>,
}

/// One line of an import report.
pub struct ReportLine {
    pub id: String,
    pub text: String,
}

/// The import report shown after an import.
pub struct ReportView {
    pub host: String,
    pub pages: u32,
    pub total: String,
    pub imported: Vec<ReportLine>,
    pub rejected: Vec<ReportLine>,
    pub profile_name: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/hosts.html")]
struct HostsPage {
    layout: Layout,
    hosts: Vec<HostRow>,
    base_url: String,
    report: Option<ReportView>,
}

#[derive(Template)]
#[template(path = "pages/host_continue.html")]
struct ContinuePage {
    layout: Layout,
    host: String,
    authorization_url: String,
}

/// Query of the list page.
#[derive(Deserialize)]
pub struct HostsQuery {
    done: Option<String>,
}

fn status_text(status: &str) -> &'static str {
    match status {
        "connected" => "Connected",
        "pending" => "Waiting for your authorization",
        _ => "Disconnected",
    }
}

/// A sentence for a consumer failure (the details of a host's answer included: they are the
/// host's, not ours).
fn message(err: &ConsumerError) -> (StatusCode, String) {
    match err {
        ConsumerError::InvalidBaseUrl(d) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("That address cannot be used: {d}."),
        ),
        ConsumerError::Refused(d) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("This service may not connect to that address: {d}."),
        ),
        ConsumerError::Unreachable(d) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("The host could not be reached: {d}."),
        ),
        ConsumerError::HostError(d) | ConsumerError::TokenRejected(d) => (
            StatusCode::BAD_GATEWAY,
            format!("The host did not answer as an Open Badges host must: {d}."),
        ),
        ConsumerError::Authorization(d) | ConsumerError::NotConnected(d) => {
            (StatusCode::BAD_REQUEST, format!("{d}."))
        }
        ConsumerError::NotFound => (
            StatusCode::NOT_FOUND,
            "That connection does not exist.".into(),
        ),
        ConsumerError::Forbidden => (StatusCode::FORBIDDEN, err.to_string()),
        ConsumerError::RateLimited(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "You have contacted other hosts many times in a short while. Try again in {} seconds.",
                wait.as_secs().max(1)
            ),
        ),
        ConsumerError::Envelope(_) | ConsumerError::Db(_) => {
            tracing::error!(error = %err, "host connection failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Try again in a moment.".into(),
            )
        }
    }
}

async fn render(
    browser: &Browser,
    user: &SessionUser,
    layout: Layout,
    status: StatusCode,
    base_url: String,
    report: Option<ReportView>,
) -> Result<Response, PageError> {
    let rows = connection::list(browser.state().db(), &Owner::User(user.user_id.clone()))
        .await
        .map_err(PageError::internal)?
        .into_iter()
        .map(|c| HostRow {
            name: c.host_name.clone().unwrap_or_else(|| c.base_url.clone()),
            status: status_text(&c.status),
            connected: c.status == "connected",
            since: c.updated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            last_error: c.last_error.clone(),
            base_url: c.base_url,
            id: c.id,
        })
        .collect();
    Ok(html(
        status,
        &HostsPage {
            layout,
            hosts: rows,
            base_url,
            report,
        },
    ))
}

/// `GET /account/hosts`.
#[handler]
pub async fn get(browser: Browser, Query(q): Query<HostsQuery>) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::HOSTS));
    };
    let mut layout = Layout::new("Connected badge hosts", &browser);
    match q.done.as_deref() {
        Some("connected") => layout = layout.with_notice("The host is connected."),
        Some("disconnected") => {
            layout = layout.with_notice("The host is disconnected and its access was withdrawn.")
        }
        _ => {}
    }
    render(&browser, &user, layout, StatusCode::OK, String::new(), None).await
}

/// The connect form.
#[derive(Deserialize)]
pub struct ConnectForm {
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    access: String,
}

/// `POST /account/hosts/connect`: discovery and registration, then a page that sends the person
/// on to the host (a link: a form's answer may not redirect to another site under this CSP).
#[handler]
pub async fn connect(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<ConnectForm>,
) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::HOSTS));
    };
    let owner = Owner::User(user.user_id.clone());
    let access = Access::parse(&form.access).unwrap_or_else(|| Access::default_for(&owner));
    let started = match HostBase::parse(&form.base_url) {
        Ok(base) => connection::start(browser.state(), &owner, &user.user_id, base, access).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(started) => {
            let host = started
                .host
                .name
                .clone()
                .unwrap_or_else(|| started.host.base.as_str().to_owned());
            let layout = Layout::new("Allow access at the host", &browser);
            Ok(html(
                StatusCode::OK,
                &ContinuePage {
                    layout,
                    host,
                    authorization_url: started.authorization_url,
                },
            ))
        }
        Err(err) => {
            let (status, text) = message(&err);
            let layout = Layout::new("Connected badge hosts", &browser).with_error(text);
            render(&browser, &user, layout, status, form.base_url, None).await
        }
    }
}

/// What a host sends back.
#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /account/hosts/callback`: the code exchange.
#[handler]
pub async fn callback(
    browser: Browser,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::HOSTS));
    };
    let params = CallbackParams {
        state: q.state,
        code: q.code,
        error: q.error,
        error_description: q.error_description,
    };
    match connection::complete(browser.state(), &user.user_id, params).await {
        Ok(_) => Ok(see_other(&format!("{}?done=connected", paths::HOSTS), None)),
        Err(err) => {
            let (status, text) = message(&err);
            let layout = Layout::new("Connected badge hosts", &browser).with_error(text);
            render(&browser, &user, layout, status, String::new(), None).await
        }
    }
}

/// A form naming one connection.
#[derive(Deserialize)]
pub struct ConnectionForm {
    #[serde(default)]
    connection_id: String,
}

/// `POST /account/hosts/import`: imports and shows the report.
#[handler]
pub async fn import_badges(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<ConnectionForm>,
) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::HOSTS));
    };
    let state = browser.state();
    let owner = Owner::User(user.user_id.clone());
    let result = match connection::get(state.db(), &owner, &form.connection_id).await {
        Ok(row) => {
            let host = row
                .host_name
                .clone()
                .unwrap_or_else(|| row.base_url.clone());
            import::import(state, row).await.map(|r| (host, r))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((host, report)) => {
            let view = ReportView {
                host,
                pages: report.pages,
                total: report
                    .total
                    .map_or_else(|| "not said".into(), |t| t.to_string()),
                imported: report
                    .imported
                    .iter()
                    .map(|i| ReportLine {
                        id: i.credential_id.clone(),
                        text: match i.outcome {
                            "created" => "added".into(),
                            "replaced" => "updated".into(),
                            _ => "kept (the copy here is newer)".into(),
                        },
                    })
                    .collect(),
                rejected: report
                    .rejected
                    .iter()
                    .map(|r| ReportLine {
                        id: r.credential_id.clone().unwrap_or_else(|| "(no id)".into()),
                        text: r.reason.clone(),
                    })
                    .collect(),
                profile_name: report
                    .profile
                    .as_ref()
                    .and_then(|p| p.get("name"))
                    .and_then(|n| n.as_str())
                    .map(str::to_owned),
            };
            let layout = Layout::new("Connected badge hosts", &browser).with_notice(format!(
                "Imported {} badge(s); {} could not be imported.",
                report.imported.len(),
                report.rejected.len()
            ));
            render(
                &browser,
                &user,
                layout,
                StatusCode::OK,
                String::new(),
                Some(view),
            )
            .await
        }
        Err(err) => {
            let (status, text) = message(&err);
            let layout = Layout::new("Connected badge hosts", &browser).with_error(text);
            render(&browser, &user, layout, status, String::new(), None).await
        }
    }
}

/// `POST /account/hosts/disconnect`.
#[handler]
pub async fn disconnect(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<ConnectionForm>,
) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::HOSTS));
    };
    let state = browser.state();
    let owner = Owner::User(user.user_id.clone());
    let result = match connection::get(state.db(), &owner, &form.connection_id).await {
        Ok(row) => connection::disconnect(state, row).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(see_other(
            &format!("{}?done=disconnected", paths::HOSTS),
            None,
        )),
        Err(err) => {
            let (status, text) = message(&err);
            let layout = Layout::new("Connected badge hosts", &browser).with_error(text);
            render(&browser, &user, layout, status, String::new(), None).await
        }
    }
}
