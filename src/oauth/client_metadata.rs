//! RFC 7591 client metadata: the raw JSON a wallet or host sends to `/oauth/register`, parsed once
//! into a [`ClientMetadata`] whose every field is checked (so registration, the RFC 7592 update and
//! the consent page never look at an unchecked value).
//!
//! Rules (what OB 3.0 asks of registration, and what keeps a registered client from impersonating
//! another site): `client_uri`, `logo_uri`, `tos_uri` and `policy_uri` are absolute `https` URLs on
//! one host; each redirect URI is `https` on that same host, `http` on a loopback host
//! (`localhost`, `127.0.0.1`, `[::1]`, any port, RFC 8252 §7.3), or a private-use scheme in
//! reverse-domain form (`com.example.app:/cb`, RFC 8252 §7.1) for native apps. No URL has a
//! fragment or user information. Scopes are known and limited to [`REGISTRABLE_SCOPES`]: service
//! scopes such as `credentials:issue` are never granted to an anonymously registered client.

use serde::Deserialize;
use url::{Host, Url};

use super::{Scope, ScopeSet};

/// The scopes a dynamically registered client may ask for: the four OB 3.0 API scopes and
/// `offline_access`.
pub const REGISTRABLE_SCOPES: [Scope; 5] = [
    Scope::ObCredentialReadonly,
    Scope::ObCredentialUpsert,
    Scope::ObProfileReadonly,
    Scope::ObProfileUpdate,
    Scope::OfflineAccess,
];

/// Most redirect URIs one client registers.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Most contacts one client lists.
pub const MAX_CONTACTS: usize = 10;
/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Longest name, software id or version (characters).
const MAX_TEXT_CHARS: usize = 200;

/// Why metadata was refused; the RFC 7591 §3.2.2 error code it becomes (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// 400 `invalid_redirect_uri`: a redirect URI is malformed or not allowed.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// 400 `invalid_client_metadata`: any other field is missing or not allowed.
    #[error("{0}")]
    InvalidClientMetadata(String),
}

impl MetadataError {
    /// The RFC 7591 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
        }
    }
}

fn invalid(text: impl Into<String>) -> MetadataError {
    MetadataError::InvalidClientMetadata(text.into())
}

/// How the client authenticates at the token endpoint (`token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenEndpointAuthMethod {
    /// HTTP Basic with the client secret (the default).
    #[default]
    ClientSecretBasic,
    /// The client secret in the form body.
    ClientSecretPost,
    /// A public client (a native app): no secret, PKCE only.
    None,
}

impl TokenEndpointAuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }

    /// Parses the RFC 7591 name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// Whether the client holds a secret.
    pub fn is_confidential(self) -> bool {
        self != Self::None
    }
}

/// A grant type a registered client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

impl GrantType {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// A checked redirect URI, kept exactly as the client registered it (the authorization endpoint
/// compares redirect URIs as strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checked client metadata (RFC 7591 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    pub client_name: String,
    pub client_uri: Url,
    pub logo_uri: Url,
    pub tos_uri: Url,
    pub policy_uri: Url,
    pub software_id: String,
    pub software_version: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub scope: ScopeSet,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub grant_types: Vec<GrantType>,
    /// Always `["code"]` (the only response type served).
    pub response_types: Vec<&'static str>,
    pub contacts: Vec<String>,
}

/// The request body as sent. Unknown members are ignored (RFC 7591 §2); so are the members a
/// server assigns (`client_id_issued_at`, `registration_access_token`, …) that an RFC 7592 update
/// may echo back.
#[derive(Debug, Default, Deserialize)]
pub struct RawClientMetadata {
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub scope: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub contacts: Option<Vec<String>>,
    /// Only in an RFC 7592 update, where it must name the client being updated.
    pub client_id: Option<String>,
    /// Only in an RFC 7592 update: when present it must be the client's current secret.
    pub client_secret: Option<String>,
}

impl RawClientMetadata {
    /// Reads a JSON request body; a body that is not a JSON object of the right member types is
    /// `invalid_client_metadata`.
    pub fn from_json(body: &[u8]) -> Result<Self, MetadataError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(invalid("the body must be a JSON object"));
        }
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
    }
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, MetadataError> {
    value.ok_or_else(|| invalid(format!("{name} is required")))
}

fn text(value: Option<String>, name: &str) -> Result<String, MetadataError> {
    let value = required(value, name)?;
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(invalid(format!(
            "{name} must be 1 to {MAX_TEXT_CHARS} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{name} must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Parses a URL and refuses what no registered URL may carry.
fn parse_url(raw: &str) -> Result<Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err("is too long".into());
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let url = Url::parse(raw).map_err(|_| "is not an absolute URL".to_owned())?;
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user information".into());
    }
    Ok(url)
}

/// `client_uri` and the other web pages: https URLs with a host.
fn web_url(value: Option<String>, name: &str) -> Result<Url, MetadataError> {
    let raw = required(value, name)?;
    let url = parse_url(&raw).map_err(|why| invalid(format!("{name} `{raw}` {why}")))?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err(invalid(format!("{name} `{raw}` must be an https URL")));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    }
}

/// A private-use URI scheme (RFC 8252 §7.1) in reverse-domain form: at least two labels of
/// letters, digits and `-`, so `javascript:`, `data:`, `file:` and the web schemes never qualify.
fn is_private_use_scheme(scheme: &str) -> bool {
    let labels: Vec<&str> = scheme.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        })
}

