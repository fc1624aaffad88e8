//! Badge baking (OB 3.0 §5.3): embedding a credential in a PNG (`iTXt` chunk, keyword
//! `openbadgecredential`, uncompressed, exactly one) or an SVG (`openbadges:credential` right after
//! the opening `<svg>` tag), and extracting it again.

use std::io::{Read, Write};

use flate2::{Compression, read::ZlibDecoder, write::ZlibEncoder};

/// The iTXt keyword.
pub const PNG_KEYWORD: &str = "openbadgecredential";
/// The SVG namespace of the credential element.
pub const SVG_NAMESPACE: &str = "https://purl.imsglobal.org/ob/v3p0";
const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// Largest credential text accepted from a baked file.
pub const MAX_CREDENTIAL_BYTES: usize = 4 * 1024 * 1024;

/// Baking and extraction failures (400 at the edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BakeError {
    /// Not a PNG, or a damaged one.
    #[error("not a valid PNG: {0}")]
    Png(String),
    /// Not an SVG document.
    #[error("not a valid SVG: {0}")]
    Svg(String),
    /// No embedded credential.
    #[error("the image carries no Open Badges credential")]
    NoCredential,
    /// More than one embedded credential (the spec allows one).
    #[error("the image carries more than one Open Badges credential")]
    Multiple,
}

/// What is embedded: a JSON credential or a compact JWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Embedded {
    /// A JSON credential (text).
    Json(String),
    /// A VC-JWT.
    Jws(String),
}

impl Embedded {
    fn text(&self) -> &str {
        match self {
            Embedded::Json(t) | Embedded::Jws(t) => t,
        }
    }

    /// Classifies extracted text.
    pub fn from_text(text: String) -> Self {
        if text.trim_start().starts_with('{') {
            Embedded::Json(text)
        } else {
            Embedded::Jws(text.trim().to_owned())
        }
    }
}

struct Chunk<'a> {
    kind: [u8; 4],
    data: &'a [u8],
}

fn chunks(png: &[u8]) -> Result<Vec<Chunk<'_>>, BakeError> {
    if png.len() < 8 || &png[..8] != PNG_SIGNATURE {
        return Err(BakeError::Png("missing PNG signature".into()));
    }
    let mut out = Vec::new();
    let mut pos = 8;
    loop {
        let header = png
            .get(pos..pos + 8)
            .ok_or_else(|| BakeError::Png("truncated chunk header".into()))?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = [header[4], header[5], header[6], header[7]];
        let data = png
            .get(pos + 8..pos + 8 + len)
            .ok_or_else(|| BakeError::Png("truncated chunk data".into()))?;
        let crc = png
            .get(pos + 8 + len..pos + 12 + len)
            .ok_or_else(|| BakeError::Png("truncated chunk CRC".into()))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&kind);
        hasher.update(data);
        if hasher.finalize().to_be_bytes() != crc {
            return Err(BakeError::Png(format!(
                "bad CRC in {} chunk",
                String::from_utf8_lossy(&kind)
            )));
        }
        out.push(Chunk { kind, data });
        pos += 12 + len;
        if &kind == b"IEND" {
            return Ok(out);
        }
    }
}

fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(kind);
    hasher.update(data);
    out.extend_from_slice(&hasher.finalize().to_be_bytes());
}

/// Parses an iTXt chunk; `Some(text)` when its keyword is `openbadgecredential`.
fn itxt_credential(data: &[u8]) -> Result<Option<String>, BakeError> {
    let nul = data
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| BakeError::Png("malformed iTXt".into()))?;
    if &data[..nul] != PNG_KEYWORD.as_bytes() {
        return Ok(None);
    }
    let rest = &data[nul + 1..];
    let (flag, method) = (
        *rest
            .first()
            .ok_or_else(|| BakeError::Png("malformed iTXt".into()))?,
        *rest
            .get(1)
            .ok_or_else(|| BakeError::Png("malformed iTXt".into()))?,
    );
    let rest = &rest[2..];
    let lang_end = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| BakeError::Png("malformed iTXt".into()))?;
    let rest = &rest[lang_end + 1..];
    let key_end = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| BakeError::Png("malformed iTXt".into()))?;
    let text = &rest[key_end + 1..];
    let bytes = if flag == 1 {
        if method != 0 {
            return Err(BakeError::Png("unknown iTXt compression".into()));
        }
        let mut out = Vec::new();
        ZlibDecoder::new(text)
            .take(MAX_CREDENTIAL_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| BakeError::Png(format!("iTXt: {e}")))?;
        out
    } else {
        text.to_vec()
    };
    if bytes.len() > MAX_CREDENTIAL_BYTES {
        return Err(BakeError::Png("embedded credential is too large".into()));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| BakeError::Png("iTXt text is not UTF-8".into()))
}

