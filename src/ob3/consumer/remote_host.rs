//! Another OB 3.0 host as we learn it: its base URL (parsed once), and the endpoints its Service
//! Description Document (`<base>/ims/ob/v3p0/discovery`) names in `OAuth2ACG`.

use reqwest::{Method, header::ACCEPT};
use serde_json::Value;
use url::Url;

use super::{ConsumerError, excerpt};
use crate::verify::fetch::{Fetcher, OutboundRequest};

/// A host's base URL: absolute http(s), no query or fragment, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBase(Url);

impl HostBase {
    /// Parses what a person typed (`https://host.example` or `https://host.example/path/`).
    pub fn parse(raw: &str) -> Result<Self, ConsumerError> {
        let raw = raw.trim();
        let mut url = Url::parse(raw)
            .map_err(|e| ConsumerError::InvalidBaseUrl(format!("`{raw}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(ConsumerError::InvalidBaseUrl(format!(
                "`{raw}` must be an https URL with a host"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConsumerError::InvalidBaseUrl(
                "the URL must not carry a user name or password".into(),
            ));
        }
        url.set_query(None);
        url.set_fragment(None);
        // A person may paste the API base or the discovery URL itself.
        let path = url
            .path()
            .trim_end_matches('/')
            .trim_end_matches("/discovery")
            .trim_end_matches("/ims/ob/v3p0")
            .trim_end_matches('/')
            .to_owned();
        url.set_path(&path);
        Ok(Self(url))
    }

    /// The base, without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// `<base>/ims/ob/v3p0/discovery`.
    pub fn discovery_url(&self) -> String {
        format!("{}/ims/ob/v3p0/discovery", self.as_str())
    }
}

/// What the Service Description Document says about a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHost {
    pub base: HostBase,
    /// `info.title`.
    pub name: Option<String>,
    /// Where the OB 3.0 operations live (`servers[0].url`, else `<base>/ims/ob/v3p0`).
    pub api_base: String,
    pub registration_url: String,
    pub authorization_url: String,
    pub token_url: String,
    pub refresh_url: Option<String>,
    /// The scopes the host offers.
    pub scopes: Vec<String>,
}

fn absolute(base: &Url, raw: &str, what: &str) -> Result<String, ConsumerError> {
    base.join(raw)
        .map(|u| u.to_string())
        .map_err(|e| ConsumerError::HostError(format!("the discovery document's {what}: {e}")))
}

impl RemoteHost {
    /// Reads a Service Description Document fetched from `base`'s discovery URL.
    pub fn from_document(base: HostBase, sdd: &Value) -> Result<Self, ConsumerError> {
        let scheme = sdd
            .pointer("/components/securitySchemes/OAuth2ACG")
            .ok_or_else(|| {
                ConsumerError::HostError(
                    "the discovery document has no components.securitySchemes.OAuth2ACG".into(),
                )
            })?;
        let text = |pointer: &str| scheme.pointer(pointer).and_then(Value::as_str);
        let discovery = Url::parse(&base.discovery_url())
            .map_err(|e| ConsumerError::InvalidBaseUrl(e.to_string()))?;
        let required = |pointer: &str, what: &str| {
            text(pointer)
                .ok_or_else(|| {
                    ConsumerError::HostError(format!(
                        "the discovery document lacks OAuth2ACG {what}"
                    ))
                })
                .and_then(|raw| absolute(&discovery, raw, what))
        };
        let registration_url = required("/x-imssf-registrationUrl", "x-imssf-registrationUrl")?;
        let authorization_url = required(
            "/flows/authorizationCode/authorizationUrl",
            "flows.authorizationCode.authorizationUrl",
        )?;
        let token_url = required(
            "/flows/authorizationCode/tokenUrl",
            "flows.authorizationCode.tokenUrl",
        )?;
        let refresh_url = text("/flows/authorizationCode/refreshUrl")
            .map(|raw| absolute(&discovery, raw, "refreshUrl"))
            .transpose()?;
        let scopes = scheme
            .pointer("/flows/authorizationCode/scopes")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let api_base = sdd
            .pointer("/servers/0/url")
            .and_then(Value::as_str)
            .map(|raw| absolute(&discovery, raw, "servers[0].url"))
            .transpose()?
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("{}/ims/ob/v3p0", base.as_str()));
        Ok(Self {
            name: sdd
                .pointer("/info/title")
                .and_then(Value::as_str)
                .map(str::to_owned),
            base,
            api_base,
            registration_url,
            authorization_url,
            token_url,
            refresh_url,
            scopes,
        })
    }
}

/// Fetches and reads `base`'s Service Description Document (never cached: a connection is made
/// rarely and must see the host's current endpoints).
pub async fn discover(fetcher: &Fetcher, base: HostBase) -> Result<RemoteHost, ConsumerError> {
    let answer = fetcher
        .send(
            OutboundRequest::new(Method::GET, base.discovery_url())
                .header(ACCEPT, "application/json"),
        )
        .await?;
    if answer.status != 200 {
        return Err(ConsumerError::HostError(format!(
            "{} answered HTTP {}: {}",
            base.discovery_url(),
            answer.status,
            excerpt(&answer.body)
        )));
    }
    let sdd = answer.json().ok_or_else(|| {
        ConsumerError::HostError(format!(
            "{} did not answer a JSON document",
            base.discovery_url()
        ))
    })?;
    RemoteHost::from_document(base, &sdd)
}

/// The host's RFC 7009 revocation endpoint from its RFC 8414 metadata, when it publishes one
/// (OB 3.0's discovery document does not name it).
pub async fn revocation_endpoint(fetcher: &Fetcher, token_url: &str) -> Option<String> {
    let token = Url::parse(token_url).ok()?;
    let metadata = token.join("/.well-known/oauth-authorization-server").ok()?;
    let answer = fetcher
        .send(
            OutboundRequest::new(Method::GET, metadata.as_str()).header(ACCEPT, "application/json"),
        )
        .await
        .ok()?;
    (answer.status == 200)
        .then(|| answer.json())
        .flatten()?
        .get("revocation_endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized() {
        for raw in [
            "https://host.example",
            "https://host.example/",
            "https://host.example/ims/ob/v3p0",
            "https://host.example/ims/ob/v3p0/discovery?x=1",
        ] {
            assert_eq!(
                HostBase::parse(raw).unwrap().as_str(),
                "https://host.example"
            );
        }
        assert!(HostBase::parse("ftp://host.example").is_err());
        assert!(HostBase::parse("not a url").is_err());
        assert!(HostBase::parse("https://u:p@host.example").is_err());
    }

    #[test]
    fn the_security_scheme_is_read() {
        let base = HostBase::parse("https://h.example").unwrap();
        let sdd = serde_json::json!({
            "info": {"title": "H"},
            "components": {"securitySchemes": {"OAuth2ACG": {
                "type": "oauth2",
                "x-imssf-registrationUrl": "https://h.example/oauth/register",
                "flows": {"authorizationCode": {
                    "authorizationUrl": "/oauth/authorize",
                    "tokenUrl": "https://h.example/oauth/token",
                    "scopes": {"s1": "one"}
                }}
            }}}
        });
        let host = RemoteHost::from_document(base.clone(), &sdd).unwrap();
        assert_eq!(host.authorization_url, "https://h.example/oauth/authorize");
        assert_eq!(host.api_base, "https://h.example/ims/ob/v3p0");
        assert_eq!(host.scopes, vec!["s1".to_owned()]);
        assert!(RemoteHost::from_document(base, &serde_json::json!({})).is_err());
    }
}
