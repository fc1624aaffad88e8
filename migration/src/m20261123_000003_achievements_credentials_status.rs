//! Achievements, issued credentials, status lists with their allocated entries, and batch
//! idempotency records.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Achievements {
    Table,
    Id,
    IssuerId,
    Name,
    Description,
    Document,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Credentials {
    Table,
    Id,
    CredentialUri,
    IssuerId,
    AchievementId,
    Format,
    Document,
    KeyId,
    ValidFrom,
    ValidUntil,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StatusLists {
    Table,
    Id,
    IssuerId,
    Purpose,
    Size,
    Allocated,
    State,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum StatusEntries {
    Table,
    ListId,
    Idx,
    CredentialId,
    Value,
    Reason,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Id,
    ClientId,
    Key,
    RequestHash,
    Response,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Issuers {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Achievements::Table)
                    .col(string(Achievements::Id).primary_key())
                    .col(string(Achievements::IssuerId))
                    .col(string(Achievements::Name))
                    .col(text(Achievements::Description))
                    .col(text(Achievements::Document))
                    .col(timestamp_with_time_zone(Achievements::CreatedAt))
                    .col(timestamp_with_time_zone(Achievements::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_achievements_issuer")
                            .from(Achievements::Table, Achievements::IssuerId)
                            .to(Issuers::Table, Issuers::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_achievements_issuer")
                    .table(Achievements::Table)
                    .col(Achievements::IssuerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Credentials::Table)
                    .col(string(Credentials::Id).primary_key())
                    .col(string_uniq(Credentials::CredentialUri))
                    .col(string(Credentials::IssuerId))
                    .col(string_null(Credentials::AchievementId))
                    .col(string(Credentials::Format))
                    .col(text(Credentials::Document))
                    .col(string(Credentials::KeyId))
                    .col(timestamp_with_time_zone(Credentials::ValidFrom))
                    .col(timestamp_with_time_zone_null(Credentials::ValidUntil))
                    .col(timestamp_with_time_zone(Credentials::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_credentials_issuer")
                            .from(Credentials::Table, Credentials::IssuerId)
                            .to(Issuers::Table, Issuers::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_credentials_achievement")
                            .from(Credentials::Table, Credentials::AchievementId)
                            .to(Achievements::Table, Achievements::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credentials_created")
                    .table(Credentials::Table)
                    .col(Credentials::CreatedAt)
                    .col(Credentials::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StatusLists::Table)
                    .col(string(StatusLists::Id).primary_key())
                    .col(string(StatusLists::IssuerId))
                    .col(string(StatusLists::Purpose))
                    .col(integer(StatusLists::Size))
                    .col(integer(StatusLists::Allocated))
                    .col(string(StatusLists::State))
                    .col(big_integer(StatusLists::Version))
                    .col(timestamp_with_time_zone(StatusLists::CreatedAt))
                    .col(timestamp_with_time_zone(StatusLists::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_status_lists_issuer")
                            .from(StatusLists::Table, StatusLists::IssuerId)
                            .to(Issuers::Table, Issuers::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // At most one open list per issuer and purpose, whatever number of instances allocate.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_status_lists_one_open \
                 ON status_lists (issuer_id, purpose) WHERE state = 'open'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StatusEntries::Table)
                    .col(string(StatusEntries::ListId))
                    .col(integer(StatusEntries::Idx))
                    .col(string(StatusEntries::CredentialId))
                    .col(small_integer(StatusEntries::Value))
                    .col(text_null(StatusEntries::Reason))
                    .col(timestamp_with_time_zone(StatusEntries::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(StatusEntries::ListId)
                            .col(StatusEntries::Idx),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_status_entries_list")
                            .from(StatusEntries::Table, StatusEntries::ListId)
                            .to(StatusLists::Table, StatusLists::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_status_entries_credential")
                    .table(StatusEntries::Table)
                    .col(StatusEntries::CredentialId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(string(IdempotencyKeys::Id).primary_key())
                    .col(string(IdempotencyKeys::ClientId))
                    .col(string(IdempotencyKeys::Key))
                    .col(string(IdempotencyKeys::RequestHash))
                    .col(text(IdempotencyKeys::Response))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_idempotency_client_key")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::ClientId)
                    .col(IdempotencyKeys::Key)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            StatusEntries::Table.into_iden(),
            StatusLists::Table.into_iden(),
            Credentials::Table.into_iden(),
            Achievements::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
