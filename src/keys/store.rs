//! The issuer key store: generates Ed25519 and P-256 keys, stores private halves only as
//! AES-256-GCM ciphertext under the active KEK, rotates and revokes keys (exactly one active key per
//! issuer and algorithm, enforced by a partial unique index and retried on a lost race), re-wraps
//! under a new KEK, and caches decrypted signing keys in memory.

use std::{
    collections::HashMap,
    fmt,
    str::FromStr,
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
use zeroize::{Zeroize, Zeroizing};

use super::{
    envelope::{self, KekRing, KeyAad, SealedKey},
    identity::{IdType, verification_method_id},
    publish,
};

/// A P-256 ECDSA private key (its scalar is zeroized on drop).
pub type P256SigningKey = p256::ecdsa::SigningKey;
use crate::db::{self, audit_event, issuer, signing_key};

/// Key algorithms. An issuer has at most one active key of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// Ed25519 (Data Integrity eddsa-rdfc-2022, VC-JWT EdDSA). Every issuer has one.
    Ed25519,
    /// NIST P-256 (VC-JWT ES256). Created when first asked for.
    P256,
}

impl KeyAlgorithm {
    /// Every algorithm.
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::Ed25519, KeyAlgorithm::P256];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "Ed25519",
            KeyAlgorithm::P256 => "P-256",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key algorithm we do not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown key algorithm `{0}`: use Ed25519 or P-256")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for KeyAlgorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Ed25519" => Ok(KeyAlgorithm::Ed25519),
            "P-256" => Ok(KeyAlgorithm::P256),
            other => Err(UnknownAlgorithm(other.to_owned())),
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
    /// 409: the issuer's identifier cannot name a key of this algorithm (did:key issuers are their
    /// one Ed25519 key).
    #[error(
        "issuer {issuer} uses did:key: its identifier is its Ed25519 key, so it cannot have a {algorithm} key"
    )]
    AlgorithmNotSupported {
        issuer: String,
        algorithm: KeyAlgorithm,
    },
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
pub struct ActiveKey<K> {
    /// Key id (CUID).
    pub key_id: String,
    /// Verification-method id for proofs (controller = issuer id).
    pub verification_method: String,
    /// The issuer id that controls the key.
    pub issuer_id: String,
    /// The private key (zeroized when the last reference drops).
    pub signing_key: Arc<K>,
}

/// The issuer's active Ed25519 key.
pub type ActiveSigningKey = ActiveKey<SigningKey>;

/// The issuer's active P-256 key.
pub type ActiveP256Key = ActiveKey<P256SigningKey>;

impl<K> fmt::Debug for ActiveKey<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveKey")
            .field("key_id", &self.key_id)
            .field("verification_method", &self.verification_method)
            .field("signing_key", &"<redacted>")
            .finish()
    }
}

/// A decrypted private key of either algorithm (as cached).
#[derive(Clone)]
enum PrivateKey {
    Ed25519(Arc<SigningKey>),
    P256(Arc<P256SigningKey>),
}

/// Outcome of an age-based rotation check.
#[derive(Debug, PartialEq, Eq)]
pub enum RotationOutcome {
    /// A new key was activated.
    Rotated { old: Option<String>, new: String },
    /// Nothing to do (the active key is young enough, another instance just rotated it, or the
    /// issuer has no key of this algorithm to age).
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
    cache: RwLock<HashMap<String, PrivateKey>>,
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

