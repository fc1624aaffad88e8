//! Connections to other OB 3.0 hosts (oxbadge as a Service Consumer): who owns the connection (an
//! earner, or an issuer that pushes credentials), the remote host's endpoints read from its
//! Service Description Document, our client registration there, and the tokens its person granted.
//! Every secret (our client secret at the host, access and refresh tokens, the PKCE verifier of an
//! authorization in progress) is sealed with the KEK ring, bound to the row; the pending
//! authorization's `state` is stored only as a SHA-256 hash.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum HostConnections {
    Table,
    Id,
    OwnerKind,
    OwnerId,
    CreatedBy,
    BaseUrl,
    ApiBase,
    HostName,
    RegistrationUrl,
    AuthorizationUrl,
    TokenUrl,
    RefreshUrl,
    RevocationUrl,
    ClientId,
    ClientSecretSealed,
    AccessTokenSealed,
    RefreshTokenSealed,
    TokenExpiresAt,
    Scopes,
    Status,
    StateHash,
    PkceVerifierSealed,
    PendingExpiresAt,
    LastError,
    RemoteProfile,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(HostConnections::Table)
                    .col(string(HostConnections::Id).primary_key())
                    .col(string(HostConnections::OwnerKind))
                    .col(string(HostConnections::OwnerId))
                    .col(string(HostConnections::CreatedBy))
                    .col(text(HostConnections::BaseUrl))
                    .col(text(HostConnections::ApiBase))
                    .col(text_null(HostConnections::HostName))
                    .col(text(HostConnections::RegistrationUrl))
                    .col(text(HostConnections::AuthorizationUrl))
                    .col(text(HostConnections::TokenUrl))
                    .col(text_null(HostConnections::RefreshUrl))
                    .col(text_null(HostConnections::RevocationUrl))
                    .col(text(HostConnections::ClientId))
                    .col(text_null(HostConnections::ClientSecretSealed))
                    .col(text_null(HostConnections::AccessTokenSealed))
                    .col(text_null(HostConnections::RefreshTokenSealed))
                    .col(timestamp_with_time_zone_null(
                        HostConnections::TokenExpiresAt,
                    ))
                    .col(text(HostConnections::Scopes))
                    .col(string(HostConnections::Status))
                    .col(string_null(HostConnections::StateHash))
                    .col(text_null(HostConnections::PkceVerifierSealed))
                    .col(timestamp_with_time_zone_null(
                        HostConnections::PendingExpiresAt,
                    ))
                    .col(text_null(HostConnections::LastError))
                    .col(text_null(HostConnections::RemoteProfile))
                    .col(timestamp_with_time_zone(HostConnections::CreatedAt))
                    .col(timestamp_with_time_zone(HostConnections::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_host_connections_created_by")
                            .from(HostConnections::Table, HostConnections::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_host_connections_owner")
                    .table(HostConnections::Table)
                    .col(HostConnections::OwnerKind)
                    .col(HostConnections::OwnerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_host_connections_state")
                    .table(HostConnections::Table)
                    .col(HostConnections::StateHash)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(HostConnections::Table).to_owned())
            .await
    }
}
