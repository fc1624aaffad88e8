//! Key resolution: a verification method URL (a proof's `verificationMethod`, a JWT's `kid`)
//! becomes a public key and its controller. `did:key` and `https://…#z6Mk…` keys resolve offline;
//! this service's own issuers resolve from the database; `did:web`, key documents and controller
//! documents are fetched through the hardened client.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::VerifyingKey;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use super::fetch::{FetchError, Fetcher};
use crate::{
    app::AppState,
    db::{issuer, signing_key},
    keys::{documents, identity::verification_method_id, store::state},
};

/// A public key of one of the algorithms the verifier accepts.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// Ed25519 (Data Integrity EdDSA suites, JWT `EdDSA`).
    Ed25519(VerifyingKey),
    /// NIST P-256 (JWT `ES256`).
    P256(p256::ecdsa::VerifyingKey),
    /// RSA (JWT `RS256`).
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// The key type's name in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "Ed25519",
            Self::P256(_) => "P-256",
            Self::Rsa(_) => "RSA",
        }
    }
}

/// A resolved verification method.
#[derive(Debug, Clone)]
pub struct Method {
    /// The verification method id as resolved (absolute).
    pub id: String,
    /// Its controller (a DID or URL).
    pub controller: String,
    /// The public key.
    pub key: PublicKey,
    /// Verification relationships the controller authorizes it for (`assertionMethod`, ...);
    /// `None` when the form of the id authorizes every purpose (did:key, key-in-fragment URLs).
    pub relationships: Option<Vec<String>>,
}

impl Method {
    /// Whether the controller authorizes this method for `purpose`.
    pub fn authorized_for(&self, purpose: &str) -> bool {
        self.relationships
            .as_ref()
            .is_none_or(|r| r.iter().any(|p| p == purpose))
    }
}

/// Why a verification method could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The method does not exist, is revoked, or its key is malformed: the proof cannot be valid.
    #[error("{0}")]
    Invalid(String),
    /// A document could not be fetched: the proof could not be checked.
    #[error(transparent)]
    Unreachable(#[from] FetchError),
}

fn invalid(msg: impl Into<String>) -> ResolveError {
    ResolveError::Invalid(msg.into())
}

/// Multicodec prefixes (unsigned varints) of the public keys we read from multibase.
const ED25519_PUB: [u8; 2] = [0xed, 0x01];
const P256_PUB: [u8; 2] = [0x80, 0x24];

/// Parses a multibase (`z…`) Multikey: Ed25519 (`z6Mk…`) or compressed P-256 (`zDn…`).
pub fn parse_multikey(value: &str) -> Result<PublicKey, ResolveError> {
    let encoded = value
        .strip_prefix('z')
        .ok_or_else(|| invalid("publicKeyMultibase must be base58btc (start with z)"))?;
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|_| invalid("publicKeyMultibase is not base58btc"))?;
    match bytes.get(..2) {
        Some(p) if p == ED25519_PUB && bytes.len() == 34 => {
            let raw: [u8; 32] = bytes[2..]
                .try_into()
                .map_err(|_| invalid("bad Ed25519 key length"))?;
            VerifyingKey::from_bytes(&raw)
                .map(PublicKey::Ed25519)
                .map_err(|_| invalid("invalid Ed25519 public key"))
        }
        Some(p) if p == P256_PUB && bytes.len() == 35 => {
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes[2..])
                .map(PublicKey::P256)
                .map_err(|_| invalid("invalid P-256 public key"))
        }
        _ => Err(invalid(
            "unsupported multikey (expected Ed25519 z6Mk… or P-256 zDn…)",
        )),
    }
}

fn b64(jwk: &Value, field: &str) -> Result<Vec<u8>, ResolveError> {
    let text = jwk
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("JWK lacks `{field}`")))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| invalid(format!("JWK `{field}` is not base64url")))
}

