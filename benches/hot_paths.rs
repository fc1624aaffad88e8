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

criterion_group!(benches, status_lists, token_check, envelope);
criterion_main!(benches);
