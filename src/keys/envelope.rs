//! Envelope encryption of private keys: AES-256-GCM under a key-encryption key (KEK), a random 96-bit
//! nonce per encryption, and associated data that binds each ciphertext to its key id, issuer and
//! algorithm (a ciphertext copied to another row does not decrypt).

use std::{fmt, io::Write, path::Path};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD},
};
use rand::{RngCore, rngs::OsRng};
use zeroize::{Zeroize, Zeroizing};

/// Domain separation for the associated data (bump the version if the layout ever changes).
const AAD_DOMAIN: &[u8] = b"oxbadge/signing-key/v1";

/// Envelope failures. Messages name KEK and key ids, never key material.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// A KEK spec is malformed.
    #[error("key-encryption key `{id}`: {reason}")]
    InvalidKek { id: String, reason: String },
    /// The KEK list is unusable.
    #[error("key-encryption keys: {0}")]
    InvalidRing(String),
    /// A stored key names a KEK that is not configured.
    #[error(
        "stored keys are encrypted under key-encryption key `{kek_id}`, which is not configured: \
         add it to OXBADGE_KEK or OXBADGE_KEK_FILE"
    )]
    UnknownKek { kek_id: String },
    /// Decryption failed: wrong KEK material, a tampered ciphertext or nonce, or a ciphertext moved
    /// from another row.
    #[error(
        "signing key `{key_id}` cannot be decrypted with key-encryption key `{kek_id}`: wrong KEK \
         material, or the stored ciphertext was altered or moved"
    )]
    Decrypt { key_id: String, kek_id: String },
    /// Encryption failed (should not happen with valid inputs).
    #[error("encryption failed")]
    Encrypt,
    /// Reading or writing a KEK file failed.
    #[error("KEK file: {0}")]
    Io(#[from] std::io::Error),
}

/// A key-encryption key. Debug never shows the key; the bytes are zeroized on drop.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Kek {
    /// A KEK from its id and 32 key bytes.
    pub fn new(id: &str, key: [u8; 32]) -> Result<Self, EnvelopeError> {
        if !valid_id(id) {
            return Err(EnvelopeError::InvalidKek {
                id: id.to_owned(),
                reason: "the id must be 1-64 characters of A-Z a-z 0-9 . _ -".into(),
            });
        }
        Ok(Self {
            id: id.to_owned(),
            key: Zeroizing::new(key),
        })
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.key).into())
    }
}

/// Parses `id:BASE64` (standard or URL-safe base64, with or without padding, 32 bytes).
pub fn parse_kek_spec(spec: &str) -> Result<Kek, EnvelopeError> {
    let spec = spec.trim();
    let (id, encoded) = spec
        .split_once(':')
        .ok_or_else(|| EnvelopeError::InvalidKek {
            id: "?".into(),
            reason: "expected `id:BASE64`".into(),
        })?;
    let id = id.trim();
    let encoded = encoded.trim();
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| URL_SAFE.decode(encoded))
        .or_else(|_| URL_SAFE_NO_PAD.decode(encoded))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::InvalidKek {
            id: id.to_owned(),
            reason: "the key is not valid base64".into(),
        })?;
    let bytes: [u8; 32] = decoded
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::InvalidKek {
            id: id.to_owned(),
            reason: format!("the key must be 32 bytes, not {}", decoded.len()),
        })?;
    Kek::new(id, bytes)
}

/// Parses a comma-separated list of `id:BASE64` specs.
pub fn parse_kek_list(list: &str) -> Result<Vec<Kek>, EnvelopeError> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_kek_spec)
        .collect()
}

/// Reads a KEK file: one `id:BASE64` per line; blank lines and `#` comments are ignored.
pub fn read_kek_file(path: &Path) -> Result<Vec<Kek>, EnvelopeError> {
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "KEK file is readable by group or others; chmod 600 it"
            );
        }
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_kek_spec)
        .collect()
}

/// Generates a random development KEK into a new file with mode 0600 (fails if the file exists).
pub fn generate_dev_kek_file(path: &Path) -> Result<Kek, EnvelopeError> {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let suffix: String = (0..6)
        .map(|_| {
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(OsRng.next_u32() % 36) as usize])
        })
        .collect();
    let id = format!("dev-{}-{suffix}", chrono::Utc::now().format("%Y%m%d"));
    let line = Zeroizing::new(format!("{id}:{}\n", STANDARD.encode(bytes)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(line.as_bytes())?;
    file.sync_all()?;
    let kek = Kek::new(&id, bytes);
    bytes.zeroize();
    kek
}

/// The configured KEKs and which one encrypts new keys.
#[derive(Clone)]
pub struct KekRing {
    active: usize,
    keks: Vec<Kek>,
}

impl fmt::Debug for KekRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KekRing")
            .field("active", &self.active().id)
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

impl KekRing {
    /// A ring of `keks` (ids unique) with `active_id` active.
    pub fn new(keks: Vec<Kek>, active_id: &str) -> Result<Self, EnvelopeError> {
        for (i, k) in keks.iter().enumerate() {
            if keks[..i].iter().any(|o| o.id == k.id) {
                return Err(EnvelopeError::InvalidRing(format!(
                    "KEK id `{}` is listed twice",
                    k.id
                )));
            }
        }
        let active = keks.iter().position(|k| k.id == active_id).ok_or_else(|| {
            EnvelopeError::InvalidRing(format!("the active KEK `{active_id}` is not configured"))
        })?;
        Ok(Self { active, keks })
    }

    /// The KEK that encrypts new keys.
    pub fn active(&self) -> &Kek {
        &self.keks[self.active]
    }

    /// A KEK by id.
    pub fn get(&self, id: &str) -> Option<&Kek> {
        self.keks.iter().find(|k| k.id == id)
    }

    /// All KEK ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keks.iter().map(|k| k.id.as_str())
    }
}

