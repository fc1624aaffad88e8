//! `POST /api/v1/verify`: any badge in (JSON, JWS, baked PNG or SVG, raw or multipart; or a
//! presentation), a per-check report out. Public by default and rate-limited per client IP;
//! `verify_require_scope` puts it behind `credentials:verify`.

use futures_util::stream;
use poem::{Request, RequestBody, http::header};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, OpenApi,
    param::Query,
    payload::Json,
    registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef},
};

use super::ApiTags;
use crate::{
    app::AppState,
    error::ApiError,
    oauth::{Scope, tokens::resolve_token_cached},
    verify::{
        self, VerifyOptions,
        input::{self, InputError, Submitted},
        report::Report,
    },
};

/// The media types `POST /api/v1/verify` reads.
const MEDIA_TYPES: [&str; 9] = [
    "application/json",
    "application/vc+ld+json",
    "application/vp+ld+json",
    "application/ld+json",
    "text/plain",
    "image/png",
    "image/svg+xml",
    "multipart/form-data",
    "application/octet-stream",
];

/// A raw upload: the body bytes and their media type, parsed by the verifier itself so that every
/// supported form (and multipart) goes through one path.
pub struct Upload {
    media_type: String,
    bytes: Vec<u8>,
}

impl<'a> ApiExtractor<'a> for Upload {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some(
                "A JSON credential or presentation (application/json, application/vc+ld+json, \
                 application/vp+ld+json, application/ld+json), a compact JWS (text/plain), a baked \
                 badge (image/png, image/svg+xml), or any of these as the `file` part of a \
                 multipart/form-data upload. application/octet-stream is sniffed.",
            ),
            content: MEDIA_TYPES
                .iter()
                .map(|t| MetaMediaType {
                    content_type: t,
                    schema: MetaSchemaRef::Inline(Box::new(
                        if t.starts_with("application/json") || t.contains("+json") {
                            MetaSchema::new("object")
                        } else if *t == "text/plain" || *t == "image/svg+xml" {
                            MetaSchema::new("string")
                        } else {
                            MetaSchema::new_with_format("string", "binary")
                        },
                    )),
                })
                .collect(),
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let media_type = request
            .header(header::CONTENT_TYPE)
            .unwrap_or_default()
            .to_owned();
        let bytes = body.take()?.into_vec().await?;
        Ok(Self { media_type, bytes })
    }
}

/// `POST /api/v1/verify` answers.
#[derive(ApiResponse)]
pub enum VerifyResponse {
    /// The report. Read `outcome`: `verified`, `invalid`, `revoked`, `suspended`, `expired`,
    /// `not_yet_valid` or `indeterminate`. A report is 200 whatever its outcome.
    #[oai(status = 200)]
    Ok(Json<Report>),
}

fn bad_input(err: &InputError) -> ApiError {
    match err {
        InputError::MediaType(_) => ApiError::UnsupportedMediaType {
            detail: err.to_string(),
        },
        _ => ApiError::BadRequest {
            code: "unreadable_credential",
            detail: err.to_string(),
        },
    }
}

/// Rate limit, then the optional scope.
pub async fn admit(req: &Request, state: &AppState) -> Result<(), ApiError> {
    state
        .check_verify_rate_limit(req)
        .await
        .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
    if !state.settings().verify_require_scope {
        return Ok(());
    }
    let token = req
        .header(header::AUTHORIZATION)
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .ok_or(ApiError::InvalidToken)?;
    resolve_token_cached(state.db(), state.token_cache(), token.trim())
        .await?
        .require(Scope::CredentialsVerify)
}