    /// Generates a fresh key (CSPRNG) and its sealed row, not yet inserted. The plaintext is the
    /// 32-byte Ed25519 seed or the 32-byte big-endian P-256 scalar; the public key is stored as a
    /// Multikey (`z6Mk…` or `zDn…`).
    fn new_key_row(
        &self,
        issuer_id: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<signing_key::ActiveModel, KeyError> {
        let (secret, public_key) = match algorithm {
            KeyAlgorithm::Ed25519 => {
                let signing = SigningKey::generate(&mut OsRng);
                (
                    Zeroizing::new(signing.to_bytes()),
                    publish::ed25519_multibase(&signing.verifying_key()),
                )
            }
            KeyAlgorithm::P256 => {
                let signing = P256SigningKey::random(&mut OsRng);
                let mut scalar = signing.to_bytes();
                let mut secret = Zeroizing::new([0u8; 32]);
                secret.copy_from_slice(&scalar);
                scalar.zeroize();
                (secret, publish::p256_multibase(signing.verifying_key()))
            }
        };
        let key_id = db::new_id();
        let aad = KeyAad {
            key_id: key_id.clone(),
            issuer_id: issuer_id.to_owned(),
            algorithm: algorithm.as_str().to_owned(),
        };
        let sealed = envelope::seal_private_key(&self.ring, secret.as_slice(), &aad)?;
        Ok(signing_key::ActiveModel {
            id: Set(key_id),
            issuer_id: Set(issuer_id.to_owned()),
            algorithm: Set(algorithm.as_str().to_owned()),
            state: Set(state::ACTIVE.to_owned()),
            public_key: Set(public_key),
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

    /// Rotates the issuer's active key of `algorithm`: the current one becomes `retired` (still
    /// published), a new one becomes `active`; when the issuer has no key of that algorithm yet,
    /// its first one is created. With `older_than`, rotates only an existing active key created
    /// before it (age-based rotation; a no-op when another instance just rotated, or when there is
    /// no such key). Safe under concurrency on SQLite and PostgreSQL: a lost race is retried.
    pub async fn rotate(
        &self,
        db: &DatabaseConnection,
        issuer: &issuer::Model,
        algorithm: KeyAlgorithm,
        actor: &str,
        older_than: Option<DateTime<Utc>>,
    ) -> Result<RotationOutcome, KeyError> {
        check_algorithm(issuer, algorithm)?;
        if !issuer
            .id_type
            .parse::<IdType>()
            .is_ok_and(IdType::supports_rotation)
        {
            return Err(KeyError::RotationNotSupported(issuer.id.clone()));
        }
        for attempt in 0..20u32 {
            let row = self.new_key_row(&issuer.id, algorithm)?;
            match self
                .try_rotate(db, issuer, algorithm, actor, older_than, row)
                .await
            {
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
        algorithm: KeyAlgorithm,
        actor: &str,
        older_than: Option<DateTime<Utc>>,
        new_row: signing_key::ActiveModel,
    ) -> Result<RotationOutcome, KeyError> {
        let txn = db::begin_write(db).await?;
        let current = find_active(&txn, &issuer.id, algorithm).await?;
        let young_enough = match (older_than, &current) {
            (Some(cutoff), Some(cur)) => cur.created_at >= cutoff,
            // Age-based rotation never creates a key the issuer did not have.
            (Some(_), None) => true,
            (None, _) => false,
        };
        if young_enough {
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
                "algorithm": algorithm.as_str(),
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
    /// transaction, so the issuer can keep signing; revocation is final. Atomic against a
    /// concurrent rotation on any engine: the key is revoked only in the state this transaction
    /// read (a rotation that retired it in between makes the update miss), and a lost race (that
    /// miss, or the replacement losing the one-active-key index) is retried from a fresh read, so
    /// the key always ends revoked and the issuer with exactly one active key.
    pub async fn revoke(
        &self,
        db: &DatabaseConnection,
        issuer: &issuer::Model,
        key_id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<signing_key::Model, KeyError> {
        // The replacement has the revoked key's algorithm (a key's algorithm never changes, so it
        // can be read before the transaction that re-reads the key).
        let algorithm = signing_key::Entity::find_by_id(key_id.to_owned())
            .filter(signing_key::Column::IssuerId.eq(&issuer.id))
            .one(db)
            .await?
            .ok_or(KeyError::NotFound("key"))?
            .algorithm
            .parse::<KeyAlgorithm>()
            .map_err(|e| KeyError::Malformed {
                key_id: key_id.to_owned(),
                reason: e.to_string(),
            })?;
        let rotates = issuer
            .id_type
            .parse::<IdType>()
            .is_ok_and(IdType::supports_rotation);
        for attempt in 0..20u32 {
            let replacement = if rotates {
                Some(self.new_key_row(&issuer.id, algorithm)?)
            } else {
                None
            };
            match self
                .try_revoke(db, issuer, key_id, reason, actor, replacement)
                .await
            {
                Ok(revoked) => {
                    self.forget(&revoked.id);
                    return Ok(revoked);
                }
                Err(KeyError::Db(err)) if db::is_retryable(&err) => {
                    tracing::debug!(attempt, issuer = %issuer.id, key = %key_id, "revocation lost a race; retrying");
                    let jitter = u64::from(rand::random::<u8>() % 20);
                    tokio::time::sleep(Duration::from_millis(5 + jitter + u64::from(attempt) * 5))
                        .await;
                }
                Err(other) => return Err(other),
            }
        }
        Err(KeyError::Contention(issuer.id.clone()))
    }

    async fn try_revoke(
        &self,
        db: &DatabaseConnection,
        issuer: &issuer::Model,
        key_id: &str,
        reason: &str,
        actor: &str,
        replacement: Option<signing_key::ActiveModel>,
    ) -> Result<signing_key::Model, KeyError> {
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
        let now = Utc::now();
        // Conditional on the state read above: on PostgreSQL a rotation that retired this key
        // after our read (or holds its row lock) makes this match no row once it commits.
        let updated = signing_key::Entity::update_many()
            .col_expr(signing_key::Column::State, state::REVOKED.into())
            .col_expr(signing_key::Column::RevokedAt, Some(now).into())
            .col_expr(
                signing_key::Column::RevocationReason,
                Some(reason.to_owned()).into(),
            )
            .filter(signing_key::Column::Id.eq(&key.id))
            .filter(signing_key::Column::State.eq(&key.state))
            .exec(&txn)
            .await?
            .rows_affected;
        if updated == 0 {
            txn.rollback().await?;
            return Err(KeyError::Db(DbErr::RecordNotUpdated));
        }
        let revoked = signing_key::Model {
            state: state::REVOKED.to_owned(),
            revoked_at: Some(now),
            revocation_reason: Some(reason.to_owned()),
            ..key
        };
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
        let key = find_active(db, &issuer.id, KeyAlgorithm::Ed25519)
            .await?
            .ok_or_else(|| KeyError::NoActiveKey(issuer.id.clone()))?;
        let signing_key = self.decrypt(&key)?;
        Ok(ActiveKey {
            verification_method: verification_method_id(issuer, &key),
            key_id: key.id,
            issuer_id: issuer.issuer_id.clone(),
            signing_key,
        })
    }

    /// The issuer's active P-256 key, decrypted. An issuer that has none gets its first one now
    /// (audited as `key.generated` by `actor`), so ES256 works without a prior key-management
    /// step; concurrent first uses on any number of instances end with one key.
    pub async fn active_p256_key(
        &self,
        db: &DatabaseConnection,
        issuer: &issuer::Model,
        actor: &str,
    ) -> Result<ActiveP256Key, KeyError> {
        check_algorithm(issuer, KeyAlgorithm::P256)?;
        let key = match find_active(db, &issuer.id, KeyAlgorithm::P256).await? {
            Some(key) => key,
            None => {
                self.create_first_key(db, issuer, KeyAlgorithm::P256, actor)
                    .await?
            }
        };
        let signing_key = self.decrypt_p256(&key)?;
        Ok(ActiveKey {
            verification_method: verification_method_id(issuer, &key),
            key_id: key.id,
            issuer_id: issuer.issuer_id.clone(),
            signing_key,
        })
    }

    /// Creates the issuer's first active key of `algorithm`, or returns the one a concurrent caller
    /// created first (the partial unique index lets only one in).
    async fn create_first_key(
        &self,
        db: &DatabaseConnection,
        issuer: &issuer::Model,
        algorithm: KeyAlgorithm,
        actor: &str,
    ) -> Result<signing_key::Model, KeyError> {
        for attempt in 0..20u32 {
            let row = self.new_key_row(&issuer.id, algorithm)?;
            let txn = db::begin_write(db).await?;
            let outcome = match find_active(&txn, &issuer.id, algorithm).await {
                Ok(Some(existing)) => Ok(existing),
                Ok(None) => self.insert_prepared_key(&txn, row, actor).await,
                Err(err) => Err(err.into()),
            };
            let outcome = match outcome {
                Ok(key) => txn.commit().await.map(|()| key).map_err(KeyError::from),
                Err(err) => Err(err),
            };
            match outcome {
                Ok(key) => return Ok(key),
                Err(KeyError::Db(err)) if db::is_retryable(&err) => {
                    tracing::debug!(attempt, issuer = %issuer.id, %algorithm, "first key lost a race; re-reading");
                    if let Some(winner) = find_active(db, &issuer.id, algorithm).await? {
                        return Ok(winner);
                    }
                    let jitter = u64::from(rand::random::<u8>() % 20);
                    tokio::time::sleep(Duration::from_millis(5 + jitter + u64::from(attempt) * 5))
                        .await;
                }
                Err(other) => return Err(other),
            }
        }
        Err(KeyError::Contention(issuer.id.clone()))
    }

    /// Decrypts a stored Ed25519 key, caching the result.
    pub fn decrypt(&self, key: &signing_key::Model) -> Result<Arc<SigningKey>, KeyError> {
        match self.decrypt_any(key)? {
            PrivateKey::Ed25519(signing) => Ok(signing),
            PrivateKey::P256(_) => Err(wrong_algorithm(key, KeyAlgorithm::Ed25519)),
        }
    }

    /// Decrypts a stored P-256 key, caching the result.
    pub fn decrypt_p256(&self, key: &signing_key::Model) -> Result<Arc<P256SigningKey>, KeyError> {
        match self.decrypt_any(key)? {
            PrivateKey::P256(signing) => Ok(signing),
            PrivateKey::Ed25519(_) => Err(wrong_algorithm(key, KeyAlgorithm::P256)),
        }
    }

    /// Decrypts a stored key of its stored algorithm, checks it against the stored public key, and
    /// caches it.
    fn decrypt_any(&self, key: &signing_key::Model) -> Result<PrivateKey, KeyError> {
        if let Ok(cache) = self.cache.read()
            && let Some(hit) = cache.get(&key.id)
        {
            return Ok(hit.clone());
        }
        let malformed = |reason: &str| KeyError::Malformed {
            key_id: key.id.clone(),
            reason: reason.to_owned(),
        };
        let algorithm: KeyAlgorithm = key
            .algorithm
            .parse()
            .map_err(|e: UnknownAlgorithm| malformed(&e.to_string()))?;
        let plaintext = envelope::open_private_key(&self.ring, &sealed_of(key)?, &aad(key))?;
        let bytes: &[u8; 32] = plaintext
            .as_slice()
            .try_into()
            .map_err(|_| malformed("private key is not 32 bytes"))?;
        let (private, public) = match algorithm {
            KeyAlgorithm::Ed25519 => {
                let signing = Arc::new(SigningKey::from_bytes(bytes));
                let public = publish::ed25519_multibase(&signing.verifying_key());
                (PrivateKey::Ed25519(signing), public)
            }
            KeyAlgorithm::P256 => {
                let signing = P256SigningKey::from_bytes(bytes.into())
                    .map_err(|_| malformed("private key is not a P-256 scalar"))?;
                let public = publish::p256_multibase(signing.verifying_key());
                (PrivateKey::P256(Arc::new(signing)), public)
            }
        };
        if public != key.public_key {
            return Err(malformed(
                "private key does not match the stored public key",
            ));
        }
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(key.id.clone(), private.clone());
        }
        Ok(private)
    }

    /// Drops a key from the cache.
    pub fn forget(&self, key_id: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(key_id);
        }
    }

    /// Algorithms of which the issuer has an active key.
    pub async fn active_algorithms(
        db: &impl ConnectionTrait,
        issuer_id: &str,
    ) -> Result<Vec<KeyAlgorithm>, DbErr> {
        let keys = signing_key::Entity::find()
            .filter(signing_key::Column::IssuerId.eq(issuer_id))
            .filter(signing_key::Column::State.eq(state::ACTIVE))
            .all(db)
            .await?;
        Ok(KeyAlgorithm::ALL
            .into_iter()
            .filter(|a| keys.iter().any(|k| k.algorithm == a.as_str()))
            .collect())
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

/// The issuer's active key of `algorithm`, if any.
async fn find_active(
    db: &impl ConnectionTrait,
    issuer_id: &str,
    algorithm: KeyAlgorithm,
) -> Result<Option<signing_key::Model>, DbErr> {
    signing_key::Entity::find()
        .filter(signing_key::Column::IssuerId.eq(issuer_id))
        .filter(signing_key::Column::Algorithm.eq(algorithm.as_str()))
        .filter(signing_key::Column::State.eq(state::ACTIVE))
        .one(db)
        .await
}

/// did:key issuers are their one Ed25519 key: no other algorithm can be named by their identifier.
fn check_algorithm(issuer: &issuer::Model, algorithm: KeyAlgorithm) -> Result<(), KeyError> {
    if algorithm != KeyAlgorithm::Ed25519 && issuer.id_type == IdType::DidKey.as_str() {
        return Err(KeyError::AlgorithmNotSupported {
            issuer: issuer.id.clone(),
            algorithm,
        });
    }
    Ok(())
}

fn wrong_algorithm(key: &signing_key::Model, wanted: KeyAlgorithm) -> KeyError {
    KeyError::Malformed {
        key_id: key.id.clone(),
        reason: format!("it is a {} key, not {wanted}", key.algorithm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(
                algorithm.as_str().parse::<KeyAlgorithm>().unwrap(),
                algorithm
            );
        }
        assert_eq!(KeyAlgorithm::P256.as_str(), "P-256");
        let err = "ES256".parse::<KeyAlgorithm>().unwrap_err().to_string();
        assert!(err.contains("ES256") && err.contains("P-256"), "{err}");
    }

    #[test]
    fn p256_keys_are_sealed_and_open_to_the_same_key() {
        let ring = KekRing::new(vec![envelope::Kek::new("k1", [7; 32]).unwrap()], "k1").unwrap();
        let store = KeyStore::new(ring);
        let row = store.new_key_row("issuer-1", KeyAlgorithm::P256).unwrap();
        let model = signing_key::Model {
            id: row.id.clone().unwrap(),
            issuer_id: row.issuer_id.clone().unwrap(),
            algorithm: row.algorithm.clone().unwrap(),
            state: row.state.clone().unwrap(),
            public_key: row.public_key.clone().unwrap(),
            kek_id: row.kek_id.clone().unwrap(),
            nonce: row.nonce.clone().unwrap(),
            ciphertext: row.ciphertext.clone().unwrap(),
            created_at: Utc::now(),
            retired_at: None,
            revoked_at: None,
            revocation_reason: None,
        };
        assert_eq!(model.algorithm, "P-256");
        assert!(model.public_key.starts_with("zDn"), "{}", model.public_key);
        let key = store.decrypt_p256(&model).unwrap();
        assert_eq!(
            publish::p256_multibase(key.verifying_key()),
            model.public_key
        );
        let scalar = key.to_bytes();
        assert!(!model.ciphertext.windows(32).any(|w| w == &scalar[..]));
        assert!(store.decrypt(&model).is_err(), "not an Ed25519 key");
        // The AAD binds the algorithm: the same ciphertext labelled Ed25519 does not open.
        let relabelled = signing_key::Model {
            algorithm: "Ed25519".into(),
            ..model
        };
        let fresh = KeyStore::new(store.ring().clone());
        assert!(matches!(
            fresh.decrypt(&relabelled),
            Err(KeyError::Envelope(_))
        ));
    }
}