/// Parses a public JWK: OKP/Ed25519, EC/P-256 or RSA. A JWK carrying private material (`d`) is
/// refused.
pub fn parse_jwk(jwk: &Value) -> Result<PublicKey, ResolveError> {
    if jwk.get("d").is_some() {
        return Err(invalid("the JWK contains private key material"));
    }
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
    match (kty, crv) {
        ("OKP", "Ed25519") => {
            let raw: [u8; 32] = b64(jwk, "x")?
                .try_into()
                .map_err(|_| invalid("Ed25519 JWK `x` must be 32 bytes"))?;
            VerifyingKey::from_bytes(&raw)
                .map(PublicKey::Ed25519)
                .map_err(|_| invalid("invalid Ed25519 public key"))
        }
        ("EC", "P-256") => {
            let (x, y) = (b64(jwk, "x")?, b64(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(invalid("P-256 JWK coordinates must be 32 bytes"));
            }
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map(PublicKey::P256)
                .map_err(|_| invalid("invalid P-256 public key"))
        }
        ("RSA", _) => {
            let n = rsa::BigUint::from_bytes_be(&b64(jwk, "n")?);
            let e = rsa::BigUint::from_bytes_be(&b64(jwk, "e")?);
            if n.bits() < 2048 {
                return Err(invalid("RSA keys shorter than 2048 bits are refused"));
            }
            rsa::RsaPublicKey::new(n, e)
                .map(PublicKey::Rsa)
                .map_err(|e| invalid(format!("invalid RSA public key: {e}")))
        }
        _ => Err(invalid(format!(
            "unsupported JWK (kty {kty:?}, crv {crv:?})"
        ))),
    }
}

/// The key of a verification-method object (`publicKeyMultibase`, `publicKeyJwk` or the legacy
/// `publicKeyBase58` of Ed25519VerificationKey2018).
pub fn key_of_method(method: &Value) -> Result<PublicKey, ResolveError> {
    if let Some(mb) = method.get("publicKeyMultibase").and_then(Value::as_str) {
        // Ed25519VerificationKey2020 also uses publicKeyMultibase with the same prefix.
        return parse_multikey(mb);
    }
    if let Some(jwk) = method.get("publicKeyJwk") {
        return parse_jwk(jwk);
    }
    if let Some(b58) = method.get("publicKeyBase58").and_then(Value::as_str) {
        let raw: [u8; 32] = bs58::decode(b58)
            .into_vec()
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid("publicKeyBase58 is not a 32-byte Ed25519 key"))?;
        return VerifyingKey::from_bytes(&raw)
            .map(PublicKey::Ed25519)
            .map_err(|_| invalid("invalid Ed25519 public key"));
    }
    Err(invalid("the verification method has no public key"))
}

/// `(base, fragment)` of a DID URL or URL.
pub(crate) fn split_fragment(url: &str) -> (&str, Option<&str>) {
    match url.split_once('#') {
        Some((base, frag)) => (base, Some(frag)),
        None => (url, None),
    }
}

/// The https URL of a did:web DID's document.
pub fn did_web_url(did: &str) -> Result<String, ResolveError> {
    let rest = did
        .strip_prefix("did:web:")
        .ok_or_else(|| invalid("not a did:web"))?;
    let mut parts = rest.split(':');
    let host = parts
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("did:web without a host"))?;
    let host = percent_encoding::percent_decode_str(host)
        .decode_utf8()
        .map_err(|_| invalid("did:web host is not UTF-8"))?;
    if host.contains(['/', '?', '#', '@']) {
        return Err(invalid("did:web host is malformed"));
    }
    let path: Vec<String> = parts
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid("did:web path is not UTF-8"))
        })
        .collect::<Result<_, _>>()?;
    if path.iter().any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(invalid("did:web path is malformed"));
    }
    Ok(if path.is_empty() {
        format!("https://{host}/.well-known/did.json")
    } else {
        format!("https://{host}/{}/did.json", path.join("/"))
    })
}

/// Where to fetch a did:web document: https, or http for an IP-literal or localhost host when the
/// policy allows plain http (development and tests, as other did:web resolvers do).
fn did_web_fetch_url(did: &str, fetcher: &Fetcher) -> Result<String, ResolveError> {
    let url = did_web_url(did)?;
    if fetcher.policy().allow_http
        && let Ok(parsed) = url::Url::parse(&url)
        && match parsed.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(_) => true,
            None => false,
        }
    {
        return Ok(url.replacen("https://", "http://", 1));
    }
    Ok(url)
}

/// Resolves `method_url` (made absolute against `base` when it is relative, e.g. `#key-1`).
pub async fn resolve(
    state: &AppState,
    fetcher: &Fetcher,
    method_url: &str,
) -> Result<Method, ResolveError> {
    resolve_claimed(state, fetcher, method_url, None).await
}