/// Embeds `credential` into `png`, replacing any credential already there.
pub fn bake_png(png: &[u8], credential: &Embedded) -> Result<Vec<u8>, BakeError> {
    let parsed = chunks(png)?;
    let mut out = Vec::with_capacity(png.len() + credential.text().len() + 64);
    out.extend_from_slice(PNG_SIGNATURE);
    for chunk in &parsed {
        if &chunk.kind == b"iTXt" && itxt_credential(chunk.data)?.is_some() {
            continue;
        }
        if &chunk.kind == b"IEND" {
            let mut data = Vec::with_capacity(credential.text().len() + 32);
            data.extend_from_slice(PNG_KEYWORD.as_bytes());
            data.extend_from_slice(&[0, 0, 0, 0, 0]); // NUL, uncompressed, method 0, no lang, no key
            data.extend_from_slice(credential.text().as_bytes());
            write_chunk(&mut out, b"iTXt", &data);
        }
        write_chunk(&mut out, &chunk.kind, chunk.data);
    }
    Ok(out)
}

/// Extracts the credential from a baked PNG.
pub fn extract_png(png: &[u8]) -> Result<Embedded, BakeError> {
    let mut found = None;
    for chunk in chunks(png)? {
        if &chunk.kind == b"iTXt"
            && let Some(text) = itxt_credential(chunk.data)?
        {
            if found.is_some() {
                return Err(BakeError::Multiple);
            }
            found = Some(text);
        }
    }
    found
        .map(Embedded::from_text)
        .ok_or(BakeError::NoCredential)
}

fn svg_open_tag(svg: &str) -> Result<(usize, usize), BakeError> {
    let start = svg
        .find("<svg")
        .ok_or_else(|| BakeError::Svg("no <svg> element".into()))?;
    let end = svg[start..]
        .find('>')
        .map(|e| start + e)
        .ok_or_else(|| BakeError::Svg("unterminated <svg> tag".into()))?;
    Ok((start, end))
}

fn xml_attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Embeds `credential` into `svg`: the namespace on `<svg>`, then the credential element.
pub fn bake_svg(svg: &str, credential: &Embedded) -> Result<String, BakeError> {
    if svg.contains("<openbadges:credential") {
        return Err(BakeError::Multiple);
    }
    let (start, end) = svg_open_tag(svg)?;
    let self_closing = svg[..end].ends_with('/');
    let mut open = svg[start..end].trim_end_matches('/').to_owned();
    if !open.contains("xmlns:openbadges") {
        open.push_str(&format!(" xmlns:openbadges=\"{SVG_NAMESPACE}\""));
    }
    let element = match credential {
        Embedded::Json(json) => format!(
            "<openbadges:credential><![CDATA[{}]]></openbadges:credential>",
            json.replace("]]>", "]]]]><![CDATA[>")
        ),
        Embedded::Jws(jws) => format!(
            "<openbadges:credential verify=\"{}\"/>",
            xml_attr_escape(jws)
        ),
    };
    let mut out = String::with_capacity(svg.len() + element.len() + 64);
    out.push_str(&svg[..start]);
    out.push_str(&open);
    out.push('>');
    out.push_str(&element);
    if self_closing {
        out.push_str("</svg>");
        out.push_str(&svg[end + 1..]);
    } else {
        out.push_str(&svg[end + 1..]);
    }
    Ok(out)
}

