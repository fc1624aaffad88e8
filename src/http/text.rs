//! Control characters at the edge: U+0000 and the other C0 controls (and DEL) are refused in
//! request paths, query values, form values and JSON strings before any handler runs, on every
//! engine alike. PostgreSQL cannot store U+0000 in `text` or `jsonb` at all (a 500 before this
//! check), SQLite stores it and cuts strings at it in places; no identifier, name, scope, reason or
//! credential field of ours has a use for them. Tab, line feed and carriage return stay allowed in
//! JSON strings (descriptions and narratives are multi-line). Also the strict JSON string type
//! request members use where poem-openapi would turn `false` into `"false"`.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use poem_openapi::{
    registry::MetaSchemaRef,
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use crate::error::ApiError;

/// Stable problem code of every refusal here.
pub const CODE: &str = "invalid_characters";

/// A C0 control character or DEL.
fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

/// Refuses a request path or query whose percent-decoded form has a control character (400).
pub fn check_target(path: &str, query: Option<&str>) -> Result<(), ApiError> {
    if percent_decode_str(path).any(is_control) {
        return Err(ApiError::bad_request(
            CODE,
            "the request path contains a control character (U+0000 to U+001F or U+007F)",
        ));
    }
    if let Some(query) = query
        && let Some((name, _)) = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, v)| k.bytes().any(is_control) || v.bytes().any(is_control))
    {
        return Err(ApiError::bad_request(
            CODE,
            format!("the query parameter `{name}` contains a control character"),
        ));
    }
    Ok(())
}

/// Refuses a form-encoded body with a control character in any name or value (400).
pub fn check_form(body: &[u8]) -> Result<(), ApiError> {
    match url::form_urlencoded::parse(body)
        .find(|(k, v)| k.bytes().any(is_control) || v.bytes().any(is_control))
    {
        Some((name, _)) => Err(ApiError::bad_request(
            CODE,
            format!("the form field `{name}` contains a control character"),
        )),
        None => Ok(()),
    }
}

/// Refuses a JSON body whose strings hold a control character other than tab, line feed and
/// carriage return (422). Unescaped controls are invalid JSON anyway and left to the parser; this
/// finds the escaped ones (`\u0000`, `\b`, `\f`, ...). Backslashes occur only inside strings.
pub fn check_json(body: &[u8]) -> Result<(), ApiError> {
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        match body.get(i + 1) {
            Some(b'u') => {
                let code = body
                    .get(i + 2..i + 6)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok());
                if let Some(code) = code
                    && (code < 0x20 || code == 0x7f)
                    && !matches!(code, 0x09 | 0x0a | 0x0d)
                {
                    return Err(refusal(code));
                }
                i += 6;
            }
            Some(b'b') => return Err(refusal(0x08)),
            Some(b'f') => return Err(refusal(0x0c)),
            _ => i += 2,
        }
    }
    Ok(())
}

fn refusal(code: u16) -> ApiError {
    ApiError::Unprocessable {
        code: CODE,
        detail: format!(
            "a JSON string contains the control character U+{code:04X}; text fields may not \
             contain U+0000 to U+001F (except tab, line feed and carriage return) or U+007F"
        ),
    }
}

/// A JSON string member that keeps other JSON types apart instead of turning them into text
/// (poem-openapi's `String` reads `false` as `"false"` and `3` as `"3"`). Its schema is `string`;
/// [`JsonText::into_string`] refuses a non-string with a 422 naming the member. String validators
/// (`min_length`, ...) apply to strings as usual.
#[derive(Debug, Clone)]
pub struct JsonText(Result<String, &'static str>);

impl JsonText {
    /// The string, or 422 `invalid_field` naming `member` and the type that was sent instead.
    pub fn into_string(self, member: &str) -> Result<String, ApiError> {
        self.0.map_err(|found| ApiError::Unprocessable {
            code: "invalid_field",
            detail: format!("`{member}` must be a string, not {found}"),
        })
    }
}

impl From<String> for JsonText {
    fn from(text: String) -> Self {
        Self(Ok(text))
    }
}

impl Type for JsonText {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&String> {
        self.0.as_ref().ok()
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for JsonText {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self(Ok(text))),
            None | Some(Value::Null) => Err(ParseError::expected_input()),
            Some(Value::Bool(_)) => Ok(Self(Err("a boolean"))),
            Some(Value::Number(_)) => Ok(Self(Err("a number"))),
            Some(Value::Array(_)) => Ok(Self(Err("an array"))),
            Some(Value::Object(_)) => Ok(Self(Err("an object"))),
        }
    }
}

impl ToJSON for JsonText {
    fn to_json(&self) -> Option<Value> {
        self.0.as_ref().ok().map(|text| Value::String(text.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_of_controls_are_found_and_escaped_backslashes_are_not() {
        assert!(check_json(br#"{"a":"x\u0000y"}"#).is_err());
        assert!(check_json(br#"{"a":"x\u001Fy"}"#).is_err());
        assert!(check_json(br#"{"a":"\b"}"#).is_err());
        assert!(check_json(br#"{"a":"\u007f"}"#).is_err());
        assert!(check_json(br#"{"a":"line\nnext\ttab\r\u000A"}"#).is_ok());
        assert!(check_json(br#"{"a":"\\u0000 is text"}"#).is_ok());
        assert!(check_json(br#"{"a":"\\\\","b":"\u00e9\u0020"}"#).is_ok());
    }

    #[test]
    fn paths_queries_and_forms() {
        assert!(check_target("/issuers/a%00b", None).is_err());
        assert!(check_target("/issuers/a%0Ab", None).is_err());
        assert!(check_target("/issuers/a%20b", None).is_ok());
        assert!(check_target("/x", Some("a=1&b=%01")).is_err());
        assert!(check_target("/x", Some("a=1&b=%C3%A9")).is_ok());
        assert!(check_form(b"client_id=a%00b&x=1").is_err());
        assert!(check_form(b"client_id=ab&scope=a+b").is_ok());
    }
}
