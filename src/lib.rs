//! oxbadge: an Open Badges 3.0 issuer and verifier service.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod accounts;
pub mod app;
pub mod cache;
pub mod clock;
pub mod compute;
pub mod config;
pub mod connections;
pub mod db;
pub mod di;
pub mod error;
pub mod http;
pub mod invalidation;
pub mod issue;
pub mod issuers;
pub mod jsonld;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod ob;
pub mod ob3;
pub mod rate_limit;
pub mod status;
pub mod telemetry;
pub mod verify;
pub mod web;
pub mod writer;

pub use app::{App, AppState};
pub use config::Settings;
