//! Random 256-bit secrets handed to people (session cookies, link tokens): base64url text out,
//! only the SHA-256 in the database.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A fresh random secret as unpadded base64url (43 characters).
pub fn generate() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a secret: hex SHA-256.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `text` has the shape of a secret we issue (so junk never reaches the database).
pub fn well_formed(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored form of a secret we hold as [`SecretString`].
pub fn hash_secret(secret: &SecretString) -> String {
    hash(secret.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(well_formed(a.expose_secret()));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(hash_secret(&a).len(), 64);
        assert!(!well_formed("short"));
        assert!(!well_formed(&"a".repeat(42).replace('a', "+")));
    }
}