fn redirect_uri(raw: &str, host: &str) -> Result<RedirectUri, MetadataError> {
    let bad = |why: &str| MetadataError::InvalidRedirectUri(format!("redirect_uri `{raw}` {why}"));
    let url = parse_url(raw).map_err(|why| bad(&why))?;
    match url.scheme() {
        "https" if is_loopback(&url) => {}
        "https" => {
            if url.host_str() != Some(host) {
                return Err(bad(&format!(
                    "must be on the host of client_uri ({host}) or a loopback address"
                )));
            }
        }
        "http" => {
            if !is_loopback(&url) {
                return Err(bad(
                    "must be https (http only on localhost, 127.0.0.1 or [::1])",
                ));
            }
        }
        scheme if is_private_use_scheme(scheme) => {}
        _ => {
            return Err(bad(
                "must be https, http on a loopback address, or a private-use scheme such as \
                 com.example.app:/callback",
            ));
        }
    }
    Ok(RedirectUri(raw.to_owned()))
}

impl TryFrom<RawClientMetadata> for ClientMetadata {
    type Error = MetadataError;

    fn try_from(raw: RawClientMetadata) -> Result<Self, MetadataError> {
        let client_name = text(raw.client_name, "client_name")?;
        let client_uri = web_url(raw.client_uri, "client_uri")?;
        let host = client_uri.host_str().unwrap_or_default().to_owned();
        let same_host = |url: Url, name: &str| {
            if url.host_str() == Some(host.as_str()) {
                Ok(url)
            } else {
                Err(invalid(format!(
                    "{name} must be on the host of client_uri ({host})"
                )))
            }
        };
        let logo_uri = same_host(web_url(raw.logo_uri, "logo_uri")?, "logo_uri")?;
        let tos_uri = same_host(web_url(raw.tos_uri, "tos_uri")?, "tos_uri")?;
        let policy_uri = same_host(web_url(raw.policy_uri, "policy_uri")?, "policy_uri")?;
        let software_id = text(raw.software_id, "software_id")?;
        let software_version = text(raw.software_version, "software_version")?;

        let uris = required(raw.redirect_uris, "redirect_uris")?;
        if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
            return Err(MetadataError::InvalidRedirectUri(format!(
                "redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"
            )));
        }
        let mut redirect_uris = Vec::with_capacity(uris.len());
        for raw_uri in &uris {
            let uri = redirect_uri(raw_uri, &host)?;
            if !redirect_uris.contains(&uri) {
                redirect_uris.push(uri);
            }
        }

        let scope_text = required(raw.scope, "scope")?;
        let scope = ScopeSet::parse(&scope_text).map_err(|e| invalid(format!("scope: {e}")))?;
        if scope.is_empty() {
            return Err(invalid("scope must name at least one scope"));
        }
        let registrable: ScopeSet = REGISTRABLE_SCOPES.into_iter().collect();
        if let Some(refused) = scope.iter().find(|s| !registrable.contains(*s)) {
            return Err(invalid(format!(
                "scope `{refused}` cannot be registered; a registered client may ask for the \
                 OB 3.0 scopes and offline_access"
            )));
        }

        let token_endpoint_auth_method = match raw.token_endpoint_auth_method.as_deref() {
            None => TokenEndpointAuthMethod::default(),
            Some(name) => TokenEndpointAuthMethod::parse(name).ok_or_else(|| {
                invalid(format!(
                    "token_endpoint_auth_method `{name}` is not supported (client_secret_basic, \
                     client_secret_post or none)"
                ))
            })?,
        };

        let mut grant_types = Vec::new();
        for name in raw
            .grant_types
            .unwrap_or_else(|| vec!["authorization_code".into()])
        {
            let grant = match name.as_str() {
                "authorization_code" => GrantType::AuthorizationCode,
                "refresh_token" => GrantType::RefreshToken,
                other => {
                    return Err(invalid(format!(
                        "grant_types: `{other}` is not available to registered clients \
                         (authorization_code, refresh_token)"
                    )));
                }
            };
            if !grant_types.contains(&grant) {
                grant_types.push(grant);
            }
        }
        if !grant_types.contains(&GrantType::AuthorizationCode) {
            // RFC 7591 §2.1: the `code` response type needs the authorization_code grant.
            return Err(invalid(
                "grant_types must include authorization_code (the only response type is code)",
            ));
        }
        let response_types = raw.response_types.unwrap_or_else(|| vec!["code".into()]);
        if response_types.is_empty() || response_types.iter().any(|r| r != "code") {
            return Err(invalid("response_types: only `code` is supported"));
        }

