//! Entry points for the fuzz targets in `fuzz/` (and the test that replays their corpora) for
//! the parsers that live at the HTTP edge: the verify endpoint's multipart upload and the token
//! endpoint's form body. Each takes arbitrary bytes, runs the same code the endpoint runs on a
//! request body, and must not panic whatever the bytes. (The verifier's own parsers are in
//! `verify::fuzzing`.)

use std::sync::LazyLock;

use poem::{Request, RequestBody, http::header};
use poem_openapi::{ApiExtractor, payload::Form};

use super::{oauth, verify};
use crate::{oauth::ScopeSet, verify::VerifyOptions};

/// The endpoints' parsers are async (the body arrives as a stream); here the whole body is in
/// memory, so a single-threaded runtime drives them to completion.
static RUNTIME: LazyLock<Option<tokio::runtime::Runtime>> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().ok());

fn block_on<F: Future>(future: F) -> Option<F::Output> {
    RUNTIME.as_ref().map(|rt| rt.block_on(future))
}

/// Splits `data` at its first newline: the head is a header value, the rest the body.
fn header_and_body(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A `multipart/form-data` upload to `POST /api/v1/verify`. The first line of `data` is the
/// `Content-Type` value (it carries the boundary), the rest is the body: the parts are read as
/// the endpoint reads them (`file`/`credential` part parsed by its media type or sniffed,
/// `recipientEmail` / `recipientId` fields).
pub fn multipart(data: &[u8]) {
    let (media_type, body) = header_and_body(data);
    let media_type = String::from_utf8_lossy(media_type);
    let mut options = VerifyOptions::default();
    let _ = block_on(verify::multipart(&media_type, body.to_vec(), &mut options));
}

/// A token request to `POST /oauth/token`. The first line of `data` is the `Authorization`
/// header value (empty: none), the rest the `application/x-www-form-urlencoded` body: the form
/// is read into the typed request exactly as the endpoint's `Form<TokenRequest>` extractor does,
/// then the Basic credentials are decoded and the requested scope parsed.
pub fn oauth_form(data: &[u8]) {
    let (authorization, body) = header_and_body(data);
    let mut builder =
        Request::builder().header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if !authorization.is_empty()
        && let Ok(value) = header::HeaderValue::from_bytes(authorization)
    {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    let request = builder.finish();
    let mut body = RequestBody::new(poem::Body::from_vec(body.to_vec()));
    let parsed = block_on(<Form<oauth::TokenRequest> as ApiExtractor>::from_request(
        &request,
        &mut body,
        Default::default(),
    ));
    let _ = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(crate::oauth::client_auth::parse_basic);
    if let Some(Ok(Form(form))) = parsed
        && let Some(scope) = form.scope.as_deref()
    {
        let _ = ScopeSet::parse(scope);
    }
}
