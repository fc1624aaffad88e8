//! Database migrations for oxbadge (sea-orm-migration). Migrations are never edited after they land:
//! a change is a new migration, and every migration has a working `down`. Each applied migration's
//! source text is hashed into `oxbadge_migration_checksums` (see [`checksums`]), and start-up refuses
//! a database whose applied migrations were edited since.
pub use sea_orm_migration::prelude::*;

pub mod checksums;

pub use checksums::{ChecksumError, MigrationSource};

/// Declares every migration exactly once, in order: its module, its place in
/// [`Migrator::migrations`], and its source text (embedded at compile time for the checksums).
macro_rules! migrations {
    ($($module:ident),+ $(,)?) => {
        $(mod $module;)+

        /// All migrations, in order.
        pub struct Migrator;

        #[async_trait::async_trait]
        impl MigratorTrait for Migrator {
            fn migrations() -> Vec<Box<dyn MigrationTrait>> {
                vec![$(Box::new($module::Migration)),+]
            }
        }

        /// The source text of every migration, in order, as this build was compiled from.
        pub const SOURCES: &[MigrationSource] = &[$(
            MigrationSource {
                name: stringify!($module),
                source: include_str!(concat!(stringify!($module), ".rs")),
            }
        ),+];
    };
}

// One line per migration, appended at the end.
migrations! {
    m20261123_000001_oauth_clients_and_tokens,
    m20261123_000002_issuers_keys_audit,
    m20261123_000003_achievements_credentials_status,
    m20261201_000001_accounts,
    m20261201_000002_memberships,
    m20261201_000005_idempotency_lease,
    m20261202_000001_oauth_client_metadata,
    m20261202_000002_oauth_grants,
    m20261202_000020_ob3_holdings,
    m20261203_000010_host_connections,
}
