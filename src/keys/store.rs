//! The issuer key store: generates Ed25519 keys, stores private halves only as AES-256-GCM
//! ciphertext under the active KEK, rotates and revokes keys (exactly one active key per issuer and
//! algorithm, enforced by a partial unique index and retried on a lost race), re-wraps under a new
//! KEK, and caches decrypted signing keys in memory.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use zeroize::Zeroizing;

use super::{
    envelope::{self, KekRing, KeyAad, SealedKey},
    identity::{IdType, verification_method_id},
    publish,
};
use crate::db::{self, audit_event, issuer, signing_key};

/// Key algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519 (Data Integrity eddsa-rdfc-2022, VC-JWT EdDSA).
    Ed25519,
}

impl KeyAlgorithm {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "Ed25519",
        }
    }
}

/// Key states.
pub mod state {
    /// Signs new credentials.
    pub const ACTIVE: &str = "active";
    /// No longer signs; still published so that what it signed keeps verifying.
    pub const RETIRED: &str = "retired";
    /// Compromised: not published as valid any more.
    pub const REVOKED: &str = "revoked";
}

/// Key-management failures. Each says which HTTP status it becomes where it reaches HTTP.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// 404: no such issuer or key.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the issuer's identifier is bound to one key (did:key) and cannot rotate.
    #[error("issuer {0} uses did:key: its identifier is its key, so the key cannot rotate")]
    RotationNotSupported(String),
    /// 409: the key is already revoked.
    #[error("key {0} is already revoked")]
    AlreadyRevoked(String),
    /// 409: the issuer has no active key (all revoked).
    #[error("issuer {0} has no active signing key")]
    NoActiveKey(String),
    /// 500 at run time, fatal at start-up: the KEK that encrypts stored keys is not configured or
    /// does not decrypt them.
    #[error(transparent)]
    Envelope(#[from] envelope::EnvelopeError),
    /// 500: stored key material is malformed.
    #[error("stored key {key_id} is malformed: {reason}")]
    Malformed { key_id: String, reason: String },
    /// 503: the rotation kept losing races; retry.
    #[error("concurrent key changes for issuer {0}; retry")]
    Contention(String),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A decrypted signing key ready to sign, with how proofs must reference it.
#[derive(Clone)]
pub struct ActiveSigningKey {
    /// Key id (CUID).
    pub key_id: String,
    /// Verification-method id for proofs (controller = issuer id).
    pub verification_method: String,
    /// The issuer id that controls the key.
    pub issuer_id: String,
    /// The private key (zeroized when the last reference drops).
    pub signing_key: Arc<SigningKey>,
}

impl std::fmt::Debug for ActiveSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveSigningKey")
            .field("key_id", &self.key_id)
            .field("verification_method", &self.verification_method)
            .field("signing_key", &"<redacted>")
            .finish()
    }
}

/// Outcome of an age-based rotation check.
#[derive(Debug, PartialEq, Eq)]
pub enum RotationOutcome {
    /// A new key was activated.
    Rotated { old: Option<String>, new: String },
    /// Nothing to do (the active key is young enough, or another instance just rotated it).
    Unchanged,
}

fn aad(key: &signing_key::Model) -> KeyAad {
    KeyAad {
        key_id: key.id.clone(),
        issuer_id: key.issuer_id.clone(),
        algorithm: key.algorithm.clone(),
    }
}

fn sealed_of(key: &signing_key::Model) -> Result<SealedKey, KeyError> {
    let nonce: [u8; 12] = key
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Malformed {
            key_id: key.id.clone(),
            reason: "nonce is not 96 bits".into(),
        })?;
    Ok(SealedKey {
        kek_id: key.kek_id.clone(),
        nonce,
        ciphertext: key.ciphertext.clone(),
    })
}

/// The key store. Holds the KEK ring and the cache of decrypted keys.
pub struct KeyStore {
    ring: KekRing,
    cache: RwLock<HashMap<String, Arc<SigningKey>>>,
}