/// Extracts the credential from a baked SVG.
pub fn extract_svg(svg: &str) -> Result<Embedded, BakeError> {
    svg_open_tag(svg)?;
    let mut matches = svg.match_indices("<openbadges:credential");
    let (at, _) = matches.next().ok_or(BakeError::NoCredential)?;
    if matches.next().is_some() {
        return Err(BakeError::Multiple);
    }
    let rest = &svg[at..];
    let tag_end = rest
        .find('>')
        .ok_or_else(|| BakeError::Svg("unterminated credential element".into()))?;
    let tag = &rest[..tag_end];
    if let Some(v) = tag.find("verify=") {
        let quoted = &tag[v + 7..];
        let quote = quoted
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| BakeError::Svg("verify attribute is not quoted".into()))?;
        let value = &quoted[1..];
        let close = value
            .find(quote)
            .ok_or_else(|| BakeError::Svg("unterminated verify attribute".into()))?;
        let jws = value[..close]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        return Ok(Embedded::Jws(jws));
    }
    // The body starts after the opening tag; the closing tag is searched for only there (found
    // by fuzzing: a closing tag inside the opening one made the slice run backwards).
    let after_tag = &rest[tag_end + 1..];
    let body_end = after_tag
        .find("</openbadges:credential>")
        .ok_or_else(|| BakeError::Svg("unterminated credential element".into()))?;
    let body = &after_tag[..body_end];
    let mut text = String::new();
    let mut remaining = body;
    while let Some(start) = remaining.find("<![CDATA[") {
        let after = &remaining[start + 9..];
        let end = after
            .find("]]>")
            .ok_or_else(|| BakeError::Svg("unterminated CDATA".into()))?;
        text.push_str(&after[..end]);
        remaining = &after[end + 3..];
    }
    if text.is_empty() {
        text = body.trim().to_owned();
    }
    if text.len() > MAX_CREDENTIAL_BYTES {
        return Err(BakeError::Svg("embedded credential is too large".into()));
    }
    Ok(Embedded::from_text(text))
}

/// A generated 256×256 PNG badge: a coloured disc (colour from `seed`) on transparency.
pub fn default_png(seed: &str) -> Vec<u8> {
    use sha2::Digest;
    let h = sha2::Sha256::digest(seed.as_bytes());
    let (r, g, b) = (64 + h[0] / 2, 64 + h[1] / 2, 64 + h[2] / 2);
    const SIZE: u32 = 256;
    let mut raw = Vec::with_capacity((SIZE * (SIZE * 4 + 1)) as usize);
    let c = f64::from(SIZE) / 2.0;
    for y in 0..SIZE {
        raw.push(0); // filter: none
        for x in 0..SIZE {
            let d = ((f64::from(x) + 0.5 - c).powi(2) + (f64::from(y) + 0.5 - c).powi(2)).sqrt();
            let (pr, pg, pb, pa) = if d < c - 24.0 {
                (r, g, b, 255)
            } else if d < c - 8.0 {
                (255, 255, 255, 255)
            } else if d < c - 2.0 {
                (r / 2, g / 2, b / 2, 255)
            } else {
                (0, 0, 0, 0)
            };
            raw.extend_from_slice(&[pr, pg, pb, pa]);
        }
    }
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    let _ = z.write_all(&raw);
    let idat = z.finish().unwrap_or_default();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&SIZE.to_be_bytes());
    ihdr.extend_from_slice(&SIZE.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    let mut out = PNG_SIGNATURE.to_vec();
    write_chunk(&mut out, b"IHDR", &ihdr);
    write_chunk(&mut out, b"IDAT", &idat);
    write_chunk(&mut out, b"IEND", &[]);
    out
}

fn xml_text_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A generated SVG badge showing the achievement name.
pub fn default_svg(seed: &str, name: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(seed.as_bytes());
    let colour = format!(
        "#{:02x}{:02x}{:02x}",
        64 + h[0] / 2,
        64 + h[1] / 2,
        64 + h[2] / 2
    );
    let label: String = name.chars().take(28).collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"256\" height=\"256\" viewBox=\"0 0 256 256\">\
<circle cx=\"128\" cy=\"128\" r=\"120\" fill=\"{colour}\" stroke=\"#ffffff\" stroke-width=\"12\"/>\
<text x=\"128\" y=\"136\" font-family=\"sans-serif\" font-size=\"18\" text-anchor=\"middle\" fill=\"#ffffff\">{}</text></svg>",
        xml_text_escape(&label)
    )
}

