//! Earners' collections for the OB 3.0 API: the recipient of each issued credential as an indexed
//! key (`mailto:<normalized email>` or the subject's DID/URL), backfilled from the stored documents
//! where the document names it; linked DIDs and their single-use link challenges; credentials
//! earners upload from other issuers (the original bytes); and each earner's collection as dense
//! positions 1..N (`ob3_holdings`), so any `offset` page is an index range read and the total is
//! one stored number (`ob3_holders.total`).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Credentials {
    Table,
    Id,
    RecipientKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Ob3Holders {
    Table,
    UserId,
    Total,
    SyncMarks,
    Profile,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Ob3Holdings {
    Table,
    UserId,
    Position,
    RecipientKey,
    CredentialId,
    UploadId,
    AddedAt,
}

#[derive(DeriveIden)]
enum Ob3Uploads {
    Table,
    Id,
    UserId,
    IssuerId,
    CredentialId,
    Format,
    Body,
    ValidFrom,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserDids {
    Table,
    Did,
    UserId,
    LinkedAt,
}

#[derive(DeriveIden)]
enum DidChallenges {
    Table,
    NonceHash,
    UserId,
    ExpiresAt,
}

fn user_fk(table: impl IntoIden, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("user_id"))
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Credentials::Table)
                    .add_column(string_null(Credentials::RecipientKey))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credentials_recipient")
                    .table(Credentials::Table)
                    .col(Credentials::RecipientKey)
                    .col(Credentials::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Email recipients are stored only as salted hashes, so only subjects named by id can be
        // backfilled; JWT documents keep their subject in the (undecoded) payload.
        let backfill = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "UPDATE credentials SET recipient_key = (document::jsonb -> 'credentialSubject' ->> 'id') \
                 WHERE format <> 'jwt' AND recipient_key IS NULL"
            }
            _ => {
                "UPDATE credentials SET recipient_key = json_extract(document, '$.credentialSubject.id') \
                 WHERE format <> 'jwt' AND recipient_key IS NULL AND json_valid(document)"
            }
        };
        manager.get_connection().execute_unprepared(backfill).await?;

        manager
            .create_table(
                Table::create()
                    .table(Ob3Holders::Table)
                    .col(string(Ob3Holders::UserId).primary_key())
                    .col(big_integer(Ob3Holders::Total).default(0))
                    .col(text(Ob3Holders::SyncMarks))
                    .col(text_null(Ob3Holders::Profile))
                    .col(timestamp_with_time_zone(Ob3Holders::UpdatedAt))
                    .foreign_key(&mut user_fk(Ob3Holders::Table, "fk_ob3_holders_user"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Ob3Uploads::Table)
                    .col(string(Ob3Uploads::Id).primary_key())
                    .col(string(Ob3Uploads::UserId))
                    .col(string(Ob3Uploads::IssuerId))
                    .col(string(Ob3Uploads::CredentialId))
                    .col(string(Ob3Uploads::Format))
                    .col(text(Ob3Uploads::Body))
                    .col(timestamp_with_time_zone(Ob3Uploads::ValidFrom))
                    .col(timestamp_with_time_zone(Ob3Uploads::CreatedAt))
                    .col(timestamp_with_time_zone(Ob3Uploads::UpdatedAt))
                    .foreign_key(&mut user_fk(Ob3Uploads::Table, "fk_ob3_uploads_user"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ob3_uploads_equality")
                    .table(Ob3Uploads::Table)
                    .col(Ob3Uploads::UserId)
                    .col(Ob3Uploads::IssuerId)
                    .col(Ob3Uploads::CredentialId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Ob3Holdings::Table)
                    .col(string(Ob3Holdings::UserId))
                    .col(big_integer(Ob3Holdings::Position))
                    .col(string_null(Ob3Holdings::RecipientKey))
                    .col(string_null(Ob3Holdings::CredentialId))
                    .col(string_null(Ob3Holdings::UploadId))
                    .col(timestamp_with_time_zone(Ob3Holdings::AddedAt))
                    .primary_key(
                        Index::create()
                            .col(Ob3Holdings::UserId)
                            .col(Ob3Holdings::Position),
                    )
                    .foreign_key(&mut user_fk(Ob3Holdings::Table, "fk_ob3_holdings_user"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ob3_holdings_credential")
                            .from(Ob3Holdings::Table, Ob3Holdings::CredentialId)
                            .to(Credentials::Table, Credentials::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ob3_holdings_upload")
                            .from(Ob3Holdings::Table, Ob3Holdings::UploadId)
                            .to(Ob3Uploads::Table, Ob3Uploads::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_ob3_holdings_credential", Ob3Holdings::CredentialId),
            ("idx_ob3_holdings_upload", Ob3Holdings::UploadId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Ob3Holdings::Table)
                        .col(Ob3Holdings::UserId)
                        .col(col)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_ob3_holdings_added")
                    .table(Ob3Holdings::Table)
                    .col(Ob3Holdings::UserId)
                    .col(Ob3Holdings::AddedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserDids::Table)
                    .col(string(UserDids::Did).primary_key())
                    .col(string(UserDids::UserId))
                    .col(timestamp_with_time_zone(UserDids::LinkedAt))
                    .foreign_key(&mut user_fk(UserDids::Table, "fk_user_dids_user"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_dids_user")
                    .table(UserDids::Table)
                    .col(UserDids::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DidChallenges::Table)
                    .col(string(DidChallenges::NonceHash).primary_key())
                    .col(string(DidChallenges::UserId))
                    .col(timestamp_with_time_zone(DidChallenges::ExpiresAt))
                    .foreign_key(&mut user_fk(DidChallenges::Table, "fk_did_challenges_user"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DidChallenges::Table.into_iden(),
            UserDids::Table.into_iden(),
            Ob3Holdings::Table.into_iden(),
            Ob3Uploads::Table.into_iden(),
            Ob3Holders::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_credentials_recipient")
                    .table(Credentials::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Credentials::Table)
                    .drop_column(Credentials::RecipientKey)
                    .to_owned(),
            )
            .await
    }
}
