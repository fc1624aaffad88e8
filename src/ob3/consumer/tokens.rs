//! Tokens at another host: PKCE and `state` values, the token endpoint (code exchange, refresh;
//! HTTP Basic client authentication), RFC 7009 revocation, and sealing every secret with the KEK
//! ring bound to its connection row and column.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{RngCore, rngs::OsRng};
use reqwest::{
    Method,
    header::{ACCEPT, AUTHORIZATION},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ConsumerError, excerpt};
use crate::{
    keys::envelope::{self, KekRing},
    verify::fetch::{Fetcher, OutboundRequest},
};

/// 32 random bytes, base64url: a `state` or a PKCE verifier (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 challenge of a PKCE verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// How a `state` is stored (hex SHA-256): a database reader cannot finish someone's authorization.
pub fn hash_state(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// Which secret of a connection a ciphertext holds (part of its associated data).
#[derive(Debug, Clone, Copy)]
pub enum SecretColumn {
    ClientSecret,
    AccessToken,
    RefreshToken,
    PkceVerifier,
}

impl SecretColumn {
    fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecret => "client_secret",
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
            Self::PkceVerifier => "pkce_verifier",
        }
    }
}

/// Seals `secret` for `column` of connection `id`.
pub fn seal(
    ring: &KekRing,
    id: &str,
    column: SecretColumn,
    secret: &str,
) -> Result<String, ConsumerError> {
    let sealed = envelope::seal_secret(
        ring,
        secret.as_bytes(),
        &["host_connections", id, column.as_str()],
    )?;
    Ok(envelope::sealed_to_text(&sealed))
}

/// Opens what [`seal`] made.
pub fn open(
    ring: &KekRing,
    id: &str,
    column: SecretColumn,
    text: &str,
) -> Result<SecretString, ConsumerError> {
    let context = ["host_connections", id, column.as_str()];
    let sealed =
        envelope::sealed_from_text(text).ok_or_else(|| envelope::EnvelopeError::Decrypt {
            key_id: context.join("/"),
            kek_id: "?".into(),
        })?;
    let plain = envelope::open_secret(ring, &sealed, &context)?;
    Ok(SecretString::from(
        String::from_utf8_lossy(&plain).into_owned(),
    ))
}

/// A token endpoint's successful answer.
#[derive(Debug)]
pub struct TokenAnswer {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
}

/// Our client at the host, for authenticating to its token and revocation endpoints.
pub struct ClientAuth<'a> {
    pub client_id: &'a str,
    pub client_secret: Option<&'a SecretString>,
}

fn with_client_auth(
    mut request: OutboundRequest,
    client: &ClientAuth<'_>,
    form: &mut Vec<(String, String)>,
) -> OutboundRequest {
    match client.client_secret {
        Some(secret) => {
            // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(client.client_id), enc(secret.expose_secret()));
            request = request.header(
                AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            );
        }
        None => form.push(("client_id".into(), client.client_id.to_owned())),
    }
    request
}

fn encode_form(form: &[(String, String)]) -> Vec<u8> {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        out.append_pair(k, v);
    }
    out.finish().into_bytes()
}

/// A token request (`grant_type` and the rest in `form`).
pub async fn token_request(
    fetcher: &Fetcher,
    token_url: &str,
    client: &ClientAuth<'_>,
    mut form: Vec<(String, String)>,
) -> Result<TokenAnswer, ConsumerError> {
    let request = OutboundRequest::new(Method::POST, token_url).header(ACCEPT, "application/json");
    let request = with_client_auth(request, client, &mut form);
    let answer = fetcher
        .send(request.body("application/x-www-form-urlencoded", encode_form(&form)))
        .await?;
    let body = answer.json().unwrap_or(Value::Null);
    if answer.status != 200 {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("");
        let detail = body
            .get("error_description")
            .and_then(Value::as_str)
            .map_or_else(|| excerpt(&answer.body), str::to_owned);
        return Err(if error == "invalid_grant" {
            ConsumerError::TokenRejected(format!(
                "the host's token endpoint answered invalid_grant: {detail}"
            ))
        } else {
            ConsumerError::HostError(format!(
                "the host's token endpoint answered HTTP {} {error}: {detail}",
                answer.status
            ))
        });
    }
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConsumerError::HostError("the token answer has no access_token".into()))?;
    if !body
        .get("token_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
    {
        return Err(ConsumerError::HostError(
            "the token answer's token_type is not Bearer".into(),
        ));
    }
    Ok(TokenAnswer {
        access_token: SecretString::from(access_token.to_owned()),
        refresh_token: body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(|s| SecretString::from(s.to_owned())),
        expires_in: body.get("expires_in").and_then(Value::as_i64),
        scope: body.get("scope").and_then(Value::as_str).map(str::to_owned),
    })
}

/// RFC 7009 revocation of one token (best effort: the answer is always 200 by the RFC).
pub async fn revoke(
    fetcher: &Fetcher,
    revocation_url: &str,
    client: &ClientAuth<'_>,
    token: &SecretString,
    hint: &str,
) -> Result<(), ConsumerError> {
    let mut form = vec![
        ("token".to_owned(), token.expose_secret().to_owned()),
        ("token_type_hint".to_owned(), hint.to_owned()),
    ];
    let request = with_client_auth(
        OutboundRequest::new(Method::POST, revocation_url),
        client,
        &mut form,
    );
    let answer = fetcher
        .send(request.body("application/x-www-form-urlencoded", encode_form(&form)))
        .await?;
    if answer.status != 200 {
        return Err(ConsumerError::HostError(format!(
            "the host's revocation endpoint answered HTTP {}: {}",
            answer.status,
            excerpt(&answer.body)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(random_token().len(), 43);
    }
}
