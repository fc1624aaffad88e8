//! Builds the KEK ring from settings: `OXBADGE_KEK`, `OXBADGE_KEK_FILE`, or, for development on the
//! embedded SQLite database only, a KEK generated once into `<data dir>/kek` (mode 0600).

use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::envelope::{self, EnvelopeError, KekRing};
use crate::config::Settings;

/// Where the KEKs came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// From `OXBADGE_KEK` and/or `OXBADGE_KEK_FILE`.
    Configured,
    /// The development KEK file already existed.
    DevelopmentFile(PathBuf),
    /// The development KEK file was generated now.
    DevelopmentGenerated(PathBuf),
}

/// Failures building the ring; they stop start-up with a message naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum KekConfigError {
    /// No KEK configured and no development fallback allowed.
    #[error(
        "no key-encryption key is configured: set OXBADGE_KEK (id:BASE64 of 32 bytes) or OXBADGE_KEK_FILE; \
         a development KEK is generated automatically only with the embedded SQLite database"
    )]
    Missing,
    /// A KEK spec or file is invalid.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// The ring in effect for `settings`.
pub fn load_kek_ring(settings: &Settings) -> Result<(KekRing, KekSource), KekConfigError> {
    let mut keks = Vec::new();
    if let Some(list) = &settings.kek {
        keks.extend(envelope::parse_kek_list(list.expose_secret())?);
    }
    if let Some(path) = &settings.kek_file {
        keks.extend(envelope::read_kek_file(path)?);
    }
    let mut source = KekSource::Configured;
    if keks.is_empty() {
        if !settings.effective_database_url().starts_with("sqlite:") {
            return Err(KekConfigError::Missing);
        }
        let path = settings.data_dir.join("kek");
        if path.exists() {
            keks.extend(envelope::read_kek_file(&path)?);
            source = KekSource::DevelopmentFile(path);
        } else {
            if let Some(dir) = path.parent() {
                crate::db::create_private_dir(dir).map_err(EnvelopeError::from)?;
            }
            keks.push(envelope::generate_dev_kek_file(&path)?);
            source = KekSource::DevelopmentGenerated(path);
        }
    }
    let active = match &settings.active_kek {
        Some(id) => id.clone(),
        None => keks
            .first()
            .map(|k| k.id().to_string())
            .ok_or(KekConfigError::Missing)?,
    };
    Ok((KekRing::new(keks, &active)?, source))
}
