//! What a verifier may be handed: a JSON credential or presentation, a compact JWS, or a baked PNG
//! or SVG. The bytes become one typed [`Submitted`] value here, at the edge.

use serde_json::Value;

use crate::issue::bake::{self, Embedded};

/// Where the submission came from (reported as `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A JSON document.
    Json,
    /// A compact JWS.
    Jwt,
    /// Extracted from a baked PNG.
    Png,
    /// Extracted from a baked SVG.
    Svg,
    /// Embedded in a presentation.
    Presentation,
    /// An endorsement inside another credential.
    Endorsement,
}

impl Source {
    /// Whether the credential had to be decoded (from a JWT or an image): reports then echo it,
    /// since the caller does not have it as JSON.
    pub fn decoded(self) -> bool {
        matches!(self, Self::Jwt | Self::Png | Self::Svg)
    }

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Jwt => "jwt",
            Self::Png => "png",
            Self::Svg => "svg",
            Self::Presentation => "presentation",
            Self::Endorsement => "endorsement",
        }
    }
}

/// A parsed submission.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// A JSON object (credential or presentation).
    Json(Value, Source),
    /// A compact JWS (VC-JWT).
    Jwt(String, Source),
}

/// Why a submission is unreadable (400 at the edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The body is empty.
    #[error("the request body is empty")]
    Empty,
    /// Not JSON.
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// A JSON string was sent where a credential object belongs.
    #[error("a credential must be a JSON object (a JWT goes as text/plain)")]
    NotAnObject,
    /// Not a compact JWS.
    #[error("the body is not a compact JWS (three base64url parts)")]
    NotJws,
    /// The image has no (or more than one) embedded credential, or is damaged.
    #[error(transparent)]
    Image(#[from] bake::BakeError),
    /// The media type is not one we read.
    #[error("unsupported media type {0}")]
    MediaType(String),
}

/// Whether `text` looks like a compact JWS.
pub fn is_compact_jws(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn from_embedded(embedded: Embedded, source: Source) -> Result<Submitted, InputError> {
    match embedded {
        Embedded::Json(text) => json(text.as_bytes(), source),
        Embedded::Jws(text) => jws(&text, source),
    }
}

fn json(bytes: &[u8], source: Source) -> Result<Submitted, InputError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| InputError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(InputError::NotAnObject);
    }
    Ok(Submitted::Json(value, source))
}

fn jws(text: &str, source: Source) -> Result<Submitted, InputError> {
    let text = text.trim();
    if is_compact_jws(text) {
        Ok(Submitted::Jwt(text.to_owned(), source))
    } else {
        Err(InputError::NotJws)
    }
}

/// Reads `body` by its media type; `application/octet-stream` or a missing type is sniffed
/// (PNG signature, `<` for SVG, `{` for JSON, else a JWS).
pub fn parse(media_type: &str, body: &[u8]) -> Result<Submitted, InputError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InputError::Empty);
    }
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json"
        | "application/ld+json"
        | "application/vc+ld+json"
        | "application/vp+ld+json"
        | "application/vc"
        | "application/vp" => json(body, Source::Json),
        "text/plain" | "application/jwt" | "application/vc+jwt" | "application/vp+jwt" => {
            let text = std::str::from_utf8(body).map_err(|_| InputError::NotJws)?;
            jws(text, Source::Jwt)
        }
        "image/png" => from_embedded(bake::extract_png(body)?, Source::Png),
        "image/svg+xml" => {
            let text =
                std::str::from_utf8(body).map_err(|_| bake::BakeError::Svg("not UTF-8".into()))?;
            from_embedded(bake::extract_svg(text)?, Source::Svg)
        }
        "" | "application/octet-stream" => sniff(body),
        other => Err(InputError::MediaType(other.to_owned())),
    }
}

/// Guesses the kind of an untyped upload.
pub fn sniff(body: &[u8]) -> Result<Submitted, InputError> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if body.starts_with(PNG) {
        return from_embedded(bake::extract_png(body)?, Source::Png);
    }
    let text = std::str::from_utf8(body).map_err(|_| InputError::MediaType("binary".into()))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('<') {
        from_embedded(bake::extract_svg(text)?, Source::Svg)
    } else if trimmed.starts_with('{') {
        json(body, Source::Json)
    } else {
        jws(text, Source::Jwt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_sniffing() {
        assert!(matches!(
            parse("application/json; charset=utf-8", b"{\"a\":1}"),
            Ok(Submitted::Json(_, Source::Json))
        ));
        assert_eq!(
            parse("application/json", b"\"eyJ.x.y\"").unwrap_err(),
            InputError::NotAnObject
        );
        assert!(matches!(
            parse("text/plain", b"eyJhbGciOiJFZERTQSJ9.eyJhIjoxfQ.c2ln\n"),
            Ok(Submitted::Jwt(_, Source::Jwt))
        ));
        assert_eq!(
            parse("text/plain", b"hello").unwrap_err(),
            InputError::NotJws
        );
        assert_eq!(parse("text/plain", b"  ").unwrap_err(), InputError::Empty);
        assert!(matches!(
            parse("image/gif", b"GIF89a"),
            Err(InputError::MediaType(_))
        ));
        assert!(matches!(
            sniff(b"{\"a\":1}"),
            Ok(Submitted::Json(_, Source::Json))
        ));
        assert!(matches!(
            sniff(b"\x89PNG\r\n\x1a\nxx"),
            Err(InputError::Image(_))
        ));
    }
}
