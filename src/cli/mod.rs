//! Command families of the `oxbadge` binary, one file each; `main.rs` only parses and dispatches.

pub mod clients;
pub mod db;
pub mod hosts;
pub mod users;
