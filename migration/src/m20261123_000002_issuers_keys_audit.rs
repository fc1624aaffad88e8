//! Issuers, their signing keys (private halves only as AES-256-GCM ciphertext), and the audit trail.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Issuers {
    Table,
    Id,
    IssuerId,
    IdType,
    Name,
    Url,
    Email,
    Description,
    Image,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Id,
    IssuerId,
    Algorithm,
    State,
    PublicKey,
    KekId,
    Nonce,
    Ciphertext,
    CreatedAt,
    RetiredAt,
    RevokedAt,
    RevocationReason,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OccurredAt,
    Actor,
    Action,
    TargetType,
    TargetId,
    Details,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Issuers::Table)
                    .col(string(Issuers::Id).primary_key())
                    .col(string_uniq(Issuers::IssuerId))
                    .col(string(Issuers::IdType))
                    .col(string(Issuers::Name))
                    .col(string_null(Issuers::Url))
                    .col(string_null(Issuers::Email))
                    .col(text_null(Issuers::Description))
                    .col(string_null(Issuers::Image))
                    .col(timestamp_with_time_zone(Issuers::CreatedAt))
                    .col(timestamp_with_time_zone(Issuers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string(SigningKeys::Id).primary_key())
                    .col(string(SigningKeys::IssuerId))
                    .col(string(SigningKeys::Algorithm))
                    .col(string(SigningKeys::State))
                    .col(string(SigningKeys::PublicKey))
                    .col(string(SigningKeys::KekId))
                    .col(blob(SigningKeys::Nonce))
                    .col(blob(SigningKeys::Ciphertext))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::RetiredAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::RevokedAt))
                    .col(text_null(SigningKeys::RevocationReason))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_signing_keys_issuer")
                            .from(SigningKeys::Table, SigningKeys::IssuerId)
                            .to(Issuers::Table, Issuers::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_signing_keys_issuer")
                    .table(SigningKeys::Table)
                    .col(SigningKeys::IssuerId)
                    .to_owned(),
            )
            .await?;
        // Exactly one active key per issuer and algorithm, enforced by the database itself so that
        // concurrent rotations on any number of instances cannot leave two. Partial unique indexes
        // have the same syntax on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_signing_keys_one_active \
                 ON signing_keys (issuer_id, algorithm) WHERE state = 'active'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(string(AuditEvents::Id).primary_key())
                    .col(timestamp_with_time_zone(AuditEvents::OccurredAt))
                    .col(string(AuditEvents::Actor))
                    .col(string(AuditEvents::Action))
                    .col(string(AuditEvents::TargetType))
                    .col(string(AuditEvents::TargetId))
                    .col(text(AuditEvents::Details))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_order")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OccurredAt)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(SigningKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Issuers::Table).to_owned())
            .await
    }
}
