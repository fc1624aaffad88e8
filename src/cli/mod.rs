//! The command families of the `oxbadge` binary, one module each.

pub mod clients;
pub mod users;