/// What a ciphertext is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAad {
    pub key_id: String,
    pub issuer_id: String,
    pub algorithm: String,
}

impl KeyAad {
    /// Canonical bytes: domain, then each field length-prefixed (no ambiguity between fields).
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.key_id.len() + self.issuer_id.len());
        out.extend_from_slice(AAD_DOMAIN);
        for field in [&self.key_id, &self.issuer_id, &self.algorithm] {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out
    }
}

/// An encrypted private key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub kek_id: String,
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

/// Encrypts `plaintext` under the active KEK with a fresh random nonce.
pub fn seal_private_key(
    ring: &KekRing,
    plaintext: &[u8],
    aad: &KeyAad,
) -> Result<SealedKey, EnvelopeError> {
    let kek = ring.active();
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = kek
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad.to_bytes(),
            },
        )
        .map_err(|_| EnvelopeError::Encrypt)?;
    Ok(SealedKey {
        kek_id: kek.id.clone(),
        nonce,
        ciphertext,
    })
}

/// Decrypts a sealed key; fails unless KEK, nonce, ciphertext and binding all match.
pub fn open_private_key(
    ring: &KekRing,
    sealed: &SealedKey,
    aad: &KeyAad,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let kek = ring
        .get(&sealed.kek_id)
        .ok_or_else(|| EnvelopeError::UnknownKek {
            kek_id: sealed.kek_id.clone(),
        })?;
    kek.cipher()
        .decrypt(
            &Nonce::from(sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad.to_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Decrypt {
            key_id: aad.key_id.clone(),
            kek_id: sealed.kek_id.clone(),
        })
}

/// Domain separation of secrets other than signing keys (tokens and client secrets of the OB 3.0
/// consumer): a sealed token can never be opened as a signing key, nor the reverse.
const SECRET_AAD_DOMAIN: &[u8] = b"oxbadge/secret/v1";

fn secret_aad(context: &[&str]) -> Vec<u8> {
    let mut out = SECRET_AAD_DOMAIN.to_vec();
    for field in context {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// Encrypts a secret (a token, a client secret) under the active KEK, bound to `context` (e.g.
/// the table, the row id and the column): a ciphertext moved to another row or column does not
/// open.
pub fn seal_secret(
    ring: &KekRing,
    plaintext: &[u8],
    context: &[&str],
) -> Result<SealedKey, EnvelopeError> {
    let kek = ring.active();
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = kek
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &secret_aad(context),
            },
        )
        .map_err(|_| EnvelopeError::Encrypt)?;
    Ok(SealedKey {
        kek_id: kek.id.clone(),
        nonce,
        ciphertext,
    })
}

/// Decrypts a secret sealed by [`seal_secret`] with the same `context`.
pub fn open_secret(
    ring: &KekRing,
    sealed: &SealedKey,
    context: &[&str],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let kek = ring
        .get(&sealed.kek_id)
        .ok_or_else(|| EnvelopeError::UnknownKek {
            kek_id: sealed.kek_id.clone(),
        })?;
    kek.cipher()
        .decrypt(
            &Nonce::from(sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &secret_aad(context),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Decrypt {
            key_id: context.join("/"),
            kek_id: sealed.kek_id.clone(),
        })
}

/// A sealed value as one text column: `kek_id.nonce.ciphertext` (base64url, no padding).
pub fn sealed_to_text(sealed: &SealedKey) -> String {
    format!(
        "{}.{}.{}",
        sealed.kek_id,
        URL_SAFE_NO_PAD.encode(sealed.nonce),
        URL_SAFE_NO_PAD.encode(&sealed.ciphertext)
    )
}

/// Parses [`sealed_to_text`]'s form (KEK ids may contain dots: the last two parts are split off).
pub fn sealed_from_text(text: &str) -> Option<SealedKey> {
    let (rest, ciphertext) = text.rsplit_once('.')?;
    let (kek_id, nonce) = rest.rsplit_once('.')?;
    let nonce: [u8; 12] = URL_SAFE_NO_PAD.decode(nonce).ok()?.try_into().ok()?;
    Some(SealedKey {
        kek_id: kek_id.to_owned(),
        nonce,
        ciphertext: URL_SAFE_NO_PAD.decode(ciphertext).ok()?,
    })
}

/// Re-encrypts a sealed key under the active KEK (new nonce).
pub fn rewrap(
    ring: &KekRing,
    sealed: &SealedKey,
    aad: &KeyAad,
) -> Result<SealedKey, EnvelopeError> {
    let plaintext = open_private_key(ring, sealed, aad)?;
    seal_private_key(ring, &plaintext, aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[(&str, u8)], active: &str) -> KekRing {
        KekRing::new(
            ids.iter()
                .map(|(id, b)| Kek::new(id, [*b; 32]).unwrap())
                .collect(),
            active,
        )
        .unwrap()
    }

    fn aad(key: &str, issuer: &str) -> KeyAad {
        KeyAad {
            key_id: key.into(),
            issuer_id: issuer.into(),
            algorithm: "Ed25519".into(),
        }
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let r = ring(&[("k1", 7)], "k1");
        let a = aad("key1", "iss1");
        let s1 = seal_private_key(&r, b"secret seed bytes", &a).unwrap();
        let s2 = seal_private_key(&r, b"secret seed bytes", &a).unwrap();
        assert_ne!(s1.nonce, s2.nonce);
        assert_ne!(s1.ciphertext, s2.ciphertext);
        assert_eq!(
            &*open_private_key(&r, &s1, &a).unwrap(),
            b"secret seed bytes"
        );
        assert!(!s1.ciphertext.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn tampering_moving_and_wrong_keks_fail() {
        let r = ring(&[("k1", 7)], "k1");
        let a = aad("key1", "iss1");
        let sealed = seal_private_key(&r, b"0123456789abcdef0123456789abcdef", &a).unwrap();
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(
            open_private_key(&r, &flipped, &a),
            Err(EnvelopeError::Decrypt { .. })
        ));
        let mut nonce = sealed.clone();
        nonce.nonce[0] ^= 1;
        assert!(open_private_key(&r, &nonce, &a).is_err());
        assert!(open_private_key(&r, &sealed, &aad("key2", "iss1")).is_err());
        assert!(open_private_key(&r, &sealed, &aad("key1", "iss2")).is_err());
        let other = ring(&[("k1", 8)], "k1");
        let err = open_private_key(&other, &sealed, &a)
            .unwrap_err()
            .to_string();
        assert!(err.contains("k1") && err.contains("key1"), "{err}");
        let missing = ring(&[("k9", 7)], "k9");
        let err = open_private_key(&missing, &sealed, &a).unwrap_err();
        assert!(matches!(err, EnvelopeError::UnknownKek { ref kek_id } if kek_id == "k1"));
    }

    #[test]
    fn secrets_are_bound_to_their_context_and_round_trip_as_text() {
        let r = ring(&[("k.1", 7)], "k.1");
        let sealed =
            seal_secret(&r, b"oxbat_token", &["host_connections", "c1", "access"]).unwrap();
        let text = sealed_to_text(&sealed);
        assert!(!text.contains("oxbat_token"));
        let back = sealed_from_text(&text).unwrap();
        assert_eq!(back, sealed);
        let ctx = ["host_connections", "c1", "access"];
        assert_eq!(&*open_secret(&r, &back, &ctx).unwrap(), b"oxbat_token");
        assert!(open_secret(&r, &back, &["host_connections", "c2", "access"]).is_err());
        assert!(open_private_key(&r, &back, &aad("c1", "access")).is_err());
    }

    #[test]
    fn rewrap_moves_to_the_active_kek() {
        let old = ring(&[("old", 1)], "old");
        let a = aad("key1", "iss1");
        let sealed = seal_private_key(&old, b"seed", &a).unwrap();
        let both = ring(&[("old", 1), ("new", 2)], "new");
        let resealed = rewrap(&both, &sealed, &a).unwrap();
        assert_eq!(resealed.kek_id, "new");
        let only_new = ring(&[("new", 2)], "new");
        assert_eq!(
            &*open_private_key(&only_new, &resealed, &a).unwrap(),
            b"seed"
        );
    }

    #[test]
    fn specs_parse_and_debug_is_redacted() {
        let kek = parse_kek_spec(&format!("prod-1:{}", STANDARD.encode([9u8; 32]))).unwrap();
        assert_eq!(kek.id(), "prod-1");
        assert!(!format!("{kek:?}").contains("9, 9"));
        let list = parse_kek_list(&format!(
            "a:{},b:{}",
            STANDARD.encode([1u8; 32]),
            URL_SAFE_NO_PAD.encode([2u8; 32])
        ))
        .unwrap();
        assert_eq!(list.len(), 2);
        let err = parse_kek_spec("short:AAAA").unwrap_err().to_string();
        assert!(err.contains("short") && err.contains("32 bytes"), "{err}");
        assert!(parse_kek_spec("bad id!:AAAA").is_err());
        assert!(KekRing::new(list.clone(), "zzz").is_err());
        let dup = vec![list[0].clone(), list[0].clone()];
        assert!(KekRing::new(dup, "a").is_err());
    }

    #[test]
    fn dev_kek_file_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let kek = generate_dev_kek_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let read = read_kek_file(&path).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].id(), kek.id());
        assert_eq!(*read[0].key, *kek.key);
        assert!(generate_dev_kek_file(&path).is_err(), "never overwrites");
    }
}
