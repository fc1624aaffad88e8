//! Headers on every page: a strict Content-Security-Policy (no script at all, styles only from
//! this origin, forms only to this origin, no framing), no caching of pages, no referrer. The pages
//! of the authorization flow widen `form-action` (and `img-src` for a client's https logo) by
//! exactly the registered origin they send the browser back to ([`page_csp_allowing`]); a policy a
//! handler set is kept.

use poem::{
    Response,
    http::{HeaderValue, header},
};

/// The policy for pages: nothing inline, nothing from elsewhere.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// [`PAGE_CSP`] with `form_action` (a CSP source: an origin or `scheme:`) added to `form-action`
/// and `img` to `img-src`. Chrome applies `form-action` to the redirects that follow a form
/// submission too, so a form whose answer redirects to a client must allow that client's origin,
/// and only that one.
pub fn page_csp_allowing(form_action: Option<&str>, img: Option<&str>) -> String {
    let extra = |source: Option<&str>| source.map(|s| format!(" {s}")).unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'{}; form-action 'self'{}; \
         frame-ancestors 'none'; base-uri 'none'",
        extra(img),
        extra(form_action)
    )
}

/// Sets the page headers on `resp`; a Content-Security-Policy the handler set is kept (the front
/// line keeps one too).
pub fn apply(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
    }
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
