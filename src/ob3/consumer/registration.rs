//! Our RFC 7591 registration at another host (`x-imssf-registrationUrl`): the metadata OB 3.0
//! requires, from configuration, and the client id and secret the host answers.

use reqwest::{Method, header::ACCEPT};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::{ConsumerError, excerpt};
use crate::{
    config::Settings,
    verify::fetch::{Fetcher, OutboundRequest},
};

/// A stable identifier of this software (RFC 7591 `software_id`), the same on every instance.
pub const SOFTWARE_ID: &str = "8d3c1f0e-6a8e-4d35-9a43-0b0c0e5d7a11";

/// Where the person's browser comes back after authorizing at a host.
pub const CALLBACK_PATH: &str = "/account/hosts/callback";

/// What we tell hosts about ourselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProfile {
    pub client_name: String,
    pub client_uri: String,
    pub logo_uri: String,
    pub tos_uri: String,
    pub policy_uri: String,
    pub redirect_uri: String,
}

impl ClientProfile {
    /// From the settings and the public URL.
    pub fn from_settings(settings: &Settings, public_url: &Url) -> Self {
        let public = public_url.as_str().trim_end_matches('/').to_owned();
        let client_uri = settings
            .host_client_uri
            .as_ref()
            .map_or_else(|| format!("{public}/"), Url::to_string);
        let docs = format!("{public}/docs");
        Self {
            client_name: settings.host_client_name.clone(),
            logo_uri: settings
                .host_logo_uri
                .as_ref()
                .or(settings.image_url.as_ref())
                .map_or_else(
                    || format!("{}/static/logo.png", client_uri.trim_end_matches('/')),
                    Url::to_string,
                ),
            tos_uri: settings
                .tos_url
                .as_ref()
                .map_or_else(|| docs.clone(), Url::to_string),
            policy_uri: settings
                .privacy_url
                .as_ref()
                .map_or_else(|| docs.clone(), Url::to_string),
            redirect_uri: format!("{public}{CALLBACK_PATH}"),
            client_uri,
        }
    }

    /// The registration request for `scope` (space-separated).
    pub fn registration_request(&self, scope: &str) -> Value {
        json!({
            "client_name": self.client_name,
            "client_uri": self.client_uri,
            "logo_uri": self.logo_uri,
            "tos_uri": self.tos_uri,
            "policy_uri": self.policy_uri,
            "software_id": SOFTWARE_ID,
            "software_version": env!("CARGO_PKG_VERSION"),
            "redirect_uris": [self.redirect_uri],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": scope,
        })
    }
}

/// Our client at a host.
#[derive(Debug)]
pub struct Registered {
    pub client_id: String,
    /// `None` when the host registered us as a public client.
    pub client_secret: Option<SecretString>,
}

/// Registers at `registration_url`.
pub async fn register(
    fetcher: &Fetcher,
    registration_url: &str,
    profile: &ClientProfile,
    scope: &str,
) -> Result<Registered, ConsumerError> {
    let answer = fetcher
        .send(
            OutboundRequest::new(Method::POST, registration_url)
                .header(ACCEPT, "application/json")
                .json(&profile.registration_request(scope)),
        )
        .await?;
    if answer.status != 201 && answer.status != 200 {
        return Err(ConsumerError::HostError(format!(
            "the host refused our registration (HTTP {}): {}",
            answer.status,
            excerpt(&answer.body)
        )));
    }
    let body = answer.json().unwrap_or(Value::Null);
    let client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConsumerError::HostError("the registration answer has no client_id".into()))?
        .to_owned();
    Ok(Registered {
        client_id,
        client_secret: body
            .get("client_secret")
            .and_then(Value::as_str)
            .map(|s| SecretString::from(s.to_owned())),
    })
}