/// Decodes a `data:image/png;base64,…` or `data:image/svg+xml,…` URI.
pub fn decode_data_uri(uri: &str) -> Option<(String, Vec<u8>)> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.split(';').next()?.to_owned();
    let bytes = if meta.ends_with(";base64") {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?
    } else {
        percent_encoding::percent_decode_str(data).collect()
    };
    Some((mime, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closing_tag_inside_the_opening_tag_is_an_error_not_a_panic() {
        let svg = "<svg><openbadges:credential x=\"</openbadges:credential>\">";
        assert!(extract_svg(svg).is_err());
        let svg = "<svg><openbadges:credential </openbadges:credential>";
        assert!(extract_svg(svg).is_err());
    }

    #[test]
    fn png_round_trip_replaces_an_earlier_credential() {
        let png = default_png("seed");
        assert!(chunks(&png).is_ok());
        let json = Embedded::Json("{\"id\":\"urn:uuid:1\",\"name\":\"Ünïcode ]]>\"}".into());
        let baked = bake_png(&png, &json).unwrap();
        assert_eq!(extract_png(&baked).unwrap(), json);
        let jws = Embedded::Jws("eyJhbGciOiJFZERTQSJ9.e30.sig".into());
        let rebaked = bake_png(&baked, &jws).unwrap();
        assert_eq!(
            extract_png(&rebaked).unwrap(),
            jws,
            "exactly one credential"
        );
        assert_eq!(extract_png(&png), Err(BakeError::NoCredential));
        let mut broken = baked.clone();
        let last = broken.len() - 20;
        broken[last] ^= 0xff;
        assert!(extract_png(&broken).is_err());
        assert!(extract_png(b"GIF89a").is_err());
    }

    #[test]
    fn compressed_itxt_is_read() {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(b"{\"a\":1}").unwrap();
        let mut data = b"openbadgecredential\0\x01\x00\0\0".to_vec();
        data.extend(z.finish().unwrap());
        let png = default_png("x");
        let mut out = PNG_SIGNATURE.to_vec();
        for c in chunks(&png).unwrap() {
            if &c.kind == b"IEND" {
                write_chunk(&mut out, b"iTXt", &data);
            }
            write_chunk(&mut out, &c.kind, c.data);
        }
        assert_eq!(
            extract_png(&out).unwrap(),
            Embedded::Json("{\"a\":1}".into())
        );
    }

    #[test]
    fn svg_round_trip_json_and_jws() {
        let svg = default_svg("seed", "Teamwork & <Trust>");
        let json = Embedded::Json("{\"x\":\"a]]>b\"}".into());
        let baked = bake_svg(&svg, &json).unwrap();
        assert!(baked.contains("xmlns:openbadges=\"https://purl.imsglobal.org/ob/v3p0\""));
        let open_end = baked.find('>').unwrap();
        assert!(baked[open_end + 1..].starts_with("<openbadges:credential>"));
        assert_eq!(extract_svg(&baked).unwrap(), json);
        let jws = Embedded::Jws("a.b.c".into());
        let baked = bake_svg(&svg, &jws).unwrap();
        assert_eq!(extract_svg(&baked).unwrap(), jws);
        assert_eq!(bake_svg(&baked, &jws), Err(BakeError::Multiple));
        assert_eq!(extract_svg(&svg), Err(BakeError::NoCredential));
        let self_closing = "<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        let baked = bake_svg(self_closing, &json).unwrap();
        assert!(baked.ends_with("</svg>"));
        assert_eq!(extract_svg(&baked).unwrap(), json);
    }

    #[test]
    fn data_uris() {
        let (mime, bytes) = decode_data_uri("data:image/svg+xml,%3Csvg%2F%3E").unwrap();
        assert_eq!(mime, "image/svg+xml");
        assert_eq!(bytes, b"<svg/>");
        let (mime, bytes) = decode_data_uri("data:image/png;base64,iVBORw0=").unwrap();
        assert_eq!(mime, "image/png");
        assert_eq!(&bytes[..4], b"\x89PNG");
    }
}
