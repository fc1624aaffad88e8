//! Criterion benches for the other hot paths: bearer-token checks (hash + indexed lookup on a real
//! SQLite database, and the in-memory cache that requests hit first), status-list encoding and
//! decoding, and key-envelope decryption.

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use oxbadge::{
    keys::envelope::{Kek, KekRing, KeyAad, open_private_key, seal_private_key},
    oauth::{ScopeSet, tokens},
    status::bitstring::{Bitstring, MIN_BITS},
};
use secrecy::ExposeSecret;

fn status_lists(c: &mut Criterion) {
    let mut list = Bitstring::new(MIN_BITS);
    for i in (0..MIN_BITS).step_by(97) {
        list.set(i, true).unwrap();
    }
    let encoded = list.encode();
    let mut group = c.benchmark_group("status_list");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("encode 131072 bits (1352 set)", |b| {
        b.iter(|| black_box(list.encode()))
    });
    group.bench_function("decode 131072 bits", |b| {
        b.iter(|| black_box(Bitstring::decode(black_box(&encoded), MIN_BITS, 1 << 24).unwrap()))
    });
    group.finish();
}

fn token_check(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
    let (db, token) = rt.block_on(async {
        let db = oxbadge::db::connect(&url, 4).await.unwrap();
        oxbadge::db::migrate_up(&db).await.unwrap();
        let client = tokens::create_client(&db, "bench", ScopeSet::all())
            .await
            .unwrap();
        let client = {
            use sea_orm::EntityTrait;
            oxbadge::db::oauth_client::Entity::find_by_id(client.client_id)
                .one(&db)
                .await
                .unwrap()
                .unwrap()
        };
        let grant = tokens::issue_token(&db, &client, None, 3600).await.unwrap();
        (db, grant.access_token.expose_secret().to_owned())
    });
    let mut group = c.benchmark_group("token_check");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("resolve bearer token (SQLite)", |b| {
        b.iter(|| {
            rt.block_on(tokens::resolve_token(&db, black_box(&token)))
                .unwrap()
        })
    });
    // What a request pays while the token is cached (TTL 2 s): SHA-256 of the token and a map
    // look-up; the first call fills the cache from the database.
    let cache = oxbadge::oauth::cache::TokenCache::default();
    rt.block_on(tokens::resolve_token_cached(&db, &cache, &token))
        .unwrap();
    group.bench_function("resolve bearer token (cached)", |b| {
        b.iter(|| {
            rt.block_on(tokens::resolve_token_cached(&db, &cache, black_box(&token)))
                .unwrap()
        })
    });
    group.finish();
}

/// A service state on a fresh SQLite file under `dir` with a random KEK, and one did:web issuer
/// in it (its id is returned).
fn bench_state(
    rt: &tokio::runtime::Runtime,
    dir: &tempfile::TempDir,
    file: &str,
) -> (oxbadge::AppState, String) {
    use base64::Engine;
    use oxbadge::{
        issuers::{NewIssuer, ProfileFields},
        keys::identity::IdType,
    };
    let kek: [u8; 32] = rand::random();
    let settings = oxbadge::Settings {
        kek: Some(secrecy::SecretString::from(format!(
            "bench:{}",
            base64::engine::general_purpose::STANDARD.encode(kek)
        ))),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(file).display()
        )),
        log: "warn".into(),
        ..oxbadge::Settings::default()
    };
    rt.block_on(async {
        let (state, _) = oxbadge::AppState::open(settings, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (issuer, _) = oxbadge::issuers::create_issuer(
            state.db(),
            state.keys(),
            state.public_url(),
            NewIssuer {
                profile: ProfileFields {
                    name: "Bench".into(),
                    ..ProfileFields::default()
                },
                id_type: IdType::DidWeb,
                well_known: false,
            },
            "bench",
        )
        .await
        .unwrap();
        (state, issuer.id)
    })
}

