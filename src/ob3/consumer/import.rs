//! Importing an earner's badges and profile from a connected host: every page of
//! `getCredentials` (following `Link: rel="next"`, reading `X-Total-Count`), each credential
//! verified with our verifier and stored with the earner's uploads under the OB 3.0 equality rule;
//! the ones that do not verify are reported with the reason. Then `getProfile`.

use reqwest::Method;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::Value;
use url::Url;

use super::{ConsumerError, connection, excerpt};
use crate::{
    app::AppState,
    db::host_connection,
    ob3::uploads::{self, Upload, UploadFormat, Upserted},
    verify::fetch::OutboundRequest,
};

/// Page size asked for.
pub const PAGE_SIZE: u32 = 20;
/// At most this many pages are read in one import (a host that never ends cannot keep us busy).
const MAX_PAGES: u32 = 500;

/// One page of `getCredentials` as the host answered it.
#[derive(Debug, Clone)]
pub struct RemotePage {
    /// JSON credentials (`credential`).
    pub credentials: Vec<Value>,
    /// VC-JWTs (`compactJwsString`).
    pub compact_jws: Vec<String>,
    /// `X-Total-Count`.
    pub total: Option<u64>,
    /// `Link` relations (`next`, `last`, `first`, `prev`) to absolute URLs.
    pub links: Vec<(String, String)>,
}

impl RemotePage {
    /// The `rel` link, if any.
    pub fn link(&self, rel: &str) -> Option<&str> {
        self.links
            .iter()
            .find(|(r, _)| r == rel)
            .map(|(_, u)| u.as_str())
    }
}

/// Parses an RFC 8288 `Link` header into (rel, absolute URL) pairs.
pub fn parse_link_header(header: &str, base: &Url) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let Some(target) = pieces.next().map(str::trim) else {
            continue;
        };
        let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
            continue;
        };
        let Ok(url) = base.join(target) else { continue };
        for param in pieces {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("rel") {
                for rel in v.trim().trim_matches('"').split_whitespace() {
                    out.push((rel.to_ascii_lowercase(), url.to_string()));
                }
            }
        }
    }
    out
}

/// Reads one page at `url` (`<api>/credentials?limit=&offset=`, or a `next` link).
pub async fn fetch_page(
    state: &AppState,
    row: host_connection::Model,
    url: &str,
) -> Result<(host_connection::Model, RemotePage), ConsumerError> {
    let target = url.to_owned();
    let (row, answer) =
        connection::authorized_send(state, row, || OutboundRequest::new(Method::GET, &target))
            .await?;
    if answer.status != 200 {
        return Err(ConsumerError::HostError(format!(
            "getCredentials answered HTTP {}: {}",
            answer.status,
            excerpt(&answer.body)
        )));
    }
    let body = answer.json().ok_or_else(|| {
        ConsumerError::HostError("getCredentials did not answer a JSON object".into())
    })?;
    let base = Url::parse(url).map_err(|e| ConsumerError::HostError(e.to_string()))?;
    let links = answer
        .headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|h| parse_link_header(h, &base))
        .collect();
    Ok((
        row,
        RemotePage {
            credentials: body
                .get("credential")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            compact_jws: body
                .get("compactJwsString")
                .or_else(|| body.get("compactJwsStrings"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            total: answer
                .header("x-total-count")
                .and_then(|v| v.trim().parse().ok()),
            links,
        },
    ))
}

/// The first page's URL.
pub fn first_page_url(row: &host_connection::Model, limit: u32, offset: u64) -> String {
    format!(
        "{}/credentials?limit={limit}&offset={offset}",
        row.api_base.trim_end_matches('/')
    )
}

/// What happened to one imported credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The credential `id`.
    pub credential_id: String,
    /// `created`, `replaced` or `kept` (the copy here was newer).
    pub outcome: &'static str,
}

/// A credential that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The credential `id`, when it has one.
    pub credential_id: Option<String>,
    pub reason: String,
}

/// The outcome of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Pages read.
    pub pages: u32,
    /// The host's `X-Total-Count` (of the first page).
    pub total: Option<u64>,
    /// Credentials received.
    pub received: u64,
    pub imported: Vec<Imported>,
    pub rejected: Vec<Rejected>,
    /// The person's Profile at the host, when the grant lets us read it.
    pub profile: Option<Value>,
}

