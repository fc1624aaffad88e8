//! Server-rendered pages (askama templates in `web/templates/`): sign-in, registration, email
//! confirmation, password reset and the account page. One poem `Route` with the page layer
//! (browser cookie, CSRF, strict security headers, HTML error pages). Nothing here imports
//! `http/`; pages call the same `accounts` functions as the JSON API.

pub mod account;
pub mod assets;
pub mod authorize;
pub mod consent;
pub mod hosts;
pub mod layout;
pub mod password_reset;
pub mod paths;
pub mod protected_form;
pub mod register;
pub mod security_headers;
pub mod sign_in;
pub mod sign_out;
pub mod verify_email;

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use poem::{
    Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response, Route, get,
    http::{StatusCode, header},
};

use crate::{
    accounts::{AccountError, SessionUser, csrf, secret_token, session_cookie, sessions},
    app::AppState,
};

/// The page routes, to be nested at `/account`.
pub fn routes() -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/", get(account::get))
        .at("/sign-in", get(sign_in::get).post(sign_in::post))
        .at("/sign-out", poem::post(sign_out::post))
        .at("/register", get(register::get).post(register::post))
        .at(
            "/verify-email",
            get(verify_email::get).post(verify_email::post),
        )
        .at(
            "/forgot-password",
            get(password_reset::forgot_get).post(password_reset::forgot_post),
        )
        .at(
            "/reset-password",
            get(password_reset::reset_get).post(password_reset::reset_post),
        )
        .at("/password", poem::post(account::change_password))
        .at("/sessions/end", poem::post(account::end_session))
        .at("/apps/revoke", poem::post(consent::revoke))
        .at("/hosts", get(hosts::get))
        .at("/hosts/connect", poem::post(hosts::connect))
        .at("/hosts/callback", get(hosts::callback))
        .at("/hosts/import", poem::post(hosts::import_badges))
        .at("/hosts/disconnect", poem::post(hosts::disconnect))
        .around(page_layer)
}

/// `GET /oauth/authorize` (the authorization endpoint is a page), to be mounted at
/// [`paths::AUTHORIZE`].
pub fn authorize_endpoint() -> impl Endpoint<Output = Response> {
    get(authorize::get).around(page_layer)
}

/// `POST /oauth/consent`, to be mounted at [`paths::CONSENT`].
pub fn consent_endpoint() -> impl Endpoint<Output = Response> {
    poem::post(consent::post).around(page_layer)
}

/// The asset routes, to be nested at `/static`.
pub fn asset_routes() -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/:hash/:name", get(assets::get))
        .around(|ep, req| async move {
            let resp = ep.call(req).await.map(IntoResponse::into_response);
            Ok(security_headers::apply(
                resp.unwrap_or_else(|e| e.into_response()),
            ))
        })
}

/// The browser's session cookie value (a new anonymous one when it sent none).
#[derive(Clone)]
pub(crate) struct BrowserCookie {
    value: String,
    fresh: bool,
}

/// Gives every page request a cookie value (CSRF tokens bind to it), turns errors into HTML
/// pages, and sets the security headers.
async fn page_layer<E: Endpoint>(ep: E, mut req: Request) -> poem::Result<Response> {
    let secure = req
        .data::<AppState>()
        .map(|s| s.accounts().secure_cookies())
        .unwrap_or(false);
    let existing = session_cookie::read(
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        secure,
    )
    .filter(|v| secret_token::well_formed(v))
    .map(str::to_owned);
    let cookie = match existing {
        Some(value) => BrowserCookie {
            value,
            fresh: false,
        },
        None => BrowserCookie {
            value: secrecy::ExposeSecret::expose_secret(&secret_token::generate()).to_owned(),
            fresh: true,
        },
    };
    req.set_data(cookie.clone());
    let mut resp = match ep.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => error_response(err),
    };
    if cookie.fresh
        && !resp.headers().contains_key(header::SET_COOKIE)
        && let Ok(v) = session_cookie::set(&cookie.value, secure).parse()
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(security_headers::apply(resp))
}

