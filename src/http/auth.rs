//! Bearer-token authorization for every protected operation.
//!
//! An operation takes `#[oai(scope = "Scope::X")] auth: Authorized<scope::X>`. The attribute puts the
//! scope into the operation's OpenAPI `security` requirement; the type parameter enforces it while
//! the request is extracted, before any body is read, so a caller without the scope gets 403 whatever
//! it sent. The integration suite checks, for every operation in the document, that the declared
//! scope is the enforced one.

use std::marker::PhantomData;

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme, auth::Bearer,
    registry::Registry,
};

use crate::{
    accounts::memberships::Principal,
    app::AppState,
    error::ApiError,
    oauth::{AccessContext, Scope, tokens::resolve_token_cached},
};

/// OAuth 2.0 bearer access token (client credentials for back ends). Resolves the token only; use
/// [`Authorized`] in operations so that the scope is enforced too.
#[derive(SecurityScheme)]
#[oai(
    rename = "oauth2",
    ty = "oauth2",
    flows(client_credentials(token_url = "/oauth/token", scopes = "Scope")),
    checker = "check_bearer"
)]
pub struct ServiceAuth(pub AccessContext);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<AccessContext> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal(std::io::Error::other("application state missing")))?;
    Ok(resolve_token_cached(state.db(), state.token_cache(), &bearer.token).await?)
}

/// A scope an operation requires, as a type.
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

/// Marker types, one per scope, for [`Authorized`].
pub mod scope {
    use super::{RequiredScope, Scope};

    macro_rules! markers {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("Requires `Scope::", stringify!($name), "`.")]
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }

    markers!(
        IssuersRead,
        IssuersWrite,
        KeysManage,
        CredentialsIssue,
        CredentialsRead,
        CredentialsStatus,
        CredentialsVerify,
        Admin,
    );
}

/// A caller whose valid token carries the scope `S`.
pub struct Authorized<S: RequiredScope> {
    /// Who is calling.
    pub caller: AccessContext,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope> Authorized<S> {
    /// The calling client's id.
    pub fn client_id(&self) -> &str {
        &self.caller.client_id
    }

    /// Who the audit trail names for this caller (see [`audit_actor`]).
    pub fn actor(&self) -> String {
        audit_actor(&self.caller)
    }
}

/// The audit actor of a token: the client id for a client acting on its own behalf (as before
/// user-bound tokens existed), `user:<user id> via client:<client id>` for a user-bound token,
/// so that the person is named and the application they used is kept.
pub fn audit_actor(caller: &AccessContext) -> String {
    match &caller.principal {
        Principal::Client(_) => caller.client_id.clone(),
        Principal::User(user_id) => format!("user:{user_id} via client:{}", caller.client_id),
    }
}

impl<'a, S: RequiredScope> ApiExtractor<'a> for Authorized<S> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <ServiceAuth as ApiExtractor<'a>>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <ServiceAuth as ApiExtractor<'a>>::security_schemes()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let ServiceAuth(caller) =
            <ServiceAuth as ApiExtractor<'a>>::from_request(request, body, Default::default())
                .await?;
        caller.require(S::SCOPE)?;
        Ok(Self {
            caller,
            _scope: PhantomData,
        })
    }
}
