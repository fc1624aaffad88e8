//! Tenancy: issuer memberships (a client or a user is an owner, issuer or viewer of an issuer), the
//! `global` flag of clients (every client that exists before this migration stays global, so existing
//! deployments keep working), client redirect URIs, and the user an access token is bound to.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IssuerMemberships {
    Table,
    Id,
    PrincipalKind,
    PrincipalId,
    IssuerId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Issuers {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OauthClients {
    Table,
    Global,
    RedirectUris,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AccessTokens {
    Table,
    UserId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IssuerMemberships::Table)
                    .col(string(IssuerMemberships::Id).primary_key())
                    .col(string(IssuerMemberships::PrincipalKind))
                    .col(string(IssuerMemberships::PrincipalId))
                    .col(string(IssuerMemberships::IssuerId))
                    .col(string(IssuerMemberships::Role))
                    .col(timestamp_with_time_zone(IssuerMemberships::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_issuer_memberships_issuer")
                            .from(IssuerMemberships::Table, IssuerMemberships::IssuerId)
                            .to(Issuers::Table, Issuers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_issuer_memberships_principal_issuer")
                    .table(IssuerMemberships::Table)
                    .col(IssuerMemberships::PrincipalKind)
                    .col(IssuerMemberships::PrincipalId)
                    .col(IssuerMemberships::IssuerId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_issuer_memberships_issuer")
                    .table(IssuerMemberships::Table)
                    .col(IssuerMemberships::IssuerId)
                    .to_owned(),
            )
            .await?;
        // One column per ALTER: SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(OauthClients::Table)
                    .add_column(boolean(OauthClients::Global).default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OauthClients::Table)
                    .add_column(text(OauthClients::RedirectUris).default(""))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OauthClients::Table)
                    .add_column(timestamp_with_time_zone_null(OauthClients::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AccessTokens::Table)
                    .add_column(string_null(AccessTokens::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_access_tokens_user")
                    .table(AccessTokens::Table)
                    .col(AccessTokens::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_access_tokens_user")
                    .table(AccessTokens::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AccessTokens::Table)
                    .drop_column(AccessTokens::UserId)
                    .to_owned(),
            )
            .await?;
        for column in [
            OauthClients::UpdatedAt,
            OauthClients::RedirectUris,
            OauthClients::Global,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(OauthClients::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(IssuerMemberships::Table).to_owned())
            .await
    }
}
