//! The outermost layer every request passes: request id and tracing span, body size limit, error
//! rendering (through `error::render_error`, the one mapping to HTTP), security headers, metrics and
//! the access log.

use std::time::{Duration, Instant};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    error::ReadBodyError,
    http::{HeaderName, HeaderValue, StatusCode, header},
};
use poem_openapi::OperationId;
use tracing::Instrument;

use super::text;
use crate::{
    app::AppState,
    error::{ApiError, ErrorFamily, render_error},
};

/// Header carrying the request id in both directions.
pub const REQUEST_ID: &str = "x-request-id";

/// Content-Security-Policy for API responses: nothing may load, nothing may frame us.
const CSP_API: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";
/// Content-Security-Policy for HTML pages (Swagger UI inlines its script and style).
const CSP_HTML: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; connect-src 'self'; \
     font-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Wraps the routed application.
pub struct Frontline<E> {
    inner: E,
    state: AppState,
}

impl<E> Frontline<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, state: AppState) -> Self {
        Self { inner, state }
    }
}

/// A caller-supplied request id is kept when it is short printable ASCII; otherwise a new one is made.
fn request_id_of(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

/// 128 random bits in hex. A request id only has to be unique; a CUID (SHA3-512 and a 512-bit
/// base-36 conversion) costs microseconds on every request.
fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Largest body of the OAuth endpoints (form posts and RFC 7591 metadata) and the account pages'
/// forms: a few kilobytes in real use, so a tighter cap than credentials and images need.
pub const SMALL_FORM_BODY_LIMIT: usize = 64 * 1024;

/// The body cap for `path`: [`SMALL_FORM_BODY_LIMIT`] on `/oauth/` and `/account/` (never above
/// the configured `max_body_bytes`), `max_body_bytes` everywhere else.
fn body_limit_for(path: &str, max_body_bytes: usize) -> usize {
    if path.starts_with("/oauth/") || path.starts_with("/account/") {
        max_body_bytes.min(SMALL_FORM_BODY_LIMIT)
    } else {
        max_body_bytes
    }
}

/// Refuses bodies over `limit` before any handler reads them (413), including chunked bodies whose
/// size is unknown up front, and reads every body in full within `timeout` (408 otherwise), so a
/// client that dribbles its body cannot hold a handler, a database connection or a writer slot.
async fn enforce_body_limit(
    req: &mut Request,
    limit: usize,
    timeout: Duration,
) -> Result<(), poem::Error> {
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        Some(value) => {
            let length: u64 = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("malformed_request", "invalid Content-Length")
                })?;
            if length > limit as u64 {
                return Err(ApiError::PayloadTooLarge { limit }.into());
            }
            length > 0
        }
        None => req.headers().contains_key(header::TRANSFER_ENCODING),
    };
    if !declared {
        return Ok(());
    }
    let body = req.take_body();
    match tokio::time::timeout(timeout, body.into_bytes_limit(limit)).await {
        Ok(Ok(bytes)) => {
            let media_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            if media_type.starts_with("application/x-www-form-urlencoded") {
                text::check_form(&bytes)?;
            } else if media_type.contains("json") {
                text::check_json(&bytes)?;
            }
            req.set_body(bytes);
            Ok(())
        }
        Ok(Err(ReadBodyError::PayloadTooLarge)) => Err(ApiError::PayloadTooLarge { limit }.into()),
        Ok(Err(err)) => Err(ApiError::bad_request(
            "malformed_request",
            format!("the request body could not be read: {err}"),
        )
        .into()),
        Err(_) => Err(poem::Error::from_string(
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
            StatusCode::REQUEST_TIMEOUT,
        )),
    }
}

fn set(resp: &mut Response, name: HeaderName, value: &'static str) {
    resp.headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

impl<E: Endpoint> Endpoint for Frontline<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id = request_id_of(&req);
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let family = ErrorFamily::for_path(&path);
        // A session cookie authenticates too (the account pages and `/api/v1/account*`).
        let authenticated = req.headers().contains_key(header::AUTHORIZATION)
            || req.headers().contains_key(header::COOKIE);
        let span = tracing::info_span!("request", request_id = %request_id, %method, %path);
        let limit = body_limit_for(&path, self.state.settings().max_body_bytes);
        let body_timeout = Duration::from_secs(self.state.settings().body_read_timeout_secs);

        async move {
            let checked = match text::check_target(req.uri().path(), req.uri().query()) {
                Ok(()) => enforce_body_limit(&mut req, limit, body_timeout).await,
                Err(err) => Err(err.into()),
            };
            let result = match checked {
                Ok(()) => self.inner.call(req).await.map(IntoResponse::into_response),
                Err(err) => Err(err),
            };
            let (mut resp, operation) = match result {
                Ok(resp) => {
                    let op = resp.data::<OperationId>().map(|o| o.0);
                    (resp, op)
                }
                Err(err) => {
                    let op = err.data::<OperationId>().map(|o| o.0);
                    (render_error(err, family, Some(&request_id)), op)
                }
            };

            if resp.status() == StatusCode::REQUEST_TIMEOUT {
                // The rest of a late body may still arrive: the connection cannot be reused.
                set(&mut resp, header::CONNECTION, "close");
            }
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert(REQUEST_ID, v);
            }
            // RFC 9110 §15.5.6: a 405 lists the methods the path does support.
            if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
                && !resp.headers().contains_key(header::ALLOW)
                && let Some(allow) = super::documented::allowed_methods(&path)
            {
                set(&mut resp, header::ALLOW, allow);
            }
            set(&mut resp, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
            set(&mut resp, header::REFERRER_POLICY, "no-referrer");
            set(&mut resp, header::X_FRAME_OPTIONS, "DENY");
            let is_html = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("text/html"));
            // Pages set their own (stricter) policy; keep it.
            if !resp.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
                set(
                    &mut resp,
                    header::CONTENT_SECURITY_POLICY,
                    if is_html { CSP_HTML } else { CSP_API },
                );
            }
            if self.state.tls_enabled() {
                set(
                    &mut resp,
                    header::STRICT_TRANSPORT_SECURITY,
                    "max-age=63072000; includeSubDomains",
                );
            }
            if authenticated {
                set(&mut resp, header::CACHE_CONTROL, "no-store");
            }

            let status = resp.status().as_u16();
            let operation = operation.unwrap_or(if status == 404 { "unmatched" } else { "other" });
            let elapsed = started.elapsed();
            self.state
                .metrics()
                .observe_request(&method, operation, status, elapsed.as_secs_f64());
            tracing::info!(
                status,
                operation,
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request completed"
            );
            Ok(resp)
        }
        .instrument(span)
        .await
    }
}
