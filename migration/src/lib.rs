//! Database migrations for oxbadge (sea-orm-migration).
pub use sea_orm_migration::prelude::*;