/// Reads a multipart upload: the `file` (or first file) part is the badge; `recipientEmail` and
/// `recipientId` fields add a recipient check. Also the `multipart` fuzz target's entry (through
/// `http::fuzzing`).
pub(crate) async fn multipart(
    media_type: &str,
    bytes: Vec<u8>,
    options: &mut VerifyOptions,
) -> Result<Submitted, ApiError> {
    let bad = |detail: String| ApiError::BadRequest {
        code: "unreadable_credential",
        detail,
    };
    let boundary = multer::parse_boundary(media_type).map_err(|e| bad(e.to_string()))?;
    let body = stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(bytes)) });
    let mut form = multer::Multipart::new(body, boundary);
    let mut badge = None;
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.to_string()))? {
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = field.file_name().is_some();
        let part_type = field
            .content_type()
            .map(ToString::to_string)
            .unwrap_or_default();
        let data = field.bytes().await.map_err(|e| bad(e.to_string()))?;
        match name.as_str() {
            "recipientEmail" => {
                options.recipient_email = Some(String::from_utf8_lossy(&data).trim().to_owned())
            }
            "recipientId" => {
                options.recipient_id = Some(String::from_utf8_lossy(&data).trim().to_owned())
            }
            _ if badge.is_none() && (name == "file" || name == "credential" || is_file) => {
                let parsed = if part_type.is_empty() {
                    input::sniff(&data)
                } else {
                    input::parse(&part_type, &data).or_else(|e| match e {
                        InputError::MediaType(_) => input::sniff(&data),
                        other => Err(other),
                    })
                };
                badge = Some(parsed.map_err(|e| bad_input(&e))?);
            }
            _ => {}
        }
    }
    badge.ok_or_else(|| bad("the upload has no `file` part".into()))
}

/// Verification.
pub struct VerifyApi;

#[OpenApi(tag = "ApiTags::Verify")]
impl VerifyApi {
    /// Verify any badge: a JSON credential or presentation, a VC-JWT (text/plain), or a baked PNG
    /// or SVG (raw, or as the `file` part of multipart/form-data). Answers a report with an overall
    /// `outcome` and one entry per check (parse, contexts, schema, proof, key_controller,
    /// jwt_claims, validity, status, recipient, endorsements) with RFC 9457 problem details.
    /// Data Integrity `eddsa-rdfc-2022`, `eddsa-2022` and `Ed25519Signature2020` proofs (sets and
    /// chains) and VC-JWT EdDSA / ES256 / RS256 are verified; keys resolve from did:key offline,
    /// this service's own issuers from its database, and did:web / https documents through a
    /// hardened client (https only, no private addresses). Public unless the service is
    /// configured to require the `credentials:verify` scope; rate-limited per client IP (429).
    #[oai(path = "/api/v1/verify", method = "post", operation_id = "verifyBadge")]
    #[allow(clippy::too_many_arguments)] // one per documented query parameter
    async fn verify(
        &self,
        req: &Request,
        state: poem::web::Data<&AppState>,
        /// Also check that the credential was awarded to this email address.
        #[oai(name = "recipientEmail")]
        recipient_email: Query<Option<String>>,
        /// Also check that the credential was awarded to this DID or URL.
        #[oai(name = "recipientId")]
        recipient_id: Query<Option<String>>,
        /// For a presentation: the challenge its proof must carry.
        challenge: Query<Option<String>>,
        /// For a presentation: the domain its proof must carry.
        domain: Query<Option<String>>,
        body: Upload,
    ) -> Result<VerifyResponse, ApiError> {
        admit(req, &state).await?;
        let mut options = VerifyOptions {
            recipient_email: recipient_email.0,
            recipient_id: recipient_id.0,
            challenge: challenge.0,
            domain: domain.0,
        };
        let essence = body
            .media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let submitted = if essence == "multipart/form-data" {
            multipart(&body.media_type, body.bytes, &mut options).await?
        } else {
            input::parse(&body.media_type, &body.bytes).map_err(|e| bad_input(&e))?
        };
        // Verification is the expensive part: when the client hangs up, stop it (dropping the
        // future stops its canonicalization) instead of finishing work nobody will read.
        let work = verify::verify(&state, submitted, &options);
        let report = match state.connections().peer(req.remote_addr()) {
            Some(peer) => tokio::select! {
                report = work => report,
                () = peer.gone() => return Err(ApiError::Unavailable),
            },
            None => work.await,
        };
        state.metrics().record_verification(report.outcome);
        Ok(VerifyResponse::Ok(Json(report)))
    }
}