fn error_response(err: poem::Error) -> Response {
    if err.is::<PageError>() {
        return err.into_response();
    }
    let status = err.status();
    let message = match status {
        StatusCode::NOT_FOUND => "This page does not exist.",
        StatusCode::METHOD_NOT_ALLOWED => "This page cannot be used that way.",
        StatusCode::PAYLOAD_TOO_LARGE => "The form was too large.",
        s if s.is_client_error() => "The request could not be understood. Go back and try again.",
        _ => {
            tracing::error!(error = %err, "page failed");
            "Something went wrong on our side. Try again in a moment."
        }
    };
    PageError::new(status, message).as_page()
}

/// A browser on a page request: its cookie value and, when signed in, who it is.
pub struct Browser {
    cookie: String,
    /// The signed-in user, if any.
    pub user: Option<SessionUser>,
    state: AppState,
    ip: IpAddr,
    user_agent: Option<String>,
}

impl Browser {
    /// The CSRF token for this browser's forms.
    pub fn csrf_token(&self) -> String {
        csrf::token_for(&self.cookie)
    }

    /// The browser's cookie value.
    fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The application state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The peer address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The `User-Agent`, for the session list.
    pub fn user_agent(&self) -> Option<String> {
        self.user_agent.clone()
    }
}

impl<'a> FromRequest<'a> for Browser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = req
            .data::<AppState>()
            .cloned()
            .ok_or_else(|| PageError::internal("application state missing"))?;
        let cookie = req
            .data::<BrowserCookie>()
            .cloned()
            .ok_or_else(|| PageError::internal("page layer missing"))?;
        let user = if cookie.fresh {
            None
        } else {
            sessions::resolve(state.db(), state.clock(), &cookie.value)
                .await
                .map_err(PageError::from)?
        };
        Ok(Self {
            cookie: cookie.value,
            user,
            state,
            ip: client_ip(req),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }
}

fn client_ip(req: &Request) -> IpAddr {
    req.remote_addr()
        .as_socket_addr()
        .map(SocketAddr::ip)
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// A page-level failure, shown as an HTML page with a plain message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PageError {
    status: StatusCode,
    message: &'static str,
}

impl PageError {
    /// A page error with a status and a message for people.
    pub fn new(status: StatusCode, message: &'static str) -> Self {
        Self { status, message }
    }

    /// A 500; the cause is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "page failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. Try again in a moment.",
        )
    }

    fn as_page(&self) -> Response {
        let page = ErrorPage {
            title: if self.status.is_server_error() {
                "Something went wrong"
            } else {
                "This did not work"
            },
            message: self.message,
            css: assets::stylesheet_path(),
        };
        html(self.status, &page)
    }
}

impl From<AccountError> for PageError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Db(e) => Self::internal(e),
            AccountError::Hashing(e) => Self::internal(e),
            AccountError::RateLimited { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts from your network. Wait a minute and try again.",
            ),
            other => {
                tracing::warn!(error = %other, "unexpected account error on a page");
                Self::new(
                    StatusCode::BAD_REQUEST,
                    "This did not work. Go back and try again.",
                )
            }
        }
    }
}

impl poem::error::ResponseError for PageError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        self.as_page()
    }
}

#[derive(Template)]
#[template(path = "pages/error.html")]
struct ErrorPage {
    title: &'static str,
    message: &'static str,
    css: &'static str,
}

/// Renders a template as an HTML response with `status`.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(err) => {
            tracing::error!(error = %err, "template failed");
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}

/// A `303 See Other` to `location`, optionally setting the session cookie.
pub fn see_other(location: &str, set_cookie: Option<String>) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location);
    if let Some(cookie) = set_cookie {
        builder = builder.header(header::SET_COOKIE, cookie);
    }
    builder.finish()
}

/// The sign-in page with a return to `next`.
pub fn sign_in_redirect(next: &str) -> Response {
    let mut target = url::form_urlencoded::Serializer::new(String::new());
    target.append_pair("next", next);
    see_other(&format!("{}?{}", paths::SIGN_IN, target.finish()), None)
}

/// A page with one message and an optional link.
#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct MessagePage {
    pub layout: layout::Layout,
    pub message: &'static str,
    pub link: Option<(&'static str, &'static str)>,
}
