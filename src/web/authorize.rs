//! `GET /oauth/authorize`: the OAuth authorization endpoint as a page. An untrusted client or
//! redirect URI is an error page (never a redirect); other errors go back to the client; a
//! signed-out person is sent to sign in and returns here; a signed-in one sees the consent page,
//! or goes straight back with a code when the remembered consent covers the request.

use poem::{
    Request, Response, handler,
    http::{HeaderValue, StatusCode, header},
    web::Query,
};

use super::{
    Browser, PageError, consent, paths, paths::SafeNext, security_headers::page_csp_allowing,
    sign_in_redirect,
};
use crate::{
    app::AppState,
    oauth::{
        authorization::{self, Next},
        authorization_request::{self, AuthorizeError, RawAuthorizationRequest},
    },
};

/// This server's issuer identifier (RFC 9207 `iss`): the public base URL without a trailing slash.
pub fn issuer(state: &AppState) -> String {
    state.public_url().as_str().trim_end_matches('/').to_owned()
}

/// A `302 Found` to `location` (off-site: the client's redirect URI).
pub fn found(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .finish()
}

/// The answer to a failed authorization request: a page, or a redirect to the client.
pub fn failure(err: AuthorizeError, issuer: &str) -> Result<Response, PageError> {
    match err {
        AuthorizeError::Page(message) => Err(PageError::new(StatusCode::BAD_REQUEST, message)),
        AuthorizeError::Redirect(redirect) => Ok(found(&redirect.location(issuer))),
        AuthorizeError::Db(err) => Err(PageError::internal(err)),
    }
}

/// The CSP source of a redirect URI: its origin for http(s), `scheme:` for a private-use scheme.
pub fn csp_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}:")),
    }
}

/// `GET /oauth/authorize`.
#[handler]
pub async fn get(
    browser: Browser,
    req: &Request,
    Query(raw): Query<RawAuthorizationRequest>,
) -> Result<Response, PageError> {
    let state = browser.state().clone();
    let issuer = issuer(&state);
    let request = match authorization_request::parse(state.db(), &raw).await {
        Ok(request) => request,
        Err(err) => return failure(err, &issuer),
    };
    let Some(user) = browser.user.clone() else {
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| paths::AUTHORIZE.to_owned());
        return Ok(sign_in_redirect(&next));
    };
    match authorization::begin(
        state.db(),
        state.clock().now(),
        &issuer,
        &request,
        &user.user_id,
    )
    .await
    {
        Ok(Next::Redirect(location)) => Ok(found(&location)),
        Ok(Next::Consent) => Ok(consent::render(&browser, &request, &raw)),
        Err(err) => failure(err, &issuer),
    }
}

/// When a sign-in page returns to an authorization request whose client and redirect URI check
/// out, its `form-action` must allow that redirect's origin (the sign-in answer may end in a
/// redirect straight to the client when the consent is remembered). Other responses are unchanged.
pub async fn allow_return_to_client(state: &AppState, next: &SafeNext, resp: Response) -> Response {
    let Some(query) = next
        .as_str()
        .strip_prefix(paths::AUTHORIZE)
        .and_then(|rest| rest.strip_prefix('?'))
    else {
        return resp;
    };
    let mut raw = RawAuthorizationRequest::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "client_id" => raw.client_id = Some(v.into_owned()),
            "redirect_uri" => raw.redirect_uri = Some(v.into_owned()),
            _ => {}
        }
    }
    let Ok((_, redirect_uri)) = authorization_request::trusted_redirect(state.db(), &raw).await
    else {
        return resp;
    };
    let Some(source) = csp_source(&redirect_uri) else {
        return resp;
    };
    let mut resp = resp;
    if let Ok(value) = HeaderValue::from_str(&page_csp_allowing(Some(&source), None)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    resp
}
