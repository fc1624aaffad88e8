//! OAuth scopes: the typed set the service declares in its OpenAPI document and enforces.
use std::{fmt, str::FromStr};

use poem_openapi::OAuthScopes;

/// Every scope the service knows. Operations declare one of these in OpenAPI and enforce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, OAuthScopes)]
pub enum Scope {
    /// Read issuers and achievements.
    #[oai(rename = "issuers:read")]
    IssuersRead,
    /// Create and change issuers and achievements.
    #[oai(rename = "issuers:write")]
    IssuersWrite,
    /// Rotate and revoke issuer signing keys.
    #[oai(rename = "keys:manage")]
    KeysManage,
    /// Issue credentials.
    #[oai(rename = "credentials:issue")]
    CredentialsIssue,
    /// Read issued credentials.
    #[oai(rename = "credentials:read")]
    CredentialsRead,
    /// Revoke and suspend credentials.
    #[oai(rename = "credentials:status")]
    CredentialsStatus,
    /// Verify credentials (only when the service is configured to require it).
    #[oai(rename = "credentials:verify")]
    CredentialsVerify,
    /// Administration: clients, audit trail.
    #[oai(rename = "admin")]
    Admin,
    /// OB 3.0 API: read the badges a person holds.
    #[oai(rename = "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly")]
    ObCredentialReadonly,
    /// OB 3.0 API: add badges to a person's collection and update them.
    #[oai(rename = "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert")]
    ObCredentialUpsert,
    /// OB 3.0 API: read a person's profile.
    #[oai(rename = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly")]
    ObProfileReadonly,
    /// OB 3.0 API: update a person's profile.
    #[oai(rename = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update")]
    ObProfileUpdate,
    /// A refresh token, to keep access while the person is away.
    #[oai(rename = "offline_access")]
    OfflineAccess,
}

impl Scope {
    /// Every scope (the catalogue), in a stable order.
    pub const ALL: [Scope; 13] = [
        Scope::IssuersRead,
        Scope::IssuersWrite,
        Scope::KeysManage,
        Scope::CredentialsIssue,
        Scope::CredentialsRead,
        Scope::CredentialsStatus,
        Scope::CredentialsVerify,
        Scope::Admin,
        Scope::ObCredentialReadonly,
        Scope::ObCredentialUpsert,
        Scope::ObProfileReadonly,
        Scope::ObProfileUpdate,
        Scope::OfflineAccess,
    ];

    /// The scopes of the service API (the machine-client scopes), in a stable order.
    pub const SERVICE: [Scope; 8] = [
        Scope::IssuersRead,
        Scope::IssuersWrite,
        Scope::KeysManage,
        Scope::CredentialsIssue,
        Scope::CredentialsRead,
        Scope::CredentialsStatus,
        Scope::CredentialsVerify,
        Scope::Admin,
    ];

    /// The scope string as it appears in tokens and the OpenAPI document.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::IssuersRead => "issuers:read",
            Scope::IssuersWrite => "issuers:write",
            Scope::KeysManage => "keys:manage",
            Scope::CredentialsIssue => "credentials:issue",
            Scope::CredentialsRead => "credentials:read",
            Scope::CredentialsStatus => "credentials:status",
            Scope::CredentialsVerify => "credentials:verify",
            Scope::Admin => "admin",
            Scope::ObCredentialReadonly => {
                "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly"
            }
            Scope::ObCredentialUpsert => {
                "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert"
            }
            Scope::ObProfileReadonly => {
                "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly"
            }
            Scope::ObProfileUpdate => {
                "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.update"
            }
            Scope::OfflineAccess => "offline_access",
        }
    }

    /// What granting the scope allows, in plain words. The scope catalogue (`GET /api/v1/scopes`)
    /// and the consent page of the authorization server show this text.
    pub fn description(self) -> &'static str {
        match self {
            Scope::IssuersRead => {
                "See the issuers you belong to, their achievements and public keys."
            }
            Scope::IssuersWrite => {
                "Create issuers, change their profiles, and create and change their achievements."
            }
            Scope::KeysManage => "Rotate and revoke the signing keys of issuers you own.",
            Scope::CredentialsIssue => "Issue badges in the name of issuers you belong to.",
            Scope::CredentialsRead => "See the badges issued by issuers you belong to.",
            Scope::CredentialsStatus => {
                "Revoke, suspend and unsuspend badges of issuers you belong to."
            }
            Scope::CredentialsVerify => {
                "Verify badges (when this service requires a token for it)."
            }
            Scope::Admin => {
                "Administer this service: manage clients and read the whole audit trail."
            }
            Scope::ObCredentialReadonly => "Read the badges in your collection.",
            Scope::ObCredentialUpsert => "Add badges to your collection and update them.",
            Scope::ObProfileReadonly => "Read your profile.",
            Scope::ObProfileUpdate => "Change your profile.",
            Scope::OfflineAccess => "Keep this access while you are not using the application.",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown scope name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}`")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// A set of scopes, parsed once from a space-separated string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeSet(u32);

impl ScopeSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every service scope ([`Scope::SERVICE`]): what the bootstrap admin client holds. The OB 3.0
    /// API scopes and `offline_access` are not in it: they are granted to people's applications
    /// through the authorization server, not to machine clients by default.
    pub fn all() -> Self {
        Scope::SERVICE.into_iter().collect()
    }

    fn bit(scope: Scope) -> u32 {
        1 << (Scope::ALL.iter().position(|s| *s == scope).unwrap_or(31) as u32)
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= Self::bit(scope);
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    /// Whether every scope of `other` is in this set.
    pub fn is_superset(self, other: ScopeSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in stable order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses a space-separated list; unknown names are an error, duplicates are harmless.
    pub fn parse(s: &str) -> Result<Self, UnknownScope> {
        s.split_ascii_whitespace().map(Scope::from_str).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        let mut set = Self::empty();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_round_trip() {
        let set = ScopeSet::parse("credentials:issue  admin issuers:read").unwrap();
        assert!(set.contains(Scope::Admin));
        assert!(!set.contains(Scope::KeysManage));
        assert_eq!(set.to_string(), "issuers:read credentials:issue admin");
        assert_eq!(
            ScopeSet::parse(&ScopeSet::all().to_string()).unwrap(),
            ScopeSet::all()
        );
    }

    #[test]
    fn unknown_scope_is_an_error() {
        assert_eq!(
            ScopeSet::parse("admin root").unwrap_err(),
            UnknownScope("root".into())
        );
    }

    #[test]
    fn every_scope_has_a_description_and_round_trips() {
        for scope in Scope::ALL {
            assert!(scope.description().ends_with('.'), "{scope}");
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
        assert!(!ScopeSet::all().contains(Scope::OfflineAccess));
        assert!(ScopeSet::parse("offline_access").is_ok());
    }

    #[test]
    fn superset() {
        let all = ScopeSet::all();
        let one: ScopeSet = [Scope::Admin].into_iter().collect();
        assert!(all.is_superset(one));
        assert!(!one.is_superset(all));
    }
}
