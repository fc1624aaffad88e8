//! W3C Bitstring Status List v1.0 codec: bit 0 is the most significant bit of byte 0; the encoded
//! list is multibase base64url (no padding, prefix `u`) of the GZIP-compressed bitstring.

use std::io::{Read, Write};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use flate2::{Compression, read::GzDecoder, write::GzEncoder};

/// The minimum list length the spec allows (16 KiB).
pub const MIN_BITS: usize = 131_072;

/// Decoding and range errors, named after the spec's error types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitstringError {
    /// RANGE_ERROR: index outside the list.
    #[error("RANGE_ERROR: index {index} is outside a list of {len} entries")]
    Range { index: usize, len: usize },
    /// STATUS_LIST_LENGTH_ERROR: the list is shorter than the minimum.
    #[error("STATUS_LIST_LENGTH_ERROR: the list has {bits} bits; at least {min} are required")]
    Length { bits: usize, min: usize },
    /// MALFORMED_VALUE_ERROR: not multibase base64url, not GZIP, or too large.
    #[error("MALFORMED_VALUE_ERROR: {0}")]
    Malformed(String),
}

/// A bitstring of whole bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitstring {
    bytes: Vec<u8>,
}

impl Bitstring {
    /// An all-zero bitstring of at least `bits` bits (rounded up to whole bytes).
    pub fn new(bits: usize) -> Self {
        Self {
            bytes: vec![0; bits.div_ceil(8)],
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.bytes.len() * 8
    }

    /// Whether the list has no bits.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bit at `index`.
    pub fn get(&self, index: usize) -> Result<bool, BitstringError> {
        let byte = self.bytes.get(index / 8).ok_or(BitstringError::Range {
            index,
            len: self.len(),
        })?;
        Ok(byte & (0x80 >> (index % 8)) != 0)
    }

    /// Sets the bit at `index`.
    pub fn set(&mut self, index: usize, value: bool) -> Result<(), BitstringError> {
        let len = self.len();
        let byte = self
            .bytes
            .get_mut(index / 8)
            .ok_or(BitstringError::Range { index, len })?;
        let mask = 0x80 >> (index % 8);
        if value {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
        Ok(())
    }

    /// The `size`-bit value at entry `index` (position = index × size), for multi-bit purposes.
    pub fn get_value(&self, index: usize, size: usize) -> Result<u64, BitstringError> {
        if size == 0 || size > 64 {
            return Err(BitstringError::Malformed(format!("statusSize {size}")));
        }
        let mut value = 0u64;
        for bit in 0..size {
            value = (value << 1) | u64::from(self.get(index * size + bit)?);
        }
        Ok(value)
    }

    /// `u` + base64url-no-pad(GZIP(bytes)).
    pub fn encode(&self) -> String {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(&self.bytes);
        let compressed = gz.finish().unwrap_or_default();
        format!("u{}", URL_SAFE_NO_PAD.encode(compressed))
    }

    /// Decodes an `encodedList`, refusing lists shorter than `min_bits` and decompressed sizes
    /// above `max_bytes` (a decompression bomb guard).
    pub fn decode(
        encoded: &str,
        min_bits: usize,
        max_bytes: usize,
    ) -> Result<Self, BitstringError> {
        let body = encoded
            .strip_prefix('u')
            .ok_or_else(|| BitstringError::Malformed("encodedList must start with `u`".into()))?;
        let compressed = URL_SAFE_NO_PAD
            .decode(body.trim_end_matches('='))
            .map_err(|e| BitstringError::Malformed(format!("base64url: {e}")))?;
        let mut bytes = Vec::new();
        GzDecoder::new(compressed.as_slice())
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| BitstringError::Malformed(format!("gzip: {e}")))?;
        if bytes.len() > max_bytes {
            return Err(BitstringError::Malformed(format!(
                "the list decompresses to more than {max_bytes} bytes"
            )));
        }
        let list = Self { bytes };
        if list.len() < min_bits {
            return Err(BitstringError::Length {
                bits: list.len(),
                min: min_bits,
            });
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EMPTY: &str =
        "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA";

    #[test]
    fn decodes_the_spec_example() {
        let list = Bitstring::decode(SPEC_EMPTY, MIN_BITS, 1 << 24).unwrap();
        assert_eq!(list.len(), 131_072);
        assert!(list.as_bytes().iter().all(|b| *b == 0));
    }

    #[test]
    fn bit_order_is_msb_first() {
        let mut list = Bitstring::new(MIN_BITS);
        list.set(0, true).unwrap();
        assert_eq!(list.as_bytes()[0], 0x80);
        list.set(7, true).unwrap();
        assert_eq!(list.as_bytes()[0], 0x81);
        list.set(8, true).unwrap();
        assert_eq!(list.as_bytes()[1], 0x80);
        list.set(0, false).unwrap();
        assert_eq!(list.as_bytes()[0], 0x01);
        assert!(list.get(7).unwrap() && !list.get(6).unwrap());
        assert_eq!(
            list.get(MIN_BITS).unwrap_err(),
            BitstringError::Range {
                index: MIN_BITS,
                len: MIN_BITS
            }
        );
    }

    #[test]
    fn independent_gzip_round_trip() {
        // Build the bytes by hand and compress with flate2 directly, not through `encode`.
        let mut raw = vec![0u8; 16_384];
        raw[0] = 0b0100_0000; // index 1
        raw[12_345] = 0b0000_0001; // index 12345*8+7
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&raw).unwrap();
        let encoded = format!("u{}", URL_SAFE_NO_PAD.encode(gz.finish().unwrap()));
        let list = Bitstring::decode(&encoded, MIN_BITS, 1 << 24).unwrap();
        assert!(list.get(1).unwrap());
        assert!(list.get(12_345 * 8 + 7).unwrap());
        assert!(!list.get(0).unwrap());
        // And our encoding decodes, by an independent gunzip, to the same bytes.
        let ours = list.encode();
        let compressed = URL_SAFE_NO_PAD.decode(&ours[1..]).unwrap();
        let mut back = Vec::new();
        GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn multi_bit_values() {
        let mut list = Bitstring::new(MIN_BITS);
        // Entry 3 of size 2 occupies bits 6 and 7.
        list.set(6, true).unwrap();
        assert_eq!(list.get_value(3, 2).unwrap(), 0b10);
    }

    #[test]
    fn short_malformed_and_bomb_lists_are_refused() {
        let short = Bitstring::new(8 * 100).encode();
        assert!(matches!(
            Bitstring::decode(&short, MIN_BITS, 1 << 24),
            Err(BitstringError::Length { .. })
        ));
        assert!(matches!(
            Bitstring::decode("zabc", MIN_BITS, 1 << 24),
            Err(BitstringError::Malformed(_))
        ));
        assert!(matches!(
            Bitstring::decode("u!!!", MIN_BITS, 1 << 24),
            Err(BitstringError::Malformed(_))
        ));
        let bomb = Bitstring::new(8 * (1 << 20)).encode();
        assert!(matches!(
            Bitstring::decode(&bomb, MIN_BITS, 1 << 18),
            Err(BitstringError::Malformed(_))
        ));
    }
}