/// Resolves `method_url` for a document that requires its key to be controlled by `claimed`
/// (an Open Badge's issuer, a presentation's holder). The verdict rule, the same for DID
/// documents, key documents, controller documents and JWK Sets:
///
/// - a document that was fetched (fresh) and does not list the key makes it `Invalid`; a copy
///   from the cache that lacks it is fetched once more first ([`Fetcher::refetch`]), since a
///   rotation may have added the key after the copy was made;
/// - a key URL that answers 4xx (404, 410, …) is `Invalid` only when `claimed`'s document was
///   fetched and does not list the key either;
/// - everything else that keeps us from seeing the key (network failures, 5xx, a re-fetch
///   refused by the rate limit) is `Unreachable`, never `Invalid`.
pub async fn resolve_claimed(
    state: &AppState,
    fetcher: &Fetcher,
    method_url: &str,
    claimed: Option<&str>,
) -> Result<Method, ResolveError> {
    let (base, fragment) = split_fragment(method_url);
    if let Some(rest) = base.strip_prefix("did:key:") {
        let key = parse_multikey(rest)?;
        if fragment.is_some_and(|f| f != rest) {
            return Err(invalid("a did:key fragment must repeat the key"));
        }
        return Ok(Method {
            id: format!("{base}#{rest}"),
            controller: base.to_owned(),
            key,
            relationships: None,
        });
    }
    if let Some(own) = own_method(state, base, method_url).await? {
        return Ok(own);
    }
    if base.starts_with("did:web:") {
        let url = did_web_fetch_url(base, fetcher)?;
        return find_in(fetcher, &url, |document| {
            if document.get("id").and_then(Value::as_str) != Some(base) {
                return Err(invalid(format!(
                    "the DID document fetched for {base} names a different id"
                )));
            }
            method_in_document(document, base, method_url)
        })
        .await;
    }
    if base.starts_with("https://") || base.starts_with("http://") {
        // A key carried in the fragment (`https://issuer.example/1#z6Mk…`): the controller is the
        // URL before `#`.
        if let Some(frag) = fragment
            && frag.starts_with('z')
            && let Ok(key) = parse_multikey(frag)
        {
            return Ok(Method {
                id: method_url.to_owned(),
                controller: base.to_owned(),
                key,
                relationships: None,
            });
        }
        let located = match find_in(fetcher, base, |document| {
            locate(document, base, fragment, method_url)
        })
        .await
        {
            Ok(located) => located,
            Err(ResolveError::Unreachable(gone @ FetchError::NotServed { .. })) => {
                return Err(gone_key(fetcher, base, method_url, claimed, gone).await);
            }
            Err(e) => return Err(e),
        };
        let (controller, key, document) = match located {
            Located::Method(method) => return Ok(method),
            Located::KeyDocument {
                controller,
                key,
                document,
            } => (controller, key, document),
        };
        // The controller must list the key; resolve its document unless it is the same URL.
        let relationships = if controller == base {
            relationships(&document, base, method_url)
        } else if let Some(url) = controller_document_url(&controller, fetcher) {
            find_in(fetcher, &url, |controller_doc| {
                let listed = relationships(controller_doc, &controller, method_url);
                if listed.is_empty() {
                    Err(invalid(format!(
                        "the controller {controller} does not list {method_url}"
                    )))
                } else {
                    Ok(listed)
                }
            })
            .await?
        } else {
            Vec::new()
        };
        return Ok(Method {
            id: method_url.to_owned(),
            controller,
            key,
            relationships: Some(relationships),
        });
    }
    Err(invalid(format!(
        "unsupported verification method {method_url} (did:key, did:web and https are supported)"
    )))
}

/// Looks something up in the document at `url` with `find`. When the copy came from the cache
/// and `find` says it is not there, the document is fetched once more and `find` decides on the
/// live copy; when that re-fetch cannot be made, the answer is `Unreachable`.
async fn find_in<T>(
    fetcher: &Fetcher,
    url: &str,
    find: impl Fn(&Value) -> Result<T, ResolveError>,
) -> Result<T, ResolveError> {
    let fetched = fetcher.document(url).await?;
    match find(&fetched.document) {
        Err(ResolveError::Invalid(why)) if fetched.from_cache => {
            let stale = |reason: String| {
                Err(ResolveError::Unreachable(FetchError::RateLimited {
                    url: url.to_owned(),
                    reason: format!(
                        "{why} (in a cached copy, which could not be checked again: {reason})"
                    ),
                }))
            };
            match fetcher.refetch(url).await {
                Ok(fresh) if fresh.live => find(&fresh.document),
                // The rate limit kept us from the live document: a copy of the last re-fetch
                // may have what we look for; if not, we cannot tell.
                Ok(recent) => match find(&recent.document) {
                    Err(ResolveError::Invalid(_)) => stale(format!(
                        "re-fetched less than {} s ago",
                        fetcher.refetch_interval().as_secs()
                    )),
                    other => other,
                },
                Err(FetchError::RateLimited { reason, .. }) => stale(reason),
                Err(e) => Err(e.into()),
            }
        }
        other => other,
    }
}