/// Imports everything the connection can read into `row`'s earner's collection.
pub async fn import(
    state: &AppState,
    row: host_connection::Model,
) -> Result<ImportReport, ConsumerError> {
    let connection::Owner::User(user_id) = row.owner() else {
        return Err(ConsumerError::NotConnected(
            "only an earner's connection imports badges".into(),
        ));
    };
    connection::check_rate(state, &row.owner()).await?;
    let api_origin = Url::parse(&row.api_base)
        .map_err(|e| ConsumerError::HostError(e.to_string()))?
        .origin();
    let mut report = ImportReport::default();
    let mut row = row;
    if row.has_scope(SCOPE_CREDENTIAL_READ) {
        let mut next = Some(first_page_url(&row, PAGE_SIZE, 0));
        while let Some(url) = next.take() {
            if report.pages >= MAX_PAGES {
                break;
            }
            let (r, page) = fetch_page(state, row, &url).await?;
            row = r;
            report.pages += 1;
            if report.pages == 1 {
                report.total = page.total;
            }
            for credential in &page.credentials {
                let bytes = serde_json::to_vec(credential).unwrap_or_default();
                take(state, &user_id, UploadFormat::Json, &bytes, &mut report).await?;
            }
            for jws in &page.compact_jws {
                take(
                    state,
                    &user_id,
                    UploadFormat::Jwt,
                    jws.as_bytes(),
                    &mut report,
                )
                .await?;
            }
            let empty = page.credentials.is_empty() && page.compact_jws.is_empty();
            // Our token goes only to the host's own origin, whatever its Link header says.
            next = page
                .link("next")
                .filter(|_| !empty)
                .filter(|u| Url::parse(u).is_ok_and(|u| u.origin() == api_origin))
                .map(str::to_owned);
        }
    }
    if row.has_scope(SCOPE_PROFILE_READ) {
        let (r, profile) = get_profile(state, row).await?;
        row = r;
        let mut active: host_connection::ActiveModel = row.into();
        active.remote_profile = Set(Some(profile.to_string()));
        active.update(state.db()).await?;
        report.profile = Some(profile);
    }
    Ok(report)
}

const SCOPE_CREDENTIAL_READ: &str =
    "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.readonly";
const SCOPE_PROFILE_READ: &str = "https://purl.imsglobal.org/spec/ob/v3p0/scope/profile.readonly";

async fn take(
    state: &AppState,
    user_id: &str,
    format: UploadFormat,
    bytes: &[u8],
    report: &mut ImportReport,
) -> Result<(), ConsumerError> {
    report.received += 1;
    let upload = match Upload::parse(format, bytes) {
        Ok(upload) => upload,
        Err(e) => {
            report.rejected.push(Rejected {
                credential_id: serde_json::from_slice::<Value>(bytes)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned)),
                reason: e.to_string(),
            });
            return Ok(());
        }
    };
    if let Err(e) = upload.verify(state).await {
        report.rejected.push(Rejected {
            credential_id: Some(upload.credential_id.clone()),
            reason: e.to_string(),
        });
        return Ok(());
    }
    let outcome = match uploads::upsert(state.db(), user_id, &upload).await? {
        Upserted::Created { .. } => "created",
        Upserted::Replaced { .. } => "replaced",
        Upserted::KeptNewer { .. } => "kept",
    };
    report.imported.push(Imported {
        credential_id: upload.credential_id,
        outcome,
    });
    Ok(())
}

/// `getProfile`.
pub async fn get_profile(
    state: &AppState,
    row: host_connection::Model,
) -> Result<(host_connection::Model, Value), ConsumerError> {
    let url = format!("{}/profile", row.api_base.trim_end_matches('/'));
    let (row, answer) =
        connection::authorized_send(state, row, || OutboundRequest::new(Method::GET, &url)).await?;
    if answer.status != 200 {
        return Err(ConsumerError::HostError(format!(
            "getProfile answered HTTP {}: {}",
            answer.status,
            excerpt(&answer.body)
        )));
    }
    let profile = answer.json().filter(Value::is_object).ok_or_else(|| {
        ConsumerError::HostError("getProfile did not answer a JSON object".into())
    })?;
    Ok((row, profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_are_parsed() {
        let base = Url::parse("https://h.example/ims/ob/v3p0/credentials?limit=2").unwrap();
        let links = parse_link_header(
            r#"<https://h.example/ims/ob/v3p0/credentials?limit=2&offset=2>; rel="next", </ims/ob/v3p0/credentials?limit=2&offset=4>; rel="last""#,
            &base,
        );
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].0, "next");
        assert_eq!(
            links[1].1,
            "https://h.example/ims/ob/v3p0/credentials?limit=2&offset=4"
        );
    }
}
