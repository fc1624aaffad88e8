//! The consent page of the authorization flow and its decision (`POST /oauth/consent`), and
//! withdrawing an application's access from the account page (`POST /account/apps/revoke`).
//!
//! The form carries the authorization request's parameters, which the POST checks again from
//! scratch (client, exact redirect URI, PKCE, scopes, the user's role), so nothing the browser
//! holds is trusted. Its `form-action` allows exactly the request's registered redirect origin:
//! the POST answers with a redirect to the client, and Chrome applies `form-action` to it.

use askama::Template;
use poem::{
    Response, handler,
    http::{HeaderValue, StatusCode, header},
};
use serde::Deserialize;

use super::{
    Browser, PageError,
    authorize::{csp_source, failure, issuer},
    html,
    layout::Layout,
    paths,
    protected_form::ProtectedForm,
    security_headers::page_csp_allowing,
    see_other, sign_in_redirect,
};
use crate::{
    accounts::memberships::Principal,
    oauth::{
        authorization,
        authorization_request::{self, AuthorizationRequest, RawAuthorizationRequest},
        consents,
    },
};

#[derive(Template)]
#[template(path = "pages/consent.html")]
struct ConsentPage {
    layout: Layout,
    client_name: String,
    logo_uri: Option<String>,
    client_uri: Option<String>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    scopes: Vec<&'static str>,
    return_to: String,
    fields: Vec<(&'static str, String)>,
}

fn https_only(uri: Option<&str>) -> Option<String> {
    uri.filter(|u| url::Url::parse(u).is_ok_and(|url| url.scheme() == "https"))
        .map(str::to_owned)
}

fn web_link(uri: Option<&str>) -> Option<String> {
    uri.filter(|u| url::Url::parse(u).is_ok_and(|url| matches!(url.scheme(), "https" | "http")))
        .map(str::to_owned)
}

/// The consent page for a checked request.
pub fn render(
    browser: &Browser,
    request: &AuthorizationRequest,
    raw: &RawAuthorizationRequest,
) -> Response {
    let client = &request.client;
    let logo_uri = https_only(client.logo_uri.as_deref());
    let fields = [
        ("response_type", &raw.response_type),
        ("client_id", &raw.client_id),
        ("redirect_uri", &raw.redirect_uri),
        ("scope", &raw.scope),
        ("state", &raw.state),
        ("code_challenge", &raw.code_challenge),
        ("code_challenge_method", &raw.code_challenge_method),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value.clone()?)))
    .collect();
    let return_to = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    let page = ConsentPage {
        layout: Layout::new("Allow access?", browser),
        client_name: client.name.clone(),
        client_uri: web_link(client.client_uri.as_deref()),
        tos_uri: web_link(client.tos_uri.as_deref()),
        policy_uri: web_link(client.policy_uri.as_deref()),
        scopes: request.scopes.iter().map(|s| s.description()).collect(),
        return_to,
        fields,
        logo_uri: logo_uri.clone(),
    };
    let mut resp = html(StatusCode::OK, &page);
    let form_action = csp_source(&request.redirect_uri);
    let img = logo_uri.as_deref().and_then(csp_source);
    if let Ok(value) =
        HeaderValue::from_str(&page_csp_allowing(form_action.as_deref(), img.as_deref()))
    {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    resp
}

/// The consent form: the request's parameters and the button pressed.
#[derive(Deserialize)]
pub struct ConsentForm {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    #[serde(default)]
    decision: String,
}

/// `POST /oauth/consent`.
#[handler]
pub async fn post(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<ConsentForm>,
) -> Result<Response, PageError> {
    let raw = RawAuthorizationRequest {
        response_type: form.response_type,
        client_id: form.client_id,
        redirect_uri: form.redirect_uri,
        scope: form.scope,
        state: form.state,
        code_challenge: form.code_challenge,
        code_challenge_method: form.code_challenge_method,
    };
    let state = browser.state().clone();
    let issuer = issuer(&state);
    let request = match authorization_request::parse(state.db(), &raw).await {
        Ok(request) => request,
        Err(err) => return failure(err, &issuer),
    };
    let Some(user) = browser.user.clone() else {
        let query = serde_json::to_value(&raw)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|map| {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in map {
                    if let Some(v) = v.as_str() {
                        q.append_pair(&k, v);
                    }
                }
                q.finish()
            })
            .unwrap_or_default();
        return Ok(sign_in_redirect(&format!("{}?{query}", paths::AUTHORIZE)));
    };
    match form.decision.as_str() {
        "approve" => match authorization::approve(
            state.db(),
            state.clock().now(),
            &issuer,
            &request,
            &user.user_id,
        )
        .await
        {
            Ok(location) => Ok(see_other(&location, None)),
            Err(err) => failure(err, &issuer),
        },
        "deny" => Ok(see_other(
            &authorization::denied(&request).location(&issuer),
            None,
        )),
        _ => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Choose Approve or Deny.",
        )),
    }
}

/// The withdraw-access form on the account page.
#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    client_id: String,
}

/// `POST /account/apps/revoke`: withdraws the consent and ends the application's tokens.
#[handler]
pub async fn revoke(
    browser: Browser,
    ProtectedForm(form): ProtectedForm<RevokeForm>,
) -> Result<Response, PageError> {
    let Some(user) = browser.user.clone() else {
        return Ok(sign_in_redirect(paths::ACCOUNT));
    };
    let state = browser.state();
    consents::revoke(
        state.db(),
        &user.user_id,
        &form.client_id,
        state.clock().now(),
    )
    .await
    .map_err(PageError::internal)?;
    state
        .token_cache()
        .evict_principal(&Principal::User(user.user_id.clone()));
    Ok(see_other(
        &format!("{}?done=app-revoked", paths::ACCOUNT),
        None,
    ))
}