/// What tenancy adds to an issuance: the membership check before it (the achievement's issuer from
/// the issuance-context cache, then a map look-up) and the larger cached token context (a member's
/// issuer map is cloned with it), for a global caller and for a member of 10 issuers.
fn membership_check(c: &mut Criterion) {
    use oxbadge::{
        accounts::memberships::{IssuerAccess, Principal, Role},
        http::tenancy,
        oauth::AccessContext,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (state, issuer) = bench_state(&rt, &dir, "m.db");
    let achievement = rt.block_on(async {
        let definition = serde_json::from_value(serde_json::json!({
            "name": "Bench", "description": "Benchmarked.", "criteria": {"narrative": "Run."}
        }))
        .unwrap();
        oxbadge::issue::create_achievement(&state, &issuer, definition, "bench")
            .await
            .unwrap()
            .id
    });
    let context = |access: IssuerAccess| AccessContext {
        client_id: "bench".into(),
        principal: Principal::Client("bench".into()),
        access,
        scopes: ScopeSet::all(),
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        issued_at: chrono::Utc::now(),
    };
    let mut issuers: std::collections::HashMap<String, Role> = (0..9)
        .map(|i| (format!("other-issuer-{i:02}-xxxxxxxxxxxxxx"), Role::Viewer))
        .collect();
    issuers.insert(issuer, Role::Issuer);
    let global = context(IssuerAccess::Global);
    let member = context(IssuerAccess::Members(issuers));
    // Warm the issuance-context cache, as every issuance after the first finds it.
    rt.block_on(tenancy::achievement(
        &state,
        &member,
        &achievement,
        Role::Issuer,
    ))
    .unwrap();
    let mut group = c.benchmark_group("membership_check");
    group.measurement_time(Duration::from_secs(3));
    for (name, ctx) in [
        ("global caller", &global),
        ("member of 10 issuers", &member),
    ] {
        group.bench_function(format!("issuance check, {name}"), |b| {
            b.iter(|| {
                rt.block_on(tenancy::achievement(
                    &state,
                    black_box(ctx),
                    black_box(&achievement),
                    Role::Issuer,
                ))
                .unwrap()
            })
        });
        // A cache hit clones the context; a member's issuer map is cloned with it. (Cache entries
        // live 2 s, shorter than a measurement, so the clone is measured on its own.)
        group.bench_function(format!("cached token context clone, {name}"), |b| {
            b.iter(|| black_box(black_box(ctx).clone()))
        });
    }
    group.finish();
}

/// A user-bound bearer token (authorization-code flow: the principal is a user, a member of one
/// issuer, whose memberships are loaded with the token) against a client token (a global service
/// client), both resolved from SQLite and from the cache, in one group so they compare in one run.
fn user_token_check(c: &mut Criterion) {
    use oxbadge::{
        accounts::{
            memberships::{self, Principal, Role},
            passwords::NewPassword,
            users::{self, DisplayName, Email, NewUser},
        },
        oauth::{Scope, cache::TokenCache},
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (state, issuer) = bench_state(&rt, &dir, "u.db");
    let (client_token, user_token) = rt.block_on(async {
        let user = users::create_user(
            state.db(),
            state.accounts(),
            NewUser {
                email: Email::parse("staff@example.edu").unwrap(),
                display_name: DisplayName::parse("Staff").unwrap(),
                password: NewPassword::parse("a long enough bench password").unwrap(),
                is_admin: false,
                email_verified: true,
            },
            "bench",
        )
        .await
        .unwrap();
        memberships::set_member(
            state.db(),
            &issuer,
            &Principal::User(user.id.clone()),
            Role::Issuer,
            "bench",
        )
        .await
        .unwrap();
        let service = tokens::create_client(state.db(), "bench service", ScopeSet::all())
            .await
            .unwrap();
        let service = {
            use sea_orm::EntityTrait;
            oxbadge::db::oauth_client::Entity::find_by_id(service.client_id)
                .one(state.db())
                .await
                .unwrap()
                .unwrap()
        };
        let client_token = tokens::issue_token(state.db(), &service, None, 3600)
            .await
            .unwrap();
        let scopes: ScopeSet = [Scope::IssuersRead, Scope::CredentialsRead]
            .into_iter()
            .collect();
        let user_token = tokens::issue_user_token(state.db(), &service.id, &user.id, scopes, 3600)
            .await
            .unwrap();
        (
            client_token.access_token.expose_secret().to_owned(),
            user_token.access_token.expose_secret().to_owned(),
        )
    });
    let db = state.db();
    let mut group = c.benchmark_group("bearer_check");
    group.measurement_time(Duration::from_secs(3));
    for (name, token) in [
        ("client token", &client_token),
        ("user-bound token", &user_token),
    ] {
        group.bench_function(format!("{name} (SQLite)"), |b| {
            b.iter(|| {
                rt.block_on(tokens::resolve_token(db, black_box(token)))
                    .unwrap()
            })
        });
        let cache = TokenCache::default();
        rt.block_on(tokens::resolve_token_cached(db, &cache, token))
            .unwrap();
        group.bench_function(format!("{name} (cached)"), |b| {
            b.iter(|| {
                rt.block_on(tokens::resolve_token_cached(db, &cache, black_box(token)))
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn envelope(c: &mut Criterion) {
    let ring = KekRing::new(vec![Kek::new("k1", [7; 32]).unwrap()], "k1").unwrap();
    let aad = KeyAad {
        key_id: "key".into(),
        issuer_id: "issuer".into(),
        algorithm: "Ed25519".into(),
    };
    let sealed = seal_private_key(&ring, &[1; 32], &aad).unwrap();
    c.bench_function("envelope/open AES-256-GCM signing key", |b| {
        b.iter(|| black_box(open_private_key(&ring, &sealed, &aad).unwrap()))
    });
}

criterion_group!(
    benches,
    status_lists,
    token_check,
    membership_check,
    user_token_check,
    envelope
);
criterion_main!(benches);
