//! Client metadata for the authorization-code flow and dynamic client registration (RFC 7591/7592):
//! the URLs a consent page shows, the software the client says it is, how it authenticates at the
//! token endpoint (`none` for public native clients), the hash of its registration access token, and
//! when it first obtained a token (registered clients that never do are purged after 24 h).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum OauthClients {
    Table,
    ClientUri,
    LogoUri,
    TosUri,
    PolicyUri,
    SoftwareId,
    SoftwareVersion,
    Contacts,
    GrantTypes,
    ResponseTypes,
    TokenEndpointAuthMethod,
    RegistrationTokenHash,
    RegisteredDynamically,
    FirstTokenAt,
}

const NULLABLE_TEXT: [OauthClients; 9] = [
    OauthClients::ClientUri,
    OauthClients::LogoUri,
    OauthClients::TosUri,
    OauthClients::PolicyUri,
    OauthClients::SoftwareId,
    OauthClients::SoftwareVersion,
    OauthClients::Contacts,
    OauthClients::GrantTypes,
    OauthClients::ResponseTypes,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        let mut columns: Vec<ColumnDef> = NULLABLE_TEXT.iter().map(|c| string_null(*c)).collect();
        columns.push(
            string(OauthClients::TokenEndpointAuthMethod)
                .default("client_secret_basic")
                .to_owned(),
        );
        columns.push(string_null(OauthClients::RegistrationTokenHash));
        columns.push(
            boolean(OauthClients::RegisteredDynamically)
                .default(false)
                .to_owned(),
        );
        columns.push(timestamp_with_time_zone_null(OauthClients::FirstTokenAt));
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(OauthClients::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_oauth_clients_registration_token_hash")
                    .table(OauthClients::Table)
                    .col(OauthClients::RegistrationTokenHash)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_oauth_clients_registration_token_hash")
                    .table(OauthClients::Table)
                    .to_owned(),
            )
            .await?;
        let mut all: Vec<OauthClients> = NULLABLE_TEXT.to_vec();
        all.extend([
            OauthClients::TokenEndpointAuthMethod,
            OauthClients::RegistrationTokenHash,
            OauthClients::RegisteredDynamically,
            OauthClients::FirstTokenAt,
        ]);
        for column in all.into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(OauthClients::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
