//! Batch idempotency keys get a lease: the instance working on a pending key renews
//! `lease_until` while it works, so a key whose worker died is taken over as soon as the lease runs
//! out (instead of after a fixed 15 minutes); `owner` names the process that holds it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    LeaseUntil,
    Owner,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .add_column(timestamp_with_time_zone_null(IdempotencyKeys::LeaseUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .add_column(string_null(IdempotencyKeys::Owner))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            IdempotencyKeys::Owner.into_iden(),
            IdempotencyKeys::LeaseUntil.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(IdempotencyKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
