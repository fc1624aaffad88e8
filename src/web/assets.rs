//! Static assets (one stylesheet, no scripts) under `/static/<content hash>/…`, served as
//! immutable so browsers keep them until the content changes.

use std::sync::LazyLock;

use poem::{
    Response, handler,
    http::{StatusCode, header},
    web::Path,
};
use sha2::{Digest, Sha256};

const STYLE: &str = include_str!("assets/style.css");

static STYLE_HASH: LazyLock<String> =
    LazyLock::new(|| hex::encode(&Sha256::digest(STYLE.as_bytes())[..8]));
static STYLE_PATH: LazyLock<String> =
    LazyLock::new(|| format!("/static/{}/style.css", STYLE_HASH.as_str()));

/// The path of the stylesheet, with its content hash.
pub fn stylesheet_path() -> &'static str {
    STYLE_PATH.as_str()
}

/// `GET /static/{hash}/style.css`.
#[handler]
pub fn get(Path((hash, name)): Path<(String, String)>) -> Response {
    if hash != *STYLE_HASH || name != "style.css" {
        return Response::builder().status(StatusCode::NOT_FOUND).finish();
    }
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .body(STYLE)
}
