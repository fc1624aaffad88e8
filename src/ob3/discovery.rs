//! The Service Description Document (`getServiceDescription`): an OpenAPI 3.0 profile of the
//! OB 3.0 API this host serves, with the 1EdTech `x-imssf-*` extensions, the OAuth 2.0
//! authorization-code security scheme (`OAuth2ACG`) pointing at this service's registration,
//! authorization and token endpoints, and the four OB 3.0 scopes. Built once per start from the
//! settings and the public URL; its ETag is the SHA-256 of its bytes.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{config::Settings, oauth::Scope};

/// The document and its strong ETag.
#[derive(Debug, Clone)]
pub struct ServiceDescription {
    pub json: String,
    pub etag: String,
}

/// The OB 3.0 scopes, in the order the specification lists them.
pub const OB3_SCOPES: [Scope; 4] = [
    Scope::ObCredentialReadonly,
    Scope::ObCredentialUpsert,
    Scope::ObProfileReadonly,
    Scope::ObProfileUpdate,
];

fn imsx_schema() -> Value {
    json!({
        "type": "object",
        "required": ["imsx_codeMajor", "imsx_severity"],
        "properties": {
            "imsx_codeMajor": {"type": "string", "enum": ["failure", "processing", "success", "unsupported"]},
            "imsx_severity": {"type": "string", "enum": ["error", "status", "warning"]},
            "imsx_description": {"type": "string"},
            "imsx_CodeMinor": {
                "type": "object",
                "required": ["imsx_codeMinorField"],
                "properties": {"imsx_codeMinorField": {"type": "array", "minItems": 1, "items": {
                    "type": "object",
                    "required": ["imsx_codeMinorFieldName", "imsx_codeMinorFieldValue"],
                    "properties": {
                        "imsx_codeMinorFieldName": {"type": "string"},
                        "imsx_codeMinorFieldValue": {"type": "string", "enum": [
                            "forbidden", "fullsuccess", "internal_server_error", "invalid_data",
                            "invalid_query_parameter", "misdirected_request", "not_acceptable",
                            "not_allowed", "not_found", "not_modified", "server_busy",
                            "unauthorizedrequest", "unknown"
                        ]}
                    }
                }}}
            }
        }
    })
}