/// What a fetched `https` document says about `method_url`.
pub(crate) enum Located {
    /// The method, complete.
    Method(Method),
    /// A key document (`{id, type, controller, publicKey…}`): its controller must still list it.
    KeyDocument {
        controller: String,
        key: PublicKey,
        document: Value,
    },
}

/// Finds `method_url` in the document fetched from `base`: a key document, a bare JWK, a JWK Set
/// (by `kid`), or a controller document listing verification methods.
pub(crate) fn locate(
    document: &Value,
    base: &str,
    fragment: Option<&str>,
    method_url: &str,
) -> Result<Located, ResolveError> {
    let doc_id = document.get("id").and_then(Value::as_str);
    if doc_id == Some(method_url) && fragment.is_none() {
        let controller = document
            .get("controller")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the key document has no controller"))?
            .to_owned();
        return Ok(Located::KeyDocument {
            controller,
            key: key_of_method(document)?,
            document: document.clone(),
        });
    }
    if document.get("kty").is_some() {
        // A bare JWK document: the URL is the key; its controller is the URL's owner.
        return Ok(Located::Method(Method {
            id: method_url.to_owned(),
            controller: base.to_owned(),
            key: parse_jwk(document)?,
            relationships: None,
        }));
    }
    if let Some(keys) = document.get("keys").and_then(Value::as_array) {
        // A JWKS: find the key by `kid`.
        let jwk = keys
            .iter()
            .find(|k| {
                let kid = k.get("kid").and_then(Value::as_str);
                kid == Some(method_url) || (fragment.is_some() && kid == fragment)
            })
            .ok_or_else(|| invalid(format!("no key {method_url} in the JWKS at {base}")))?;
        return Ok(Located::Method(Method {
            id: method_url.to_owned(),
            controller: base.to_owned(),
            key: parse_jwk(jwk)?,
            relationships: None,
        }));
    }
    let id = doc_id.unwrap_or(base);
    method_in_document(document, id, method_url).map(Located::Method)
}

/// Where the document of `controller` (a did:web or an http(s) URL) is fetched from, when the
/// policy lets it be fetched at all.
fn controller_document_url(controller: &str, fetcher: &Fetcher) -> Option<String> {
    if controller.starts_with("did:web:") {
        return did_web_fetch_url(controller, fetcher).ok();
    }
    let (base, _) = split_fragment(controller);
    (base.starts_with("https://") || (fetcher.policy().allow_http && base.starts_with("http://")))
        .then(|| base.to_owned())
}

/// A key URL answered 4xx. The key is gone for good when the party that must control it
/// (`claimed`) has a document that was fetched and does not list it; when there is no such
/// party, its document is the one that answered, or it does list the key, we cannot tell.
async fn gone_key(
    fetcher: &Fetcher,
    base: &str,
    method_url: &str,
    claimed: Option<&str>,
    gone: FetchError,
) -> ResolveError {
    let unknown = || ResolveError::Unreachable(gone.clone());
    let Some(controller) = claimed else {
        return unknown();
    };
    let Some(url) = controller_document_url(controller, fetcher) else {
        return unknown();
    };
    if split_fragment(&url).0 == base {
        return unknown();
    }
    let listed = find_in(fetcher, &url, |document| {
        let listed = !relationships(document, controller, method_url).is_empty()
            || method_in_document(document, controller, method_url).is_ok();
        if listed {
            Ok(())
        } else {
            Err(invalid(format!("{controller} does not list {method_url}")))
        }
    })
    .await;
    match listed {
        // The controller still lists the key, but its URL does not serve it: a broken host.
        Ok(()) => unknown(),
        Err(ResolveError::Invalid(_)) => invalid(format!(
            "{gone}, and the document of {controller}, who must control the key, does not list it"
        )),
        Err(e) => e,
    }
}

/// The URL of the JWK Set on the host of an `https` issuer (`http` where the policy allows it).
fn host_jwks_url(issuer: &str, fetcher: &Fetcher) -> Result<String, ResolveError> {
    let url = url::Url::parse(issuer)
        .ok()
        .filter(|u| u.scheme() == "https" || (fetcher.policy().allow_http && u.scheme() == "http"))
        .filter(|u| u.host().is_some())
        .ok_or_else(|| {
            invalid(format!(
                "the issuer {issuer} is not an https URL, so its host's JWK Set cannot hold its key"
            ))
        })?;
    url.join("/.well-known/jwks.json")
        .map(|u| u.to_string())
        .map_err(|e| invalid(format!("no JWK Set URL for {issuer}: {e}")))
}

