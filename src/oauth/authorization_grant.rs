//! The life of an authorization code as a pure state machine: `Pending` until its single exchange,
//! then `Exchanged`; a second presentation of an exchanged code is a replay, which moves the grant
//! to `Revoked` (and the caller revokes every token descending from it). sea-orm only persists the
//! states (`authorization_codes.exchanged_at` / `revoked_at`).

use chrono::{DateTime, Duration, Utc};

/// How long a code may wait for its exchange (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const CODE_LIFETIME: Duration = Duration::minutes(10);

/// Where a grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// Issued, not yet exchanged; valid until `expires_at`.
    Pending { expires_at: DateTime<Utc> },
    /// Exchanged once, at `at`.
    Exchanged { at: DateTime<Utc> },
    /// Ended (a replay was detected, or the user withdrew the consent).
    Revoked { at: DateTime<Utc> },
}

/// Why an exchange is refused; every variant is `invalid_grant` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeRefused {
    /// The code was already exchanged: a replay. The grant must be revoked.
    #[error("the authorization code was already used")]
    Replayed,
    /// The code's lifetime is over.
    #[error("the authorization code has expired")]
    Expired,
    /// The grant was revoked.
    #[error("the authorization code was revoked")]
    Revoked,
}

impl GrantState {
    /// The state of a stored code.
    pub fn from_columns(
        expires_at: DateTime<Utc>,
        exchanged_at: Option<DateTime<Utc>>,
        revoked_at: Option<DateTime<Utc>>,
    ) -> Self {
        match (revoked_at, exchanged_at) {
            (Some(at), _) => Self::Revoked { at },
            (None, Some(at)) => Self::Exchanged { at },
            (None, None) => Self::Pending { expires_at },
        }
    }

    /// The move an exchange at `now` makes: `Exchanged`, or why not.
    pub fn exchange(self, now: DateTime<Utc>) -> Result<GrantState, ExchangeRefused> {
        match self {
            Self::Pending { expires_at } if now < expires_at => Ok(Self::Exchanged { at: now }),
            Self::Pending { .. } => Err(ExchangeRefused::Expired),
            Self::Exchanged { .. } => Err(ExchangeRefused::Replayed),
            Self::Revoked { .. } => Err(ExchangeRefused::Revoked),
        }
    }

    /// The move a detected replay (or a withdrawn consent) makes: `Revoked` (idempotent).
    pub fn revoke(self, now: DateTime<Utc>) -> GrantState {
        match self {
            Self::Revoked { at } => Self::Revoked { at },
            _ => Self::Revoked { at: now },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_exchanged_once_then_a_replay_revokes_it() {
        let now = Utc::now();
        let pending = GrantState::from_columns(now + CODE_LIFETIME, None, None);
        let exchanged = pending.exchange(now).unwrap();
        assert_eq!(exchanged, GrantState::Exchanged { at: now });
        assert_eq!(exchanged.exchange(now), Err(ExchangeRefused::Replayed));
        let revoked = exchanged.revoke(now + Duration::seconds(1));
        assert!(matches!(revoked, GrantState::Revoked { .. }));
        assert_eq!(revoked.exchange(now), Err(ExchangeRefused::Revoked));
        assert_eq!(revoked.revoke(now + Duration::hours(1)), revoked);
    }

    #[test]
    fn an_expired_code_is_refused() {
        let now = Utc::now();
        let pending = GrantState::from_columns(now + CODE_LIFETIME, None, None);
        assert_eq!(
            pending.exchange(now + CODE_LIFETIME),
            Err(ExchangeRefused::Expired)
        );
        assert!(
            pending
                .exchange(now + CODE_LIFETIME - Duration::seconds(1))
                .is_ok()
        );
    }

    #[test]
    fn stored_columns_map_to_states() {
        let now = Utc::now();
        assert!(matches!(
            GrantState::from_columns(now, Some(now), Some(now)),
            GrantState::Revoked { .. }
        ));
        assert!(matches!(
            GrantState::from_columns(now, Some(now), None),
            GrantState::Exchanged { .. }
        ));
    }
}
