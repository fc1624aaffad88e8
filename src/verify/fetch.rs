//! The one outbound HTTP client of the verifier: https only, no private, loopback or link-local
//! addresses (checked on every resolution, so DNS rebinding and redirects cannot reach them),
//! redirects re-checked, timeouts, a body size cap, and a small cache that honours
//! `Cache-Control` and a status list's `ttl`. Besides the verifier's cached JSON GETs it carries
//! the OB 3.0 consumer's calls to other hosts ([`Fetcher::send`]: any method, headers and body,
//! same address guard, redirect checks, timeout and size cap, never cached), so there is one
//! hardened outbound client in the service.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    header::{ACCEPT, CACHE_CONTROL},
    redirect,
};
use serde_json::Value;

/// Outbound policy, from configuration.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Plain `http://` URLs may be fetched (off by default).
    pub allow_http: bool,
    /// Private, loopback, link-local and other non-global addresses may be fetched (off by default).
    pub allow_private: bool,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_bytes: usize,
    /// Longest a response is cached, whatever its headers say.
    pub max_cache: Duration,
    /// Shortest time between two forced re-fetches of one document (a cached copy that lacks a
    /// key triggers one; see [`Fetcher::refetch`]).
    pub refetch_interval: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private: false,
            timeout: Duration::from_secs(10),
            max_bytes: 1024 * 1024,
            max_cache: Duration::from_secs(3600),
            refetch_interval: Duration::from_secs(30),
        }
    }
}

/// Why a document could not be fetched. Each makes the dependent check `indeterminate`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The URL is refused by policy (scheme or address).
    #[error("refused to fetch {url}: {reason}")]
    Refused { url: String, reason: String },
    /// Network failure, timeout, a 5xx, 408 or 429 answer, or another non-success status that says
    /// nothing about the document itself.
    #[error("could not fetch {url}: {reason}")]
    Failed { url: String, reason: String },
    /// The server answered that it does not serve the document (a 4xx such as 404 or 410): the
    /// document is gone, which by itself does not say whether a key in it ever existed.
    #[error("{url} answered HTTP {status}")]
    NotServed { url: String, status: u16 },
    /// A re-fetch was asked for too soon after the last one (see [`Fetcher::refetch`]).
    #[error("{url}: {reason}")]
    RateLimited { url: String, reason: String },
    /// The body is too large or not JSON.
    #[error("{url} did not answer a usable JSON document: {reason}")]
    Unusable { url: String, reason: String },
}

/// The body as a compact JWS (three base64url segments), trimmed, if it is one.
fn compact_jws(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let parts: Vec<&str> = text.split('.').collect();
    (parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    .then_some(text)
}

/// Whether `ip` is an address on the public internet. Everything else (private, loopback,
/// link-local, CGNAT, documentation, multicast, unspecified, IPv4-mapped forms of those) is refused
/// unless configured.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared (CGNAT)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (embeds IPv4)
                || s[0] == 0x2002) // 6to4 (embeds IPv4)
        }
    }
}

/// Resolves names and drops non-public addresses (unless allowed), so a name that resolves to
/// 127.0.0.1 or 169.254.169.254 cannot be reached through DNS.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

struct Cached {
    expires: Instant,
    document: Arc<Value>,
}

const CACHE_ENTRIES: usize = 4096;
/// Bound on the per-document re-fetch slots kept (slots in use are never dropped).
const REFETCH_SLOTS: usize = 4096;

/// A fetched document and where it came from.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The document.
    pub document: Arc<Value>,
    /// It was served from the cache (it may predate a change at its origin).
    pub from_cache: bool,
}

/// The result of [`Fetcher::refetch`].
#[derive(Debug, Clone)]
pub struct Refetched {
    /// The document.
    pub document: Arc<Value>,
    /// Fetched for (or while) this caller asked; `false`: the copy of a recent re-fetch, reused
    /// because of the rate limit.
    pub live: bool,
}

/// The last forced re-fetch of one document: when it finished and what it got.
type RefetchSlot = Arc<tokio::sync::Mutex<Option<(Instant, Result<Arc<Value>, FetchError>)>>>;

