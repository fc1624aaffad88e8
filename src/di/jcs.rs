//! The JSON Canonicalization Scheme (JCS, RFC 8785): the byte-exact JSON form `eddsa-jcs-2022`
//! hashes. Object members sorted by their names' UTF-16 code units (§3.2.3), strings with the
//! minimal JSON escapes (§3.2.2.2), numbers as ECMAScript's `Number.prototype.toString` prints
//! the IEEE 754 double (§3.2.2.3), no whitespace.
//!
//! Written here rather than taken from `serde_jcs` 0.1, which sorts names by UTF-8 bytes: that
//! differs from UTF-16 order as soon as names mix characters above U+FFFF with ones in
//! U+E000..U+FFFF.

use serde_json::Value;

/// A value JCS cannot represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JcsError {
    /// An integer outside the range an IEEE 754 double holds exactly (RFC 8785 §3.2.2.3 requires
    /// I-JSON numbers; a larger one would change value when canonicalized).
    #[error("the number {0} cannot be represented exactly as an IEEE 754 double (RFC 8785)")]
    InexactNumber(String),
}

/// Largest integer a double holds exactly (2^53 - 1), as I-JSON (RFC 7493 §2.2) requires.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The JCS form of `value`.
pub fn canonicalize(value: &Value) -> Result<String, JcsError> {
    let mut out = String::new();
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut String) -> Result<(), JcsError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(Vec<u16>, &String, &Value)> = map
                .iter()
                .map(|(k, v)| (k.encode_utf16().collect(), k, v))
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (_, name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write(member, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(n: &serde_json::Number, out: &mut String) -> Result<(), JcsError> {
    if let Some(i) = n.as_u64() {
        if i > MAX_SAFE_INTEGER {
            return Err(JcsError::InexactNumber(n.to_string()));
        }
        out.push_str(&i.to_string());
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(JcsError::InexactNumber(n.to_string()));
        }
        out.push_str(&i.to_string());
    } else {
        // serde_json (without arbitrary precision) only holds finite doubles.
        let f = n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| JcsError::InexactNumber(n.to_string()))?;
        if f == 0.0 {
            // ECMAScript prints -0 as "0".
            out.push('0');
        } else {
            out.push_str(ryu_js::Buffer::new().format_finite(f));
        }
    }
    Ok(())
}

/// RFC 8785 §3.2.2.2: `"` and `\` escaped, U+0000..U+001F as `\b \t \n \f \r` or `\u00xx` (lower
/// case hex), everything else (including `/` and non-ASCII) as is. Lone surrogates cannot occur
/// in a Rust string.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // RFC 8785 §3.2.2: the "numbers", "string" and "literals" example.
        let input: Value = serde_json::from_str(
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
                "literals": [null, true, false]}"#,
        )
        .unwrap();
        assert_eq!(
            canonicalize(&input).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn names_sort_by_utf16_code_units() {
        // RFC 8785 §3.2.3's sorting example.
        let input: Value = serde_json::from_str(
            r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
                "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
                "\u00f6": "Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let names: Vec<String> = {
            let text = canonicalize(&input).unwrap();
            let back: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
            assert_eq!(back.len(), 7);
            text.split("\":\"")
                .skip(1)
                .map(|p| p.split('"').next().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(
            names,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh"
            ]
        );
    }

    #[test]
    fn numbers_follow_ecmascript() {
        let cases = [
            (json!(0.0), "0"),
            (json!(-0.0), "0"),
            (json!(1.0), "1"),
            (json!(-1.5), "-1.5"),
            (json!(1e21), "1e+21"),
            (json!(1e20), "100000000000000000000"),
            (json!(5e-324), "5e-324"),
            (json!(9_007_199_254_740_991_u64), "9007199254740991"),
            (json!(-9_007_199_254_740_991_i64), "-9007199254740991"),
        ];
        for (value, expected) in cases {
            assert_eq!(canonicalize(&value).unwrap(), expected, "{value}");
        }
        assert!(canonicalize(&json!(9_007_199_254_740_992_u64)).is_err());
    }
}