impl KeyStore {
    /// A store over `ring`.
    pub fn new(ring: KekRing) -> Self {
        Self {
            ring,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The KEK ring.
    pub fn ring(&self) -> &KekRing {
        &self.ring
    }

    /// Fails fast when a stored key is encrypted under a KEK that is not configured, or when a
    /// configured KEK does not decrypt the keys stored under it (wrong key material).
    pub async fn verify_keks(&self, db: &impl ConnectionTrait) -> Result<(), KeyError> {
        let keys = signing_key::Entity::find()
            .filter(signing_key::Column::State.ne(state::REVOKED))
            .all(db)
            .await?;
        let mut checked: HashMap<String, ()> = HashMap::new();
        for key in keys {
            if checked.contains_key(&key.kek_id) {
                continue;
            }
            // Opening one key per KEK proves the KEK's material is right.
            let plaintext = envelope::open_private_key(&self.ring, &sealed_of(&key)?, &aad(&key))?;
            drop(plaintext);
            checked.insert(key.kek_id.clone(), ());
        }
        Ok(())
    }

    /// Generates a fresh Ed25519 key (CSPRNG) and its sealed row, not yet inserted.
    fn new_key_row(
        &self,
        issuer_id: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<signing_key::ActiveModel, KeyError> {
        let signing = SigningKey::generate(&mut OsRng);
        let key_id = db::new_id();
        let aad = KeyAad {
            key_id: key_id.clone(),
            issuer_id: issuer_id.to_owned(),
            algorithm: algorithm.as_str().to_owned(),
        };
        let secret = Zeroizing::new(signing.to_bytes());
        let sealed = envelope::seal_private_key(&self.ring, secret.as_slice(), &aad)?;
        Ok(signing_key::ActiveModel {
            id: Set(key_id),
            issuer_id: Set(issuer_id.to_owned()),
            algorithm: Set(algorithm.as_str().to_owned()),
            state: Set(state::ACTIVE.to_owned()),
            public_key: Set(publish::ed25519_multibase(&signing.verifying_key())),
            kek_id: Set(sealed.kek_id.to_string()),
            nonce: Set(sealed.nonce.to_vec()),
            ciphertext: Set(sealed.ciphertext),
            created_at: Set(Utc::now()),
            retired_at: Set(None),
            revoked_at: Set(None),
            revocation_reason: Set(None),
        })
    }

    /// Generates a new active Ed25519 key for `issuer_id`, sealed and ready to insert. Done before a
    /// transaction opens, so that no lock is held while generating and encrypting.
    pub fn prepare_key(&self, issuer_id: &str) -> Result<signing_key::ActiveModel, KeyError> {
        self.new_key_row(issuer_id, KeyAlgorithm::Ed25519)
    }

    /// Inserts a prepared key (see [`Self::prepare_key`]) and records the generation.
    pub async fn insert_prepared_key(
        &self,
        txn: &impl ConnectionTrait,
        prepared: signing_key::ActiveModel,
        actor: &str,
    ) -> Result<signing_key::Model, KeyError> {
        let key = prepared.insert(txn).await?;
        audit_event::record(
            txn,
            actor,
            "key.generated",
            "signing_key",
            &key.id,
            serde_json::json!({"issuer": key.issuer_id, "algorithm": key.algorithm, "kek": key.kek_id}),
        )
        .await?;
        Ok(key)
    }

    /// Rotates the issuer's active key: the current one becomes `retired` (still published), a new
    /// one becomes `active`. With `older_than`, rotates only when the active key was created before
    /// it (age-based rotation; a no-op when another instance just rotated). Safe under concurrency
    /// on SQLite and PostgreSQL: a lost race is retried.
    pub async fn rotate(
        &self,
        db: &DatabaseConnection,
        issuer: &issuer::Model,
        actor: &str,
        older_than: Option<DateTime<Utc>>,
    ) -> Result<RotationOutcome, KeyError> {
        if !issuer
            .id_type
            .parse::<IdType>()
            .is_ok_and(IdType::supports_rotation)
        {
            return Err(KeyError::RotationNotSupported(issuer.id.clone()));
        }
        let algorithm = KeyAlgorithm::Ed25519;
        for attempt in 0..20u32 {
            let row = self.new_key_row(&issuer.id, algorithm)?;
            match self.try_rotate(db, issuer, actor, older_than, row).await {
                Ok(outcome) => return Ok(outcome),
                Err(KeyError::Db(err)) if db::is_retryable(&err) => {
                    tracing::debug!(attempt, issuer = %issuer.id, "rotation lost a race; retrying");
                    let jitter = u64::from(rand::random::<u8>() % 20);
                    tokio::time::sleep(Duration::from_millis(5 + jitter + u64::from(attempt) * 5))
                        .await;
                }
                Err(other) => return Err(other),
            }
        }
        Err(KeyError::Contention(issuer.id.clone()))
    }

    async fn try_rotate(
        &self,
        db: &DatabaseConnection,
        issuer: &issuer::Model,
        actor: &str,
        older_than: Option<DateTime<Utc>>,
        new_row: signing_key::ActiveModel,
    ) -> Result<RotationOutcome, KeyError> {
        let txn = db::begin_write(db).await?;
        let current = signing_key::Entity::find()
            .filter(signing_key::Column::IssuerId.eq(&issuer.id))
            .filter(signing_key::Column::Algorithm.eq(KeyAlgorithm::Ed25519.as_str()))
            .filter(signing_key::Column::State.eq(state::ACTIVE))
            .one(&txn)
            .await?;
        if let (Some(cutoff), Some(cur)) = (older_than, &current)
            && cur.created_at >= cutoff
        {
            txn.rollback().await?;
            return Ok(RotationOutcome::Unchanged);
        }
        let now = Utc::now();
        if let Some(cur) = &current {
            let retired = signing_key::Entity::update_many()
                .col_expr(signing_key::Column::State, state::RETIRED.into())
                .col_expr(signing_key::Column::RetiredAt, now.into())
                .filter(signing_key::Column::Id.eq(&cur.id))
                .filter(signing_key::Column::State.eq(state::ACTIVE))
                .exec(&txn)
                .await?
                .rows_affected;
            if retired == 0 {
                // Someone else rotated between our read and our write.
                txn.rollback().await?;
                if older_than.is_some() {
                    return Ok(RotationOutcome::Unchanged);
                }
                return Err(KeyError::Db(DbErr::RecordNotUpdated));
            }
        }
        let new = new_row.insert(&txn).await?;
        audit_event::record(
            &txn,
            actor,
            "key.rotated",
            "signing_key",
            &new.id,
            serde_json::json!({
                "issuer": issuer.id,
                "retired": current.as_ref().map(|c| c.id.clone()),
                "reason": if older_than.is_some() { "max_age" } else { "requested" },
            }),
        )
        .await?;
        txn.commit().await?;
        Ok(RotationOutcome::Rotated {
            old: current.map(|c| c.id),
            new: new.id,
        })
    }

    /// Revokes a key (compromise). Revoking the active key activates a fresh one in the same
    /// transaction, so the issuer can keep signing; revocation is final.
    pub async fn revoke(
        &self,
        db: &DatabaseConnection,
        issuer: &issuer::Model,
        key_id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<signing_key::Model, KeyError> {
        let replacement = if issuer
            .id_type
            .parse::<IdType>()
            .is_ok_and(IdType::supports_rotation)
        {
            Some(self.new_key_row(&issuer.id, KeyAlgorithm::Ed25519)?)
        } else {
            None
        };
        let txn = db::begin_write(db).await?;
        let key = signing_key::Entity::find_by_id(key_id.to_owned())
            .filter(signing_key::Column::IssuerId.eq(&issuer.id))
            .one(&txn)
            .await?
            .ok_or(KeyError::NotFound("key"))?;
        if key.state == state::REVOKED {
            return Err(KeyError::AlreadyRevoked(key.id));
        }
        let was_active = key.state == state::ACTIVE;
        let mut row: signing_key::ActiveModel = key.into();
        row.state = Set(state::REVOKED.to_owned());
        row.revoked_at = Set(Some(Utc::now()));
        row.revocation_reason = Set(Some(reason.to_owned()));
        let revoked = row.update(&txn).await?;
        audit_event::record(
            &txn,
            actor,
            "key.revoked",
            "signing_key",
            &revoked.id,
            serde_json::json!({"issuer": issuer.id, "reason": reason, "wasActive": was_active}),
        )
        .await?;
        if was_active && let Some(new_row) = replacement {
            self.insert_prepared_key(&txn, new_row, actor).await?;
        }
        txn.commit().await?;
        self.forget(&revoked.id);
        Ok(revoked)
    }

    /// Re-encrypts every private key not under the active KEK, in one transaction. Returns how many
    /// keys were re-wrapped.
    pub async fn rewrap_all(
        &self,
        db: &DatabaseConnection,
        actor: &str,
    ) -> Result<usize, KeyError> {
        let active = self.ring.active().id().to_owned();
        let txn = db::begin_write(db).await?;
        let keys = signing_key::Entity::find()
            .filter(signing_key::Column::KekId.ne(&active))
            .all(&txn)
            .await?;
        let count = keys.len();
        for key in keys {
            let aad = aad(&key);
            let resealed = envelope::rewrap(&self.ring, &sealed_of(&key)?, &aad)?;
            let old_kek = key.kek_id.clone();
            let mut row: signing_key::ActiveModel = key.into();
            row.kek_id = Set(resealed.kek_id.to_string());
            row.nonce = Set(resealed.nonce.to_vec());
            row.ciphertext = Set(resealed.ciphertext);
            let updated = row.update(&txn).await?;
            audit_event::record(
                &txn,
                actor,
                "key.rewrapped",
                "signing_key",
                &updated.id,
                serde_json::json!({"from": old_kek, "to": active}),
            )
            .await?;
        }
        txn.commit().await?;
        Ok(count)
    }

    /// The issuer's active Ed25519 key, decrypted (from the cache when possible).
    pub async fn active_signing_key(
        &self,
        db: &impl ConnectionTrait,
        issuer: &issuer::Model,
    ) -> Result<ActiveSigningKey, KeyError> {
        let key = signing_key::Entity::find()
            .filter(signing_key::Column::IssuerId.eq(&issuer.id))
            .filter(signing_key::Column::Algorithm.eq(KeyAlgorithm::Ed25519.as_str()))
            .filter(signing_key::Column::State.eq(state::ACTIVE))
            .one(db)
            .await?
            .ok_or_else(|| KeyError::NoActiveKey(issuer.id.clone()))?;
        let signing_key = self.decrypt(&key)?;
        Ok(ActiveSigningKey {
            verification_method: verification_method_id(issuer, &key),
            key_id: key.id,
            issuer_id: issuer.issuer_id.clone(),
            signing_key,
        })
    }

    /// Decrypts a stored key, caching the result.
    pub fn decrypt(&self, key: &signing_key::Model) -> Result<Arc<SigningKey>, KeyError> {
        if let Ok(cache) = self.cache.read()
            && let Some(hit) = cache.get(&key.id)
        {
            return Ok(hit.clone());
        }
        let plaintext = envelope::open_private_key(&self.ring, &sealed_of(key)?, &aad(key))?;
        let bytes: &[u8; 32] =
            plaintext
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::Malformed {
                    key_id: key.id.clone(),
                    reason: "private key is not 32 bytes".into(),
                })?;
        let signing = Arc::new(SigningKey::from_bytes(bytes));
        if publish::ed25519_multibase(&signing.verifying_key()) != key.public_key {
            return Err(KeyError::Malformed {
                key_id: key.id.clone(),
                reason: "private key does not match the stored public key".into(),
            });
        }
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(key.id.clone(), signing.clone());
        }
        Ok(signing)
    }

    /// Drops a key from the cache.
    pub fn forget(&self, key_id: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(key_id);
        }
    }

    /// Keys of an issuer, newest first.
    pub async fn list_keys(
        db: &impl ConnectionTrait,
        issuer_id: &str,
    ) -> Result<Vec<signing_key::Model>, DbErr> {
        signing_key::Entity::find()
            .filter(signing_key::Column::IssuerId.eq(issuer_id))
            .order_by_desc(signing_key::Column::CreatedAt)
            .order_by_desc(signing_key::Column::Id)
            .all(db)
            .await
    }
}
