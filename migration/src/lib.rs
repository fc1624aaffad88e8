//! Database migrations for oxbadge (sea-orm-migration). Migrations are never edited after they land:
//! a change is a new migration, and every migration has a working `down`.
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_oauth_clients_and_tokens;
mod m20261123_000002_issuers_keys_audit;
mod m20261123_000003_achievements_credentials_status;
mod m20261201_000002_memberships;
mod m20261201_000005_idempotency_lease;
mod m20261201_000001_accounts;

/// All migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_oauth_clients_and_tokens::Migration),
            Box::new(m20261123_000002_issuers_keys_audit::Migration),
            Box::new(m20261123_000003_achievements_credentials_status::Migration),
            Box::new(m20261201_000002_memberships::Migration),
            Box::new(m20261201_000005_idempotency_lease::Migration),
            Box::new(m20261201_000001_accounts::Migration),
        ]
    }
}
