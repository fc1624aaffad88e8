//! The authorization-code flow's state: single-use authorization codes (only their SHA-256 stored,
//! bound to client, user, redirect URI and PKCE challenge), refresh tokens grouped in families (one
//! family per exchanged code; rotation links each token to its successor, any reuse revokes the
//! family), remembered consents per (user, client), and the grant (authorization code) each
//! user-bound access token descends from, so a replayed code or a revoked family ends them all.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum AuthorizationCodes {
    Table,
    Id,
    CodeHash,
    ClientId,
    UserId,
    RedirectUri,
    Scopes,
    CodeChallenge,
    CreatedAt,
    ExpiresAt,
    ExchangedAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone)]
enum RefreshTokens {
    Table,
    Id,
    TokenHash,
    GrantId,
    ClientId,
    UserId,
    Scopes,
    CreatedAt,
    ExpiresAt,
    FamilyExpiresAt,
    ConsumedAt,
    ReplacedBy,
    RevokedAt,
}

#[derive(DeriveIden, Clone)]
enum OauthConsents {
    Table,
    Id,
    UserId,
    ClientId,
    Scopes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AccessTokens {
    Table,
    GrantId,
}

#[derive(DeriveIden)]
enum OauthClients {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

fn client_fk(table: impl IntoIden + Clone, column: impl IntoIden, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(OauthClients::Table, OauthClients::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn user_fk(table: impl IntoIden + Clone, column: impl IntoIden, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthorizationCodes::Table)
                    .col(string(AuthorizationCodes::Id).primary_key())
                    .col(string_uniq(AuthorizationCodes::CodeHash))
                    .col(string(AuthorizationCodes::ClientId))
                    .col(string(AuthorizationCodes::UserId))
                    .col(text(AuthorizationCodes::RedirectUri))
                    .col(text(AuthorizationCodes::Scopes))
                    .col(string(AuthorizationCodes::CodeChallenge))
                    .col(timestamp_with_time_zone(AuthorizationCodes::CreatedAt))
                    .col(timestamp_with_time_zone(AuthorizationCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(AuthorizationCodes::ExchangedAt))
                    .col(timestamp_with_time_zone_null(AuthorizationCodes::RevokedAt))
                    .foreign_key(&mut client_fk(
                        AuthorizationCodes::Table,
                        AuthorizationCodes::ClientId,
                        "fk_authorization_codes_client",
                    ))
                    .foreign_key(&mut user_fk(
                        AuthorizationCodes::Table,
                        AuthorizationCodes::UserId,
                        "fk_authorization_codes_user",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_authorization_codes_expires")
                    .table(AuthorizationCodes::Table)
                    .col(AuthorizationCodes::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(string(RefreshTokens::Id).primary_key())
                    .col(string_uniq(RefreshTokens::TokenHash))
                    .col(string(RefreshTokens::GrantId))
                    .col(string(RefreshTokens::ClientId))
                    .col(string(RefreshTokens::UserId))
                    .col(text(RefreshTokens::Scopes))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone(RefreshTokens::FamilyExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::ConsumedAt))
                    .col(string_null(RefreshTokens::ReplacedBy))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                    .foreign_key(&mut client_fk(
                        RefreshTokens::Table,
                        RefreshTokens::ClientId,
                        "fk_refresh_tokens_client",
                    ))
                    .foreign_key(&mut user_fk(
                        RefreshTokens::Table,
                        RefreshTokens::UserId,
                        "fk_refresh_tokens_user",
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_refresh_tokens_grant", RefreshTokens::GrantId),
            ("idx_refresh_tokens_expires", RefreshTokens::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(RefreshTokens::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(OauthConsents::Table)
                    .col(string(OauthConsents::Id).primary_key())
                    .col(string(OauthConsents::UserId))
                    .col(string(OauthConsents::ClientId))
                    .col(text(OauthConsents::Scopes))
                    .col(timestamp_with_time_zone(OauthConsents::CreatedAt))
                    .col(timestamp_with_time_zone(OauthConsents::UpdatedAt))
                    .foreign_key(&mut client_fk(
                        OauthConsents::Table,
                        OauthConsents::ClientId,
                        "fk_oauth_consents_client",
                    ))
                    .foreign_key(&mut user_fk(
                        OauthConsents::Table,
                        OauthConsents::UserId,
                        "fk_oauth_consents_user",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_oauth_consents_user_client")
                    .table(OauthConsents::Table)
                    .col(OauthConsents::UserId)
                    .col(OauthConsents::ClientId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AccessTokens::Table)
                    .add_column(string_null(AccessTokens::GrantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_access_tokens_grant")
                    .table(AccessTokens::Table)
                    .col(AccessTokens::GrantId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_access_tokens_grant")
                    .table(AccessTokens::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AccessTokens::Table)
                    .drop_column(AccessTokens::GrantId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(OauthConsents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuthorizationCodes::Table).to_owned())
            .await
    }
}