/// How many keys of a JWK Set are tried for a JWT without a usable `kid`.
const MAX_JWKS_KEYS: usize = 32;

/// The OB 3.0 implementation guide's key rule for a VC-JWT whose `kid` is absent or neither a
/// DID nor a URL: the key is looked up in the JWK Set at the issuer host's
/// `/.well-known/jwks.json` (by `kid` when there is one, else the first key `fits` accepts), and a
/// key found there is bound to the issuer, which must be an `https` URL on that host. A set that
/// was fetched and holds no such key makes the key `Invalid` (after a re-fetch of a cached copy).
pub async fn host_jwks_key(
    fetcher: &Fetcher,
    issuer: &str,
    kid: Option<&str>,
    fits: impl Fn(&PublicKey) -> bool,
) -> Result<Method, ResolveError> {
    let url = host_jwks_url(issuer, fetcher)?;
    find_in(fetcher, &url, |document| {
        key_in_jwks(document, &url, issuer, kid, &fits)
    })
    .await
}

/// The key [`host_jwks_key`] takes from the JWK Set `document` fetched from `url`: by `kid` when
/// there is one, else the first of at most [`MAX_JWKS_KEYS`] keys that `fits` accepts. Untrusted
/// input: the `jwks` fuzz target calls it (see `crate::fuzzing`).
pub(crate) fn key_in_jwks(
    document: &Value,
    url: &str,
    issuer: &str,
    kid: Option<&str>,
    fits: impl Fn(&PublicKey) -> bool,
) -> Result<Method, ResolveError> {
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("{url} is not a JWK Set")))?;
    keys.iter()
        .filter(|jwk| kid.is_none_or(|kid| jwk.get("kid").and_then(Value::as_str) == Some(kid)))
        .take(MAX_JWKS_KEYS)
        .filter_map(|jwk| parse_jwk(jwk).ok().map(|key| (jwk, key)))
        .find(|(_, key)| fits(key))
        .map(|(jwk, key)| Method {
            id: match jwk.get("kid").and_then(Value::as_str) {
                Some(kid) => format!("{url}#{kid}"),
                None => url.to_owned(),
            },
            controller: issuer.to_owned(),
            key,
            relationships: None,
        })
        .ok_or_else(|| {
            invalid(match kid {
                Some(kid) => format!("the JWK Set {url} lists no usable key {kid}"),
                None => format!("no key in the JWK Set {url} verifies the JWT"),
            })
        })
}

/// Absolute form of a (possibly relative) id inside the document `doc_id`.
pub(crate) fn absolute(id: &str, doc_id: &str) -> String {
    if id.starts_with('#') {
        format!("{doc_id}{id}")
    } else {
        id.to_owned()
    }
}

/// The verification relationships of `document` that list `method_url`.
pub(crate) fn relationships(document: &Value, doc_id: &str, method_url: &str) -> Vec<String> {
    const RELATIONSHIPS: [&str; 5] = [
        "assertionMethod",
        "authentication",
        "capabilityInvocation",
        "capabilityDelegation",
        "keyAgreement",
    ];
    RELATIONSHIPS
        .iter()
        .filter(|rel| {
            document
                .get(**rel)
                .and_then(Value::as_array)
                .is_some_and(|items| {
                    items.iter().any(|item| {
                        let id = item
                            .as_str()
                            .or_else(|| item.get("id").and_then(Value::as_str));
                        id.is_some_and(|id| absolute(id, doc_id) == method_url)
                    })
                })
        })
        .map(|rel| (*rel).to_owned())
        .collect()
}

/// Finds `method_url` among a DID or controller document's verification methods (also those
/// embedded in relationships).
pub(crate) fn method_in_document(
    document: &Value,
    doc_id: &str,
    method_url: &str,
) -> Result<Method, ResolveError> {
    let mut candidates = document
        .get("verificationMethod")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            ["assertionMethod", "authentication"]
                .iter()
                .filter_map(|rel| document.get(*rel).and_then(Value::as_array))
                .flatten()
                .filter(|v| v.is_object()),
        );
    let method = candidates
        .find(|m| {
            m.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| absolute(id, doc_id) == method_url)
        })
        .ok_or_else(|| invalid(format!("{doc_id} does not list {method_url}")))?;
    let controller = method
        .get("controller")
        .and_then(Value::as_str)
        .map(|c| absolute(c, doc_id))
        .unwrap_or_else(|| doc_id.to_owned());
    Ok(Method {
        id: method_url.to_owned(),
        controller,
        key: key_of_method(method)?,
        relationships: Some(relationships(document, doc_id, method_url)),
    })
}