fn errors(statuses: &[(&str, &str)]) -> Value {
    let mut map = serde_json::Map::new();
    for (status, description) in statuses {
        map.insert(
            (*status).to_owned(),
            json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Imsx_StatusInfo"}}}}),
        );
    }
    map.insert(
        "default".into(),
        json!({"description": "Any other error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Imsx_StatusInfo"}}}}),
    );
    Value::Object(map)
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Builds the document for a service at `public_url`.
pub fn service_description(settings: &Settings, public_url: &url::Url) -> ServiceDescription {
    let base = public_url.as_str().trim_end_matches('/');
    let docs = format!("{base}/docs");
    let tos = settings
        .tos_url
        .as_ref()
        .map_or_else(|| docs.clone(), |u| u.to_string());
    let privacy = settings
        .privacy_url
        .as_ref()
        .map_or_else(|| docs.clone(), |u| u.to_string());
    let mut info = json!({
        "title": "oxbadge Open Badges 3.0 API",
        "description": "The Open Badges 3.0 API of this host: an earner's credentials and profile.",
        "version": "3.0",
        "termsOfService": tos,
        "x-imssf-privacyPolicyUrl": privacy,
    });
    if let (Some(image), Some(map)) = (&settings.image_url, info.as_object_mut()) {
        map.insert("x-imssf-image".into(), json!(image.to_string()));
    }
    let scopes: serde_json::Map<String, Value> = OB3_SCOPES
        .iter()
        .map(|s| (s.as_str().to_owned(), json!(s.description())))
        .collect();
    let security = |scope: Scope| json!([{"OAuth2ACG": [scope.as_str()]}]);
    let read_errors = [
        ("400", "Invalid query parameter (invalid_query_parameter)"),
        (
            "401",
            "Missing, invalid, expired or revoked token (unauthorizedrequest)",
        ),
        ("403", "The token lacks the scope (forbidden)"),
        ("404", "Not found (not_found)"),
        ("405", "Method not allowed"),
        ("429", "Too many requests (server_busy)"),
        ("500", "Internal error (internal_server_error)"),
    ];
    let write_errors = [
        ("400", "Malformed request"),
        (
            "401",
            "Missing, invalid, expired or revoked token (unauthorizedrequest)",
        ),
        ("403", "The token lacks the scope (forbidden)"),
        ("404", "Not found (not_found)"),
        ("405", "Method not allowed"),
        ("415", "Unsupported media type"),
        ("422", "Invalid or unverifiable data (invalid_data)"),
        ("429", "Too many requests (server_busy)"),
        ("500", "Internal error (internal_server_error)"),
    ];
    let credential_schema = json!({"type": "object", "description": "An OpenBadgeCredential (AchievementCredential) with an embedded proof", "additionalProperties": true});
    let paths = json!({
        "/credentials": {
            "get": {
                "operationId": "getCredentials",
                "summary": "The credentials of the authenticated earner",
                "tags": ["OpenBadgeCredentials"],
                "parameters": [
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "format": "int32", "minimum": 1}},
                    {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "format": "int32", "minimum": 0}},
                    {"name": "since", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}}
                ],
                "security": security(Scope::ObCredentialReadonly),
                "responses": with(json!({"200": {
                    "description": "A page of credentials",
                    "headers": {
                        "X-Total-Count": {"schema": {"type": "integer"}},
                        "Link": {"schema": {"type": "string"}}
                    },
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GetOpenBadgeCredentialsResponse"}}}
                }}), errors(&read_errors))
            },
            "post": {
                "operationId": "upsertCredential",
                "summary": "Add a credential to the earner's collection, or replace an older copy",
                "tags": ["OpenBadgeCredentials"],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": credential_schema},
                    "application/ld+json": {"schema": credential_schema},
                    "application/vc+ld+json": {"schema": credential_schema},
                    "text/plain": {"schema": {"type": "string", "description": "A VC-JWT (compact JWS)"}}
                }},
                "security": security(Scope::ObCredentialUpsert),
                "responses": with(json!({
                    "200": {"description": "Replaced (or the stored newer copy)", "content": {
                        "application/json": {"schema": credential_schema},
                        "text/plain": {"schema": {"type": "string"}}
                    }},
                    "201": {"description": "Created", "content": {
                        "application/json": {"schema": credential_schema},
                        "text/plain": {"schema": {"type": "string"}}
                    }}
                }), errors(&write_errors))
            }
        },
        "/profile": {
            "get": {
                "operationId": "getProfile",
                "summary": "The profile of the authenticated earner",
                "tags": ["Profile"],
                "security": security(Scope::ObProfileReadonly),
                "responses": with(json!({"200": {"description": "The Profile", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Profile"}}}}}), errors(&read_errors))
            },
            "put": {
                "operationId": "putProfile",
                "summary": "Replace the profile of the authenticated earner",
                "tags": ["Profile"],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Profile"}}}},
                "security": security(Scope::ObProfileUpdate),
                "responses": with(json!({"200": {"description": "The Profile as stored", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Profile"}}}}}), errors(&write_errors))
            }
        },
        "/discovery": {
            "get": {
                "operationId": "getServiceDescription",
                "summary": "This document",
                "tags": ["Discovery"],
                "security": [],
                "responses": {
                    "200": {"description": "The Service Description Document", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "304": {"description": "Not modified (If-None-Match)"},
                    "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Imsx_StatusInfo"}}}}
                }
            }
        }
    });
    let doc = json!({
        "openapi": "3.0.1",
        "info": info,
        "servers": [{"url": format!("{base}/ims/ob/v3p0"), "description": "This host"}],
        "tags": [
            {"name": "OpenBadgeCredentials", "description": "Exchange OpenBadgeCredentials"},
            {"name": "Profile", "description": "The earner's profile"},
            {"name": "Discovery", "description": "This service description"}
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "OAuth2ACG": {
                    "type": "oauth2",
                    "description": "OAuth 2.0 authorization code grant with PKCE (S256)",
                    "x-imssf-registrationUrl": format!("{base}/oauth/register"),
                    "flows": {"authorizationCode": {
                        "authorizationUrl": format!("{base}/oauth/authorize"),
                        "tokenUrl": format!("{base}/oauth/token"),
                        "refreshUrl": format!("{base}/oauth/token"),
                        "scopes": scopes
                    }}
                }
            },
            "schemas": {
                "GetOpenBadgeCredentialsResponse": {
                    "type": "object",
                    "properties": {
                        "credential": {"type": "array", "items": credential_schema},
                        "compactJwsString": {"type": "array", "items": {"type": "string", "pattern": "^[^.]+\\.[^.]+\\.[^.]+$"}}
                    }
                },
                "Profile": {
                    "type": "object",
                    "required": ["id", "type"],
                    "properties": {
                        "id": {"type": "string", "format": "uri"},
                        "type": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                        "name": {"type": "string"},
                        "email": {"type": "string"}
                    },
                    "additionalProperties": true
                },
                "Imsx_StatusInfo": imsx_schema()
            }
        }
    });
    let json = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    let etag = format!("\"{}\"", hex::encode(Sha256::digest(json.as_bytes())));
    ServiceDescription { json, etag }
}
