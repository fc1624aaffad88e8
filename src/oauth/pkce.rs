//! PKCE (RFC 7636) with `S256` only: the challenge an authorization request carries, and the check
//! of the verifier the token request presents. `plain` and a missing method are refused, since a
//! `plain` challenge is the verifier itself and protects nothing once the request leaks.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A validated `S256` code challenge: 43 base64url characters (a SHA-256 digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

/// Why a challenge was refused (each becomes `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// No `code_challenge`.
    #[error("code_challenge is required (PKCE with S256)")]
    MissingChallenge,
    /// No `code_challenge_method` (its default, `plain`, is not accepted).
    #[error("code_challenge_method=S256 is required")]
    MissingMethod,
    /// A method other than `S256`.
    #[error("code_challenge_method must be S256")]
    UnsupportedMethod,
    /// Not 43 base64url characters.
    #[error("code_challenge must be the base64url SHA-256 of the verifier (43 characters)")]
    MalformedChallenge,
}

impl CodeChallenge {
    /// Parses `code_challenge` and `code_challenge_method` of an authorization request.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, PkceError> {
        let challenge = challenge
            .filter(|c| !c.is_empty())
            .ok_or(PkceError::MissingChallenge)?;
        match method {
            None | Some("") => return Err(PkceError::MissingMethod),
            Some("S256") => {}
            Some(_) => return Err(PkceError::UnsupportedMethod),
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(challenge)
            .map_err(|_| PkceError::MalformedChallenge)?;
        if challenge.len() != 43 || decoded.len() != 32 {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// A stored challenge (already validated when it was stored).
    pub fn from_stored(challenge: String) -> Self {
        Self(challenge)
    }

    /// The challenge as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` is well-formed (43–128 characters of `[A-Za-z0-9-._~]`) and its S256
    /// transform equals this challenge. The comparison is constant-time.
    pub fn is_satisfied_by(&self, verifier: &str) -> bool {
        if !verifier_is_well_formed(verifier) {
            return false;
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        computed.as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

/// RFC 7636 §4.1 verifier syntax.
pub fn verifier_is_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_appendix_b_vector() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(c.is_satisfied_by(VERIFIER));
        assert!(!c.is_satisfied_by(&VERIFIER.replace('d', "e")));
    }

    #[test]
    fn plain_missing_and_malformed_are_refused() {
        assert_eq!(
            CodeChallenge::parse(Some(CHALLENGE), Some("plain")),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse(Some(CHALLENGE), None),
            Err(PkceError::MissingMethod)
        );
        assert_eq!(
            CodeChallenge::parse(None, Some("S256")),
            Err(PkceError::MissingChallenge)
        );
        assert_eq!(
            CodeChallenge::parse(Some("short"), Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
    }

    #[test]
    fn verifier_syntax() {
        assert!(!verifier_is_well_formed(&"a".repeat(42)));
        assert!(verifier_is_well_formed(&"a".repeat(43)));
        assert!(verifier_is_well_formed(&"a".repeat(128)));
        assert!(!verifier_is_well_formed(&"a".repeat(129)));
        assert!(!verifier_is_well_formed(&format!("{}+", "a".repeat(43))));
        // A verifier that is the challenge itself (what `plain` would accept) does not match.
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(!c.is_satisfied_by(CHALLENGE));
    }
}
