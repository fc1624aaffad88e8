//! Headers on every page: a strict Content-Security-Policy (no script at all, styles only from
//! this origin, forms only to this origin, no framing), no caching of pages, no referrer.

use poem::{
    Response,
    http::{HeaderValue, header},
};

/// The policy for pages: nothing inline, nothing from elsewhere.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the page headers on `resp` (the front line keeps a CSP that is already set).
pub fn apply(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
