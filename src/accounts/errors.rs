//! What can go wrong on the people side. The edges map each variant to a status (JSON) or a
//! message on the page (HTML); the doc comment of each variant says which status.

/// Errors of the accounts domain.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// 401: wrong email or password. Also what a locked, disabled or unknown account answers, so
    /// the answer never tells which one it was.
    #[error("the email address or password is not correct")]
    InvalidCredentials,
    /// 403: the password was right but the email address is not confirmed yet (a new link was sent).
    #[error("confirm your email address first: we have sent you a new link")]
    EmailNotVerified,
    /// 422: the email address cannot be used.
    #[error("{0}")]
    InvalidEmail(String),
    /// 422: the display name cannot be used.
    #[error("{0}")]
    InvalidDisplayName(String),
    /// 422: the new password is too short or too common.
    #[error("{0}")]
    WeakPassword(&'static str),
    /// 409: an account with this email address exists (admin creation only; self-service
    /// registration never says so).
    #[error("an account with this email address already exists")]
    EmailTaken,
    /// 403: self-service registration is turned off on this instance.
    #[error("self-service registration is turned off on this instance")]
    RegistrationClosed,
    /// 400: the link is unknown, used or expired.
    #[error("this link is invalid, has already been used or has expired")]
    InvalidLink,
    /// 404: no such user or session.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 429: too many sign-in attempts from this address.
    #[error("too many attempts from this address; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 500: the database failed.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// 500: hashing failed (never carries the password).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}
