//! CSRF tokens: the token of a browser is HMAC-SHA256 keyed with its session cookie value
//! (signed-in or anonymous), so it needs no storage, differs per session, changes when the
//! session rotates at sign-in, and cannot be computed by a site that cannot read the cookie.
//! `Sec-Fetch-Site` is checked as a second layer.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const LABEL: &[u8] = b"oxbadge csrf v1";

/// The CSRF token that goes with the session cookie value `cookie`.
pub fn token_for(cookie: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(cookie.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(LABEL);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `presented` is the token of `cookie` (constant-time comparison).
pub fn verify(cookie: &str, presented: &str) -> bool {
    let expected = token_for(cookie);
    !presented.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// Whether a state-changing request with this `Sec-Fetch-Site` value may go on: same-origin,
/// user-initiated (`none`), or a browser that does not send the header.
pub fn fetch_site_allowed(sec_fetch_site: Option<&str>) -> bool {
    matches!(sec_fetch_site, None | Some("same-origin") | Some("none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_bound_to_the_cookie() {
        let t = token_for("cookie-one");
        assert!(verify("cookie-one", &t));
        assert!(!verify("cookie-two", &t));
        assert!(!verify("cookie-one", ""));
        assert!(!verify("cookie-one", &t[1..]));
    }

    #[test]
    fn fetch_metadata_refuses_cross_site() {
        assert!(fetch_site_allowed(None));
        assert!(fetch_site_allowed(Some("same-origin")));
        assert!(fetch_site_allowed(Some("none")));
        assert!(!fetch_site_allowed(Some("cross-site")));
        assert!(!fetch_site_allowed(Some("same-site")));
    }
}
