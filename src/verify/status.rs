//! Status checks: W3C Bitstring Status List (revocation, suspension, message), its predecessor
//! StatusList2021, and the 1EdTech revocation list. This service's own lists are read from the
//! database; others are fetched, and a fetched list must itself verify and come from the issuer.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use super::{
    data_integrity, jwt,
    report::{Check, Findings, problem},
};
use crate::{
    app::AppState,
    db::{credential, issuer, status_entry, status_list},
    status::bitstring::{Bitstring, BitstringError},
};

const NAME: &str = "status";
/// The Bitstring Status List minimum (16 KiB of bits).
const MIN_BITS: usize = 131_072;
/// Decompression cap for fetched lists.
const MAX_LIST_BYTES: usize = 16 * 1024 * 1024;

fn unknown(problem_type: &str, title: &str, detail: impl Into<String>) -> Check {
    Check::indeterminate(NAME, problem_type, title, detail)
}

/// One check per `credentialStatus` entry; findings get the revoked / suspended flags.
pub async fn check(state: &AppState, credential: &Value, findings: &mut Findings) -> Vec<Check> {
    let entries: Vec<&Value> = match credential.get("credentialStatus") {
        None => {
            return vec![Check::skipped(
                NAME,
                "the credential has no credentialStatus",
            )];
        }
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    };
    let mut checks = Vec::with_capacity(entries.len());
    for entry in entries {
        let kind = entry
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        checks.push(match kind {
            "BitstringStatusListEntry" | "StatusList2021Entry" => {
                bitstring_entry(state, credential, entry, kind, findings).await
            }
            "1EdTechRevocationList" => {
                revocation_list_entry(state, credential, entry, findings).await
            }
            other => unknown(
                &problem::ours("unsupported_status"),
                "Unsupported status method",
                format!("status type {other:?} is not supported, so the status is unknown"),
            ),
        });
    }
    checks
}

fn base_url(state: &AppState) -> &str {
    state.public_url().as_str().trim_end_matches('/')
}

async fn bitstring_entry(
    state: &AppState,
    credential: &Value,
    entry: &Value,
    kind: &str,
    findings: &mut Findings,
) -> Check {
    let Some(purpose) = entry.get("statusPurpose").and_then(Value::as_str) else {
        return unknown(
            problem::STATUS_MALFORMED,
            "Malformed status entry",
            "no statusPurpose",
        );
    };
    let index = match entry.get("statusListIndex") {
        Some(Value::String(s)) => s.parse::<usize>().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        _ => None,
    };
    let Some(index) = index else {
        return unknown(
            problem::STATUS_MALFORMED,
            "Malformed status entry",
            "statusListIndex must be a base-10 integer string",
        );
    };
    let size = entry
        .get("statusSize")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 8) as usize;
    let Some(list_url) = entry.get("statusListCredential").and_then(Value::as_str) else {
        return unknown(
            problem::STATUS_MALFORMED,
            "Malformed status entry",
            "no statusListCredential",
        );
    };
    let own_prefix = format!("{}/status/", base_url(state));
    let value = match list_url.strip_prefix(&own_prefix) {
        Some(list_id) => own_bit(state, credential, list_id, index, purpose).await,
        None => fetched_bits(state, credential, list_url, kind, purpose, index, size).await,
    };
    let value = match value {
        Ok(v) => v,
        Err(check) => return check,
    };
    match (purpose, value) {
        (_, 0) => Check::passed(NAME, format!("{purpose}: not set ({list_url} #{index})")),
        ("revocation", _) => {
            findings.revoked = true;
            Check::failed(
                NAME,
                problem::ours("revoked"),
                "Revoked",
                format!("the issuer has revoked this credential ({list_url} #{index})"),
            )
        }
        ("suspension", _) => {
            findings.suspended = true;
            Check::failed(
                NAME,
                problem::ours("suspended"),
                "Suspended",
                format!("the issuer has suspended this credential ({list_url} #{index})"),
            )
        }
        ("message", v) => {
            let message = entry
                .get("statusMessage")
                .and_then(Value::as_array)
                .and_then(|ms| {
                    ms.iter().find(|m| {
                        m.get("status").and_then(Value::as_str) == Some(&format!("0x{v:x}"))
                    })
                })
                .and_then(|m| m.get("message").and_then(Value::as_str))
                .unwrap_or("no message given for this value");
            Check::passed(NAME, format!("status message 0x{v:x}: {message}"))
        }
        (other, v) => Check::passed(NAME, format!("{other}: value {v}")),
    }
}