        let contacts = raw.contacts.unwrap_or_default();
        if contacts.len() > MAX_CONTACTS {
            return Err(invalid(format!("contacts: at most {MAX_CONTACTS}")));
        }
        let contacts = contacts
            .into_iter()
            .map(|c| {
                let c = c.trim().to_owned();
                if c.is_empty() || c.len() > 320 || c.chars().any(char::is_control) {
                    Err(invalid(
                        "contacts: each must be 1 to 320 printable characters",
                    ))
                } else {
                    Ok(c)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(ClientMetadata {
            client_name,
            client_uri,
            logo_uri,
            tos_uri,
            policy_uri,
            software_id,
            software_version,
            redirect_uris,
            scope,
            token_endpoint_auth_method,
            grant_types,
            response_types: vec!["code"],
            contacts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> RawClientMetadata {
        RawClientMetadata {
            client_name: Some("Wallet".into()),
            client_uri: Some("https://wallet.example/".into()),
            logo_uri: Some("https://wallet.example/logo.png".into()),
            tos_uri: Some("https://wallet.example/tos".into()),
            policy_uri: Some("https://wallet.example/privacy".into()),
            software_id: Some("wallet".into()),
            software_version: Some("1.0".into()),
            redirect_uris: Some(vec!["https://wallet.example/cb".into()]),
            scope: Some(
                "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly offline_access"
                    .into(),
            ),
            ..Default::default()
        }
    }

    fn with_redirect(uri: &str) -> Result<ClientMetadata, MetadataError> {
        ClientMetadata::try_from(RawClientMetadata {
            redirect_uris: Some(vec![uri.into()]),
            ..good()
        })
    }

    #[test]
    fn good_metadata_gets_the_defaults() {
        let m = ClientMetadata::try_from(good()).unwrap();
        assert_eq!(
            m.token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(m.response_types, vec!["code"]);
        assert!(m.scope.contains(Scope::OfflineAccess));
    }

    #[test]
    fn redirect_uris_native_and_web() {
        for ok in [
            "https://wallet.example/cb?x=1",
            "http://localhost/cb",
            "http://localhost:43123/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:9000/cb",
            "com.example.wallet:/oauth",
            "org.wallet-app.ios://cb",
        ] {
            assert!(with_redirect(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://wallet.example/cb",
            "https://evil.example/cb",
            "https://wallet.example/cb#frag",
            "https://user:pw@wallet.example/cb",
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "wallet:/cb",
            "/relative",
            "https://wallet.example/c b",
            "http://127.0.0.2/cb",
        ] {
            let err = with_redirect(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_redirect_uri", "{bad}: {err}");
        }
    }

    #[test]
    fn pages_share_the_client_host_and_scopes_are_limited() {
        let err = ClientMetadata::try_from(RawClientMetadata {
            tos_uri: Some("https://other.example/tos".into()),
            ..good()
        })
        .unwrap_err();
        assert_eq!(err.code(), "invalid_client_metadata");
        let err = ClientMetadata::try_from(RawClientMetadata {
            client_uri: Some("http://wallet.example/".into()),
            ..good()
        })
        .unwrap_err();
        assert_eq!(err.code(), "invalid_client_metadata");
        for scope in ["credentials:issue", "admin", "nonsense", ""] {
            let err = ClientMetadata::try_from(RawClientMetadata {
                scope: Some(scope.into()),
                ..good()
            })
            .unwrap_err();
            assert_eq!(err.code(), "invalid_client_metadata", "{scope}");
        }
        let err = ClientMetadata::try_from(RawClientMetadata {
            grant_types: Some(vec!["client_credentials".into()]),
            ..good()
        })
        .unwrap_err();
        assert_eq!(err.code(), "invalid_client_metadata");
    }

    #[test]
    fn every_required_member_is_required() {
        let drops: [fn(&mut RawClientMetadata); 9] = [
            |m| m.redirect_uris = None,
            |m| m.client_name = None,
            |m| m.client_uri = None,
            |m| m.logo_uri = None,
            |m| m.tos_uri = None,
            |m| m.policy_uri = None,
            |m| m.software_id = None,
            |m| m.software_version = None,
            |m| m.scope = None,
        ];
        for drop in drops {
            let mut raw = good();
            drop(&mut raw);
            let err = ClientMetadata::try_from(raw).unwrap_err();
            assert_eq!(err.code(), "invalid_client_metadata", "{err}");
            assert!(err.to_string().contains("required"), "{err}");
        }
        let err = ClientMetadata::try_from(RawClientMetadata {
            redirect_uris: Some(vec![]),
            ..good()
        })
        .unwrap_err();
        assert_eq!(err.code(), "invalid_redirect_uri");
    }

    #[test]
    fn json_of_the_wrong_shape_is_invalid_metadata() {
        assert!(RawClientMetadata::from_json(b"[1]").is_err());
        assert!(RawClientMetadata::from_json(b"{").is_err());
        assert!(RawClientMetadata::from_json(br#"{"redirect_uris": "https://a/"}"#).is_err());
        let raw = RawClientMetadata::from_json(br#"{"client_name": "x", "extension": 1}"#).unwrap();
        assert_eq!(raw.client_name.as_deref(), Some("x"));
    }
}
