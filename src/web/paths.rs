//! Every page path, and the safe local `next` return address.

/// Sign-in page (`?next=` returns there afterwards).
pub const SIGN_IN: &str = "/account/sign-in";
/// Sign-out (POST).
pub const SIGN_OUT: &str = "/account/sign-out";
/// Self-service registration.
pub const REGISTER: &str = "/account/register";
/// Email confirmation (link target).
pub const VERIFY_EMAIL: &str = "/account/verify-email";
/// Asking for a password-reset link.
pub const FORGOT_PASSWORD: &str = "/account/forgot-password";
/// Setting a new password with a reset link.
pub const RESET_PASSWORD: &str = "/account/reset-password";
/// The account page: profile, password, sessions.
pub const ACCOUNT: &str = "/account";
/// Changing the password (POST).
pub const CHANGE_PASSWORD: &str = "/account/password";
/// Ending one session (POST).
pub const END_SESSION: &str = "/account/sessions/end";

/// The OAuth authorization endpoint (a page: sign-in and consent happen here).
pub const AUTHORIZE: &str = "/oauth/authorize";
/// The consent decision (POST).
pub const CONSENT: &str = "/oauth/consent";
/// Withdrawing an application's access from the account page (POST).
pub const REVOKE_APP: &str = "/account/apps/revoke";
/// Other OB 3.0 hosts the person connected (list, connect, import, disconnect).
pub const HOSTS: &str = "/account/hosts";
/// Where a host sends the browser back after the person authorized us there.
pub const HOSTS_CALLBACK: &str = "/account/hosts/callback";

/// A return address that stays on this site: an absolute path (`/…`), not `//host` or `/\host`
/// (which browsers read as another host), no scheme, no control characters, at most 2 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeNext(String);

impl SafeNext {
    /// Parses a `next` value; anything that could leave the site is refused.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = raw.len() <= 2048
            && raw.starts_with('/')
            && !raw.starts_with("//")
            && !raw.starts_with("/\\")
            && !raw.chars().any(|c| c.is_control() || c == '\\');
        if !ok {
            return None;
        }
        // Resolved against a placeholder origin, it must stay on that origin.
        let base = url::Url::parse("http://oxbadge.invalid/").ok()?;
        let joined = base.join(raw).ok()?;
        (joined.origin() == base.origin()).then(|| Self(raw.to_owned()))
    }

    /// Parses, falling back to the account page.
    pub fn or_account(raw: Option<&str>) -> Self {
        raw.and_then(Self::parse)
            .unwrap_or_else(|| Self(ACCOUNT.to_owned()))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_accepted() {
        for good in [
            "/account",
            "/oauth/authorize?client_id=x&state=y",
            "/a/b?c=%2F%2Fevil",
        ] {
            assert!(SafeNext::parse(good).is_some(), "{good}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil",
            "javascript:alert(1)",
            "account",
            "/\tevil",
            "",
        ] {
            assert!(SafeNext::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(SafeNext::or_account(Some("//x")).as_str(), "/account");
    }
}