/// What never changes about one of our lists.
#[derive(Debug)]
pub struct OwnList {
    purpose: String,
    owner: String,
    size: usize,
}

async fn own_list(state: &AppState, list_id: &str) -> Result<Option<Arc<OwnList>>, sea_orm::DbErr> {
    if let Some(hit) = state.verifier().own_lists().get(list_id) {
        return Ok(Some(hit));
    }
    let db = state.db();
    let Some(list) = status_list::Entity::find_by_id(list_id.to_owned())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(owner) = issuer::Entity::find_by_id(list.issuer_id.clone())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let facts = Arc::new(OwnList {
        purpose: list.purpose,
        owner: owner.issuer_id,
        size: usize::try_from(list.size).unwrap_or(0),
    });
    state
        .verifier()
        .own_lists()
        .insert(list_id.to_owned(), facts.clone());
    Ok(Some(facts))
}

/// The bit of one of our own lists, read from the database.
async fn own_bit(
    state: &AppState,
    credential: &Value,
    list_id: &str,
    index: usize,
    purpose: &str,
) -> Result<u64, Check> {
    let unavailable = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "status lookup failed");
        unknown(
            problem::STATUS_RETRIEVAL,
            "Status unavailable",
            "the status store is unavailable",
        )
    };
    let list = own_list(state, list_id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            unknown(
                problem::STATUS_RETRIEVAL,
                "Status list not found",
                format!("this service has no status list {list_id}"),
            )
        })?;
    if list.purpose != purpose {
        return Err(unknown(
            problem::STATUS_VERIFICATION,
            "Status purpose mismatch",
            format!("list {list_id} is a {} list, not {purpose}", list.purpose),
        ));
    }
    if jwt::issuer_id(credential) != Some(list.owner.as_str()) {
        return Err(unknown(
            problem::STATUS_VERIFICATION,
            "Status list of another issuer",
            format!("list {list_id} belongs to {}", list.owner),
        ));
    }
    if index >= list.size {
        return Err(unknown(
            problem::STATUS_RANGE,
            "Index out of range",
            format!("index {index} is outside list {list_id}"),
        ));
    }
    let idx = i32::try_from(index).unwrap_or(i32::MAX);
    let entry = status_entry::Entity::find_by_id((list_id.to_owned(), idx))
        .one(state.db())
        .await
        .map_err(unavailable)?;
    Ok(entry.map_or(0, |e| u64::from(e.value != 0)))
}