/// The keys of one of this service's issuers, as the verifier needs them.
#[derive(Debug)]
pub struct OwnIssuer {
    issuer_id: String,
    /// Published (active and retired) methods: id and key.
    methods: Vec<(String, PublicKey)>,
    /// Ids of revoked methods.
    revoked: Vec<String>,
}

async fn load_own_issuer(
    state: &AppState,
    base: &str,
) -> Result<Option<Arc<OwnIssuer>>, sea_orm::DbErr> {
    let db = state.db();
    let Some(issuer) = issuer::Entity::find()
        .filter(issuer::Column::IssuerId.eq(base))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let methods = documents::verification_methods(db, &issuer)
        .await?
        .iter()
        .filter_map(|m| {
            let id = m.get("id").and_then(Value::as_str)?.to_owned();
            key_of_method(m).ok().map(|key| (id, key))
        })
        .collect();
    let revoked = signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(issuer.id.as_str()))
        .filter(signing_key::Column::State.eq(state::REVOKED))
        .all(db)
        .await?
        .iter()
        .map(|k| verification_method_id(&issuer, k))
        .collect();
    Ok(Some(Arc::new(OwnIssuer {
        issuer_id: issuer.issuer_id,
        methods,
        revoked,
    })))
}

/// A method of one of this service's issuers, from the database (through a cache of at most
/// [`super::OWN_KEYS_TTL`]): `None` when `base` is not one of our issuer ids.
async fn own_method(
    state: &AppState,
    base: &str,
    method_url: &str,
) -> Result<Option<Method>, ResolveError> {
    let cache = state.verifier().own_issuers();
    let load = || async {
        let loaded = load_own_issuer(state, base).await.map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            ResolveError::Unreachable(FetchError::Failed {
                url: method_url.to_owned(),
                reason: "the key store is unavailable".into(),
            })
        })?;
        cache.insert(base.to_owned(), loaded.clone());
        Ok::<_, ResolveError>(loaded)
    };
    let mut own = match cache.get(base) {
        Some(hit) => hit,
        None => load().await?,
    };
    // A key made after the cache entry (a rotation on another instance) is looked up afresh.
    if own.as_ref().is_some_and(|o| {
        !o.methods.iter().any(|(id, _)| id == method_url)
            && !o.revoked.iter().any(|id| id == method_url)
    }) {
        own = load().await?;
    }
    let Some(own) = own else {
        return Ok(None);
    };
    if let Some((_, key)) = own.methods.iter().find(|(id, _)| id == method_url) {
        return Ok(Some(Method {
            id: method_url.to_owned(),
            controller: own.issuer_id.clone(),
            key: key.clone(),
            relationships: Some(vec!["assertionMethod".into(), "authentication".into()]),
        }));
    }
    if own.revoked.iter().any(|id| id == method_url) {
        return Err(invalid(format!("{method_url} was revoked by its issuer")));
    }
    Err(invalid(format!(
        "{method_url} is not a key of issuer {}",
        own.issuer_id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_web_urls() {
        assert_eq!(
            did_web_url("did:web:example.com").unwrap(),
            "https://example.com/.well-known/did.json"
        );
        assert_eq!(
            did_web_url("did:web:example.com%3A8443:issuers:abc").unwrap(),
            "https://example.com:8443/issuers/abc/did.json"
        );
        assert!(did_web_url("did:web:example.com:..:x").is_err());
        assert!(did_web_url("did:web:evil.com%2F@x").is_err());
    }

    #[test]
    fn multikeys_and_jwks() {
        let ed = parse_multikey("z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2").unwrap();
        assert_eq!(ed.kind(), "Ed25519");
        let PublicKey::Ed25519(vk) = ed else {
            panic!("Ed25519 expected")
        };
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(vk.as_bytes())});
        assert!(matches!(parse_jwk(&jwk).unwrap(), PublicKey::Ed25519(k) if k == vk));
        let private = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AA", "d": "AA"});
        assert!(parse_jwk(&private).is_err());
        assert!(parse_multikey("zQ3s").is_err());
    }
}
