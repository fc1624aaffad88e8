//! OpenAPI documentation for answers poem-openapi's derives cannot describe on their own: JSON kept
//! as serialized text (cached documents), a 422 that carries the operation's result as well as the
//! problem document, and the `Allow` header of a 405 (the methods the document lists for a path).

use std::{marker::PhantomData, sync::OnceLock};

use poem::{IntoResponse, Response};
use poem_openapi::{
    ApiResponse,
    payload::Payload,
    registry::{MetaMediaType, MetaResponses, MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};

use crate::error::ApiError;

/// A JSON object already serialized (a cached, signed document): sent byte for byte, documented
/// as an object. The operation's `content_type` names the media type.
pub struct JsonText(pub String);

impl Payload for JsonText {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        content_type.starts_with("application/")
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")))
    }
}

impl IntoResponse for JsonText {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

/// [`ApiError`] for an operation whose result `T` is also its 422 answer (`application/json`,
/// e.g. a batch whose every item failed, or a credential that did not verify): the two are
/// documented as one 422 with both media types. The success type must leave 422 out of its own
/// documentation.
pub struct ApiErrorOr422<T>(pub ApiError, PhantomData<fn() -> T>);

impl<T, E: Into<ApiError>> From<E> for ApiErrorOr422<T> {
    fn from(err: E) -> Self {
        Self(err.into(), PhantomData)
    }
}

impl<T> From<ApiErrorOr422<T>> for poem::Error {
    fn from(err: ApiErrorOr422<T>) -> Self {
        err.0.into()
    }
}

impl<T: Type> ApiResponse for ApiErrorOr422<T> {
    fn meta() -> MetaResponses {
        let mut meta = ApiError::meta();
        for resp in &mut meta.responses {
            if resp.status == Some(422) {
                resp.description = "Semantically invalid request (problem document), or the \
                                    operation's result when it could not do what was asked \
                                    (application/json)";
                resp.content.push(MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: T::schema_ref(),
                });
            }
        }
        meta
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
        T::register(registry);
    }
}

/// The methods the OpenAPI document lists for the path `path` matches (the `Allow` of a 405), or
/// `None` for a path it does not list.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    static TABLE: OnceLock<Vec<(Vec<String>, String)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let spec: serde_json::Value =
            serde_json::from_str(&super::openapi_json()).unwrap_or_default();
        let mut rows = Vec::new();
        if let Some(paths) = spec["paths"].as_object() {
            for (template, item) in paths {
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                let segments = template.split('/').map(str::to_owned).collect();
                rows.push((segments, methods.join(", ")));
            }
        }
        rows
    });
    let segments: Vec<&str> = path.split('/').collect();
    // An exact segment beats a `{parameter}` (`/credentials/status` before `/credentials/{id}`).
    table
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .max_by_key(|(template, _)| template.iter().filter(|t| !t.starts_with('{')).count())
        .map(|(_, methods)| methods.as_str())
}