/// The status value from a fetched list credential, after verifying the list.
async fn fetched_bits(
    state: &AppState,
    credential: &Value,
    list_url: &str,
    kind: &str,
    purpose: &str,
    index: usize,
    size: usize,
) -> Result<u64, Check> {
    let list = state
        .verifier()
        .fetcher()
        .json(list_url)
        .await
        .map_err(|e| {
            unknown(
                problem::STATUS_RETRIEVAL,
                "Status list unavailable",
                e.to_string(),
            )
        })?;
    let verify_error = |detail: String| {
        unknown(
            problem::STATUS_VERIFICATION,
            "Status list not trusted",
            detail,
        )
    };
    let list_type = if kind == "StatusList2021Entry" {
        "StatusList2021Credential"
    } else {
        "BitstringStatusListCredential"
    };
    // Secured with Data Integrity (JSON), or with JOSE (a compact JWS: `application/vc+jwt`).
    let (list, controller) = match list.as_ref() {
        Value::String(jws) => jwt_list(state, jws).await.map_err(verify_error)?,
        _ => {
            let (_, proof, controller, authentic) =
                data_integrity(state, &list, "assertionMethod").await;
            if !authentic {
                return Err(verify_error(format!(
                    "the list's proof does not verify: {}",
                    proof.detail.unwrap_or_default()
                )));
            }
            (list, controller)
        }
    };
    if !super::types_of(&list).contains(&list_type) {
        return Err(verify_error(format!("{list_url} is not a {list_type}")));
    }
    if jwt::issuer_id(&list) != jwt::issuer_id(credential) {
        return Err(verify_error(format!(
            "the list is issued by {}, not by the credential's issuer",
            jwt::issuer_id(&list).unwrap_or("nobody")
        )));
    }
    // The key that signed the list must be the issuer's (as for the credential itself).
    if controller.as_deref() != jwt::issuer_id(&list) {
        return Err(verify_error(format!(
            "the list is signed by a key of {}, not of its issuer",
            controller.as_deref().unwrap_or("an unknown controller")
        )));
    }
    let now = Utc::now();
    let date = |f: &str| {
        list.get(f)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    };
    let until = date("validUntil").or_else(|| date("expirationDate"));
    let from = date("validFrom").or_else(|| date("issuanceDate"));
    if until.is_some_and(|t| t < now) || from.is_some_and(|t| t > now) {
        return Err(verify_error(
            "the status list is outside its validity period".into(),
        ));
    }
    let subject = list.get("credentialSubject").cloned().unwrap_or_default();
    let purposes: Vec<&str> = match subject.get("statusPurpose") {
        Some(Value::String(p)) => vec![p.as_str()],
        Some(Value::Array(ps)) => ps.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !purposes.contains(&purpose) {
        return Err(verify_error(format!(
            "the list's statusPurpose does not include {purpose}"
        )));
    }
    status_value(&subject, kind, index, size)
}

/// The status value at `index` (`size` bits) of a list credential's `credentialSubject`: its
/// `encodedList` decoded (StatusList2021's plain base64url too), at least [`MIN_BITS`] long and
/// at most [`MAX_LIST_BYTES`] decompressed, and the range checked. Untrusted input: the
/// `status_list` fuzz target calls it (see `crate::fuzzing`).
// The error is the report's `Check`, built once per verification; boxing it buys nothing here.
#[allow(clippy::result_large_err)]
pub(crate) fn status_value(
    subject: &Value,
    kind: &str,
    index: usize,
    size: usize,
) -> Result<u64, Check> {
    let Some(encoded) = subject.get("encodedList").and_then(Value::as_str) else {
        return Err(unknown(
            problem::STATUS_MALFORMED,
            "Malformed status list",
            "no encodedList",
        ));
    };
    // StatusList2021 carries base64url without the multibase `u`.
    let normalized = if encoded.starts_with('u') && kind != "StatusList2021Entry" {
        encoded.to_owned()
    } else {
        format!("u{}", encoded.replace('+', "-").replace('/', "_"))
    };
    let bits = Bitstring::decode(&normalized, MIN_BITS, MAX_LIST_BYTES).map_err(|e| match e {
        BitstringError::Length { .. } => unknown(
            problem::STATUS_LIST_LENGTH,
            "Status list too short",
            e.to_string(),
        ),
        other => unknown(
            problem::STATUS_MALFORMED,
            "Malformed status list",
            other.to_string(),
        ),
    })?;
    let range_error = || {
        unknown(
            problem::STATUS_RANGE,
            "Index out of range",
            format!("index {index} × size {size} is outside the list"),
        )
    };
    let position = index.checked_mul(size).ok_or_else(range_error)?;
    if position + size > bits.len() {
        return Err(range_error());
    }
    // `get_value` takes the entry index and multiplies by the size itself.
    bits.get_value(index, size).map_err(|_| range_error())
}

/// A status list secured as a VC-JWT: the header, the claims against the credential fields, and
/// the signature. Returns the list credential and the controller of the key that signed it.
async fn jwt_list(state: &AppState, jws: &str) -> Result<(Arc<Value>, Option<String>), String> {
    let decoded = jwt::decode(jws).map_err(|e| format!("the list is not a valid VC-JWT: {e}"))?;
    // VC-JOSE-COSE types the token `vc+jwt` (older drafts `vc+ld+jwt`); OB 3.0 uses `JWT`.
    if let Some(typ) = decoded.header.get("typ")
        && !matches!(typ.as_str(), Some("JWT" | "vc+jwt" | "vc+ld+jwt"))
    {
        return Err(format!("the list's JWT has typ {typ}"));
    }
    let list = decoded.credential()?;
    let mismatches = decoded.claim_mismatches(&list);
    if !mismatches.is_empty() {
        return Err(format!(
            "the list's JWT claims disagree with it: {}",
            mismatches.join("; ")
        ));
    }
    let (proof, controller) = super::jwt_proof(state, &decoded, &list).await;
    if proof.status != super::report::CheckStatus::Passed {
        return Err(format!(
            "the list's signature does not verify: {}",
            proof.detail.unwrap_or_default()
        ));
    }
    Ok((Arc::new(list), controller))
}

async fn revocation_list_entry(
    state: &AppState,
    credential: &Value,
    entry: &Value,
    findings: &mut Findings,
) -> Check {
    let Some(list_url) = entry.get("id").and_then(Value::as_str) else {
        return unknown(
            problem::STATUS_MALFORMED,
            "Malformed status entry",
            "a 1EdTechRevocationList entry needs the list URL as its id",
        );
    };
    let Some(credential_id) = credential.get("id").and_then(Value::as_str) else {
        return unknown(
            problem::STATUS_MALFORMED,
            "No credential id",
            "a credential without an id cannot be found on a revocation list",
        );
    };
    let own_prefix = format!("{}/revocations/", base_url(state));
    let revoked = if list_url.starts_with(&own_prefix) {
        own_revoked(state, credential_id).await
    } else {
        match state.verifier().fetcher().json(list_url).await {
            Ok(list) => Ok(listed_revoked(&list, credential_id)),
            Err(e) => Err(unknown(
                problem::STATUS_RETRIEVAL,
                "Revocation list unavailable",
                e.to_string(),
            )),
        }
    };
    match revoked {
        Err(check) => check,
        Ok(None) => Check::passed(NAME, format!("not on the revocation list {list_url}")),
        Ok(Some(reason)) => {
            findings.revoked = true;
            Check::failed(
                NAME,
                problem::ours("revoked"),
                "Revoked",
                match reason {
                    Some(r) => format!("revoked by the issuer ({list_url}): {r}"),
                    None => format!("revoked by the issuer ({list_url})"),
                },
            )
        }
    }
}

/// `Some(reason)` when the 1EdTech list names the credential as revoked.
fn listed_revoked(list: &Arc<Value>, credential_id: &str) -> Option<Option<String>> {
    list.get("revokedCredential")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| {
            r.get("id").and_then(Value::as_str) == Some(credential_id)
                && r.get("revoked").and_then(Value::as_bool) != Some(false)
        })
        .map(|r| {
            r.get("revocationReason")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

/// Whether one of our credentials is revoked, from the database.
async fn own_revoked(
    state: &AppState,
    credential_id: &str,
) -> Result<Option<Option<String>>, Check> {
    let db = state.db();
    let unavailable = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "revocation lookup failed");
        unknown(
            problem::STATUS_RETRIEVAL,
            "Status unavailable",
            "the status store is unavailable",
        )
    };
    let Some(row) = credential::Entity::find()
        .filter(credential::Column::CredentialUri.eq(credential_id))
        .one(db)
        .await
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let revoked = status_entry::Entity::find()
        .filter(status_entry::Column::CredentialId.eq(row.id.as_str()))
        .filter(status_entry::Column::Value.eq(1))
        .find_also_related(status_list::Entity)
        .all(db)
        .await
        .map_err(unavailable)?
        .into_iter()
        .find(|(_, list)| list.as_ref().is_some_and(|l| l.purpose == "revocation"));
    Ok(revoked.map(|(entry, _)| entry.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multi-bit entry is read at index × size (it was once read at index × size × size).
    #[test]
    fn a_multi_bit_entry_is_read_at_its_own_position() {
        let mut bits = Bitstring::new(MIN_BITS);
        // Entry 3 of size 2 holds bits 6 and 7: `10` = 2.
        bits.set(6, true).unwrap();
        // Entry 12 of size 2 (bits 24, 25), where index × size × size would land: `11`.
        bits.set(24, true).unwrap();
        bits.set(25, true).unwrap();
        let subject = serde_json::json!({"encodedList": bits.encode()});
        let read = |index, size| {
            status_value(&subject, "BitstringStatusListEntry", index, size)
                .map_err(|c| c.detail.unwrap_or_default())
        };
        assert_eq!(read(3, 2), Ok(2));
        assert_eq!(read(12, 2), Ok(3));
        assert_eq!(read(6, 1), Ok(1));
        assert_eq!(read(7, 1), Ok(0));
        assert!(read(MIN_BITS / 2, 2).is_err(), "past the end");
        assert!(read(usize::MAX, 8).is_err(), "overflowing index");
    }
}