/// The hardened client with its cache. Cheap to share behind an `Arc`.
pub struct Fetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
    cache: Mutex<HashMap<String, Cached>>,
    refetches: Mutex<HashMap<String, RefetchSlot>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A client enforcing `policy`.
    pub fn new(policy: FetchPolicy) -> Result<Self, reqwest::Error> {
        let check = policy.clone();
        let redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 3 {
                return attempt.error("too many redirects");
            }
            match url_allowed(attempt.url(), &check) {
                Ok(()) => attempt.follow(),
                Err(reason) => attempt.error(reason),
            }
        });
        let client = reqwest::Client::builder()
            .redirect(redirects)
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: policy.allow_private,
            }))
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("oxbadge-verifier/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            policy,
            cache: Mutex::new(HashMap::new()),
            refetches: Mutex::new(HashMap::new()),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Fetches `url` (fragment dropped) as JSON, from the cache when fresh.
    pub async fn json(&self, url: &str) -> Result<Arc<Value>, FetchError> {
        self.document(url).await.map(|f| f.document)
    }

    /// Fetches `url` (fragment dropped) as JSON, from the cache when fresh, saying which.
    pub async fn document(&self, url: &str) -> Result<Fetched, FetchError> {
        let (parsed, key) = cache_key(url)?;
        if let Some(hit) = self.cached(&key) {
            return Ok(Fetched {
                document: hit,
                from_cache: true,
            });
        }
        self.fetch(parsed, key).await.map(|document| Fetched {
            document,
            from_cache: false,
        })
    }

    /// Fetches `url` again, bypassing the cache: a cached copy lacked something (a key added by a
    /// rotation since). Single-flight per document: callers that arrive while a re-fetch runs
    /// share its result. Rate-limited per document: within [`FetchPolicy::refetch_interval`] of
    /// the last re-fetch (successful or not) nothing is fetched, so that credentials naming
    /// made-up keys cannot make the verifier hammer a host; the caller then gets the copy that
    /// re-fetch obtained, marked not live (it may still be newer than the caller's), or
    /// [`FetchError::RateLimited`] when that re-fetch failed.
    pub async fn refetch(&self, url: &str) -> Result<Refetched, FetchError> {
        let (parsed, key) = cache_key(url)?;
        let asked = Instant::now();
        let slot = self.refetch_slot(&key);
        let mut last = slot.lock().await;
        if let Some((at, result)) = last.as_ref() {
            if *at >= asked {
                // A re-fetch finished while this caller waited: it saw the live document.
                return result.clone().map(|document| Refetched {
                    document,
                    live: true,
                });
            }
            let since = at.elapsed();
            if since < self.policy.refetch_interval {
                let reason = format!(
                    "re-fetched {} s ago; not again before {} s",
                    since.as_secs(),
                    self.policy.refetch_interval.as_secs()
                );
                return match result {
                    Ok(document) => Ok(Refetched {
                        document: document.clone(),
                        live: false,
                    }),
                    Err(e) => Err(FetchError::RateLimited {
                        url: key,
                        reason: format!("{reason}, when it failed: {e}"),
                    }),
                };
            }
        }
        let result = self.fetch(parsed, key).await;
        *last = Some((Instant::now(), result.clone()));
        result.map(|document| Refetched {
            document,
            live: true,
        })
    }

    /// The shortest time between two re-fetches of one document.
    pub fn refetch_interval(&self) -> Duration {
        self.policy.refetch_interval
    }

    fn refetch_slot(&self, key: &str) -> RefetchSlot {
        let Ok(mut slots) = self.refetches.lock() else {
            // A poisoned map only loses the single-flight and rate-limit properties.
            return RefetchSlot::default();
        };
        if slots.len() >= REFETCH_SLOTS && !slots.contains_key(key) {
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// Fetches from the network and caches the result as its headers allow.
    async fn fetch(&self, parsed: Url, key: String) -> Result<Arc<Value>, FetchError> {
        url_allowed(&parsed, &self.policy).map_err(|reason| FetchError::Refused {
            url: key.clone(),
            reason,
        })?;
        let failed = |reason: String| FetchError::Failed {
            url: key.clone(),
            reason,
        };
        let response = self
            .client
            .get(parsed)
            .header(
                ACCEPT,
                "application/did+ld+json, application/did+json, application/vc+ld+json, \
                 application/ld+json, application/vc+jwt;q=0.9, application/json;q=0.9, \
                 */*;q=0.1",
            )
            .send()
            .await
            .map_err(|e| failed(describe(&e)))?;
        let status = response.status();
        if status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            return Err(FetchError::NotServed {
                url: key.clone(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(failed(format!("HTTP {}", status.as_u16())));
        }
        let max_age = cache_lifetime(
            response
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        if response
            .content_length()
            .is_some_and(|n| n > self.policy.max_bytes as u64)
        {
            return Err(FetchError::Unusable {
                url: key,
                reason: format!("larger than {} bytes", self.policy.max_bytes),
            });
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| failed(describe(&e)))?;
            if body.len() + chunk.len() > self.policy.max_bytes {
                return Err(FetchError::Unusable {
                    url: key,
                    reason: format!("larger than {} bytes", self.policy.max_bytes),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let document: Value = match serde_json::from_slice(&body) {
            Ok(document) => document,
            // A JOSE-secured document (e.g. a status list served as `application/vc+jwt`) comes
            // back as a JSON string holding the compact JWS; the caller verifies it.
            Err(e) => match compact_jws(&body) {
                Some(jws) => Value::String(jws.to_owned()),
                None => {
                    return Err(FetchError::Unusable {
                        url: key.clone(),
                        reason: format!("neither JSON nor a compact JWS: {e}"),
                    });
                }
            },
        };
        let document = Arc::new(document);
        // A status list's `ttl` (milliseconds) bounds how long it may be reused.
        let ttl = document
            .pointer("/credentialSubject/ttl")
            .and_then(Value::as_u64)
            .map(Duration::from_millis);
        let lifetime = match (max_age, ttl) {
            (Some(a), Some(t)) => Some(a.min(t)),
            (Some(a), None) => Some(a),
            (None, Some(t)) => Some(t),
            (None, None) => None,
        }
        .map(|d| d.min(self.policy.max_cache));
        if let Some(lifetime) = lifetime.filter(|d| !d.is_zero()) {
            self.store(key, lifetime, document.clone());
        }
        Ok(document)
    }

    fn cached(&self, key: &str) -> Option<Arc<Value>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|c| c.expires > Instant::now())
            .map(|c| c.document.clone())
    }

    fn store(&self, key: String, lifetime: Duration, document: Arc<Value>) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let now = Instant::now();
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                expires: now + lifetime,
                document,
            },
        );
    }
}

/// An outbound request body: bytes and their media type.
#[derive(Clone)]
pub struct OutboundBody {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for OutboundBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies carry client secrets and tokens (token requests): never logged.
        f.debug_struct("OutboundBody")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// An outbound request of [`Fetcher::send`].
pub struct OutboundRequest {
    pub method: reqwest::Method,
    pub url: String,
    /// Extra headers (`Authorization`, `Accept`, ...).
    pub headers: Vec<(reqwest::header::HeaderName, String)>,
    pub body: Option<OutboundBody>,
}

impl OutboundRequest {
    /// A request without headers or body.
    pub fn new(method: reqwest::Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: reqwest::header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets a body.
    pub fn body(mut self, content_type: &str, bytes: Vec<u8>) -> Self {
        self.body = Some(OutboundBody {
            content_type: content_type.to_owned(),
            bytes,
        });
        self
    }

    /// Sets a JSON body.
    pub fn json(self, value: &Value) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.body("application/json", bytes)
    }
}

/// The answer to an outbound request, whatever its status (the caller interprets it).
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// At most [`FetchPolicy::max_bytes`].
    pub body: Vec<u8>,
}

impl OutboundResponse {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Fetcher {
    /// Sends `request` under the policy (scheme and address checks, guarded DNS, redirects
    /// re-checked, timeout, body cap) without the cache, and answers whatever the server said.
    /// `Err` only for refusals, network failures and oversized bodies.
    pub async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, FetchError> {
        let mut parsed = Url::parse(&request.url).map_err(|e| FetchError::Refused {
            url: request.url.clone(),
            reason: format!("not a URL: {e}"),
        })?;
        parsed.set_fragment(None);
        let key = parsed.to_string();
        url_allowed(&parsed, &self.policy).map_err(|reason| FetchError::Refused {
            url: key.clone(),
            reason,
        })?;
        let failed = |reason: String| FetchError::Failed {
            url: key.clone(),
            reason,
        };
        let mut builder = self.client.request(request.method, parsed);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, body.content_type)
                .body(body.bytes);
        }
        let response = builder.send().await.map_err(|e| failed(describe(&e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let too_large = || FetchError::Unusable {
            url: key.clone(),
            reason: format!("larger than {} bytes", self.policy.max_bytes),
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.policy.max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| failed(describe(&e)))?;
            if body.len() + chunk.len() > self.policy.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse {
            status,
            headers,
            body,
        })
    }
}

/// The URL without its fragment, and its cache key.
fn cache_key(url: &str) -> Result<(Url, String), FetchError> {
    let mut parsed = Url::parse(url).map_err(|e| FetchError::Refused {
        url: url.to_owned(),
        reason: format!("not a URL: {e}"),
    })?;
    parsed.set_fragment(None);
    let key = parsed.to_string();
    Ok((parsed, key))
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_redirect() {
        format!("redirect refused: {err}")
    } else if err.is_connect() {
        format!("connection failed: {err}")
    } else {
        err.to_string()
    }
}

/// Whether policy lets `url` be fetched, judged on what the URL itself shows (scheme, IP-literal
/// host); names are judged by the resolver.
fn url_allowed(url: &Url, policy: &FetchPolicy) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        other => return Err(format!("scheme {other} is not allowed (https only)")),
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(name)) => {
            if !policy.allow_private
                && (name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost"))
            {
                return Err("localhost is not allowed".into());
            }
            return Ok(());
        }
        None => return Err("the URL has no host".into()),
    };
    if policy.allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(format!("{ip} is not a public address"))
    }
}

/// How long a response may be reused according to `Cache-Control` (`None`: no explicit lifetime;
/// zero: must not be stored).
fn cache_lifetime(header: Option<&str>) -> Option<Duration> {
    let header = header?;
    let mut max_age = None;
    for directive in header.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" || lower == "private" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            max_age = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must not be public");
        }
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn urls_are_checked_by_scheme_and_literal_address() {
        let policy = FetchPolicy::default();
        let check = |u: &str| url_allowed(&Url::parse(u).unwrap(), &policy);
        assert!(check("https://example.org/did.json").is_ok());
        assert!(check("http://example.org/did.json").is_err());
        assert!(check("https://127.0.0.1/x").is_err());
        assert!(check("https://10.0.0.1/x").is_err());
        assert!(check("https://169.254.169.254/latest/meta-data").is_err());
        assert!(check("https://[::1]/x").is_err());
        assert!(check("https://localhost/x").is_err());
        assert!(check("file:///etc/passwd").is_err());
        let open = FetchPolicy {
            allow_http: true,
            allow_private: true,
            ..FetchPolicy::default()
        };
        assert!(url_allowed(&Url::parse("http://127.0.0.1:8080/x").unwrap(), &open).is_ok());
    }

    #[test]
    fn cache_control_lifetimes() {
        assert_eq!(cache_lifetime(None), None);
        assert_eq!(
            cache_lifetime(Some("public, max-age=300")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(cache_lifetime(Some("no-store")), Some(Duration::ZERO));
        assert_eq!(
            cache_lifetime(Some("max-age=60, no-cache")),
            Some(Duration::ZERO)
        );
    }
}
