//! HTTP surface: one poem-openapi API struct per tag, assembled into one routed endpoint behind the
//! front-line layer. The OpenAPI document is generated from these types.

pub mod account;
pub mod achievements;
pub mod audit;
pub mod auth;
pub mod clients;
pub mod credentials;
pub mod disconnect;
pub mod documented;
pub mod frontline;
pub mod fuzzing;
pub mod health;
pub mod hosts;
pub mod issuers;
pub mod members;
pub mod oauth;
pub mod oauth_metadata;
pub mod oauth_registration;
pub mod oauth_revocation;
pub mod ob3;
pub mod publication;
pub mod status;
pub mod tenancy;
pub mod text;
pub mod users;
pub mod vcapi;
pub mod verify;

use poem::{EndpointExt, IntoEndpoint, Response, Route, endpoint::BoxEndpoint};
use poem_openapi::{OpenApiService, Tags};

use crate::app::AppState;

/// OpenAPI tags, one per API struct.
#[derive(Tags)]
pub enum ApiTags {
    /// Liveness, readiness and metrics.
    Health,
    /// OAuth 2.0 authorization server.
    #[oai(rename = "OAuth")]
    OAuth,
    /// OAuth client administration.
    Clients,
    /// Issuers and their signing keys.
    Issuers,
    /// Public documents: DID documents, issuer profiles, JWKS.
    Publication,
    /// Achievements an issuer awards.
    Achievements,
    /// Issuing credentials and changing their status.
    Credentials,
    /// Public status lists and revocation lists.
    Status,
    /// W3C VC API.
    #[oai(rename = "VC API")]
    VcApi,
    /// Verifying badges from any issuer.
    Verify,
    /// The audit trail.
    Audit,
    /// The signed-in person's own account (session cookie).
    Account,
    /// People administration.
    Users,
    /// Open Badges 3.0 REST API (host role): an earner's credentials and profile.
    #[oai(rename = "Open Badges 3.0")]
    Ob3,
}

/// All API structs, in tag order.
pub type Apis = (
    health::HealthApi,
    oauth::OAuthApi,
    clients::ClientsApi,
    issuers::IssuersApi,
    publication::PublicationApi,
    achievements::AchievementsApi,
    credentials::CredentialsApi,
    status::StatusApi,
    vcapi::VcApi,
    verify::VerifyApi,
    audit::AuditApi,
    members::MembersApi,
    account::AccountApi,
    users::UsersApi,
    // Nested: poem-openapi implements OpenApi for tuples of at most 16.
    (
        oauth_metadata::OAuthMetadataApi,
        oauth_registration::OAuthRegistrationApi,
        oauth_revocation::OAuthRevocationApi,
    ),
    (ob3::Ob3Api, ob3::DidsApi, hosts::HostsApi),
);

/// The OpenAPI service (independent of any running state, so `oxbadge openapi` needs no database).
pub fn api_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            oauth::OAuthApi,
            clients::ClientsApi,
            issuers::IssuersApi,
            publication::PublicationApi,
            achievements::AchievementsApi,
            credentials::CredentialsApi,
            status::StatusApi,
            vcapi::VcApi,
            verify::VerifyApi,
            audit::AuditApi,
            members::MembersApi,
            account::AccountApi,
            users::UsersApi,
            (
                oauth_metadata::OAuthMetadataApi,
                oauth_registration::OAuthRegistrationApi,
                oauth_revocation::OAuthRevocationApi,
            ),
            (ob3::Ob3Api, ob3::DidsApi, hosts::HostsApi),
        ),
        "oxbadge",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Open Badges 3.0 issuer and verifier. Service endpoints answer errors as RFC 9457 \
         problem documents (application/problem+json); OAuth endpoints use the RFC 6749 error \
         vocabulary. Protected operations take an OAuth 2.0 bearer token with the scope they declare.",
    )
}

/// The OpenAPI document as pretty JSON with a trailing newline (the committed openapi/openapi.json).
pub fn openapi_json() -> String {
    let mut spec = api_service().spec();
    spec.push('\n');
    spec
}

/// The complete application endpoint: API, OpenAPI document, Swagger UI, behind the front line.
pub fn routes(state: AppState) -> BoxEndpoint<'static, Response> {
    let api = api_service();
    let spec = api.spec_endpoint();
    let ui = api.swagger_ui();
    let route = Route::new()
        .nest("/", api)
        .nest("/account", crate::web::routes())
        .nest("/static", crate::web::asset_routes())
        .at(
            crate::web::paths::AUTHORIZE,
            crate::web::authorize_endpoint(),
        )
        .at(crate::web::paths::CONSENT, crate::web::consent_endpoint())
        .at("/openapi.json", spec)
        .nest("/docs", ui)
        .data(state.clone());
    frontline::Frontline::new(route.into_endpoint(), state)
        .map_to_response()
        .boxed()
}
