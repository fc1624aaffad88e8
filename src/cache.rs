//! Pieces shared by the in-memory caches of served documents.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sha2::{Digest, Sha256};

/// The strong ETag of a serialized body: the first 128 bits of its SHA-256, quoted.
pub fn strong_etag(body: &str) -> String {
    format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..16])
    )
}

/// One async gate per key, so that only one task rebuilds a given entry while the others wait for
/// it (and then find it built).
#[derive(Default)]
pub struct SingleFlight {
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl SingleFlight {
    /// The gate of `key`; hold its lock while rebuilding.
    pub fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.gates.lock() {
            Ok(mut map) => map.entry(key.to_owned()).or_default().clone(),
            // A poisoned map only loses the single-flight property.
            Err(_) => Arc::default(),
        }
    }
}
