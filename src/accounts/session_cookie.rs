//! The session cookie: its name, how it is read from a `Cookie` header and how it is set.
//! `HttpOnly; SameSite=Lax; Path=/`, plus `Secure` under TLS (and then the `__Host-` prefix).

/// Cookie name without TLS.
pub const NAME: &str = "oxbadge_session";
/// Cookie name under TLS (the `__Host-` prefix pins it to this host, `Path=/` and `Secure`).
pub const SECURE_NAME: &str = "__Host-oxbadge_session";

/// The cookie name in effect.
pub fn name(secure: bool) -> &'static str {
    if secure { SECURE_NAME } else { NAME }
}

/// The value of the session cookie in a `Cookie` header, if any.
pub fn read<'a>(cookie_header: impl Iterator<Item = &'a str>, secure: bool) -> Option<&'a str> {
    let wanted = name(secure);
    cookie_header
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == wanted)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for `value`. Session cookies (no `Max-Age`) end with the browser; the
/// server ends the session itself after 12 h idle or 7 days.
pub fn set(value: &str, secure: bool) -> String {
    let mut cookie = format!("{}={value}; HttpOnly; SameSite=Lax; Path=/", name(secure));
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_right_cookie_and_sets_the_flags() {
        let header = ["a=1; oxbadge_session=abc ; b=2"];
        assert_eq!(read(header.iter().copied(), false), Some("abc"));
        assert_eq!(read(header.iter().copied(), true), None);
        assert_eq!(
            set("v", false),
            "oxbadge_session=v; HttpOnly; SameSite=Lax; Path=/"
        );
        assert_eq!(
            set("v", true),
            "__Host-oxbadge_session=v; HttpOnly; SameSite=Lax; Path=/; Secure"
        );
    }
}
