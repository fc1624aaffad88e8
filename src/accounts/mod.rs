//! The people side: users, sessions, issuer memberships and roles.

pub mod memberships;
