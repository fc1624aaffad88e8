//! Attacks on the authorization-code flow, each refused with the right OAuth error and nothing
//! issued: PKCE (wrong, missing, `plain`), code replay (the first code's tokens die), redirect-URI
//! mismatch and open-redirect variants (an error page, never a redirect), missing state, scope
//! escalation at refresh, refresh-token reuse (the whole family dies), an expired code (the app's
//! clock is advanced), another client's code, a learner asking for `credentials:issue`, CSRF on the
//! consent form, and an `invalid_grant` storm from one client (429 with `Retry-After`).

use oxbadge::db::{access_token, authorization_code, refresh_token};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::{
    accounts::post_form,
    oauth_code_flow::{
        PROFILE, Person, Wallet, api_status, assert_oauth_error, assert_tokens, authorize,
        authorize_path, code_for, exchange, hidden_fields, insert_client, person, pkce, query_of,
        refresh, standard_params, token_request, viewer_of_new_issuer,
    },
    support::TestApp,
};

const REDIRECT: &str = "https://wallet.example/cb";

async fn setup(app: &TestApp, email: &str) -> (Person, Wallet) {
    let person = person(app, email).await;
    viewer_of_new_issuer(app, &person.user_id).await;
    let wallet = insert_client(
        app,
        "Attack Wallet",
        &[REDIRECT, "http://127.0.0.1:8765/cb"],
        &format!("issuers:read offline_access credentials:issue {PROFILE}"),
        "client_secret_basic",
    )
    .await;
    (person, wallet)
}

const SCOPE: &str = "issuers:read offline_access";

async fn tokens_of(app: &TestApp, user_id: &str) -> (u64, u64) {
    let db = app.state.db();
    let access = access_token::Entity::find()
        .filter(access_token::Column::UserId.eq(user_id))
        .count(db)
        .await
        .unwrap();
    let refresh = refresh_token::Entity::find()
        .filter(refresh_token::Column::UserId.eq(user_id))
        .count(db)
        .await
        .unwrap();
    (access, refresh)
}

async fn codes_of(app: &TestApp, user_id: &str) -> u64 {
    authorization_code::Entity::find()
        .filter(authorization_code::Column::UserId.eq(user_id))
        .count(app.state.db())
        .await
        .unwrap()
}

/// An error redirect to the client: (error, state) from the Location; no code in it.
async fn error_redirect(app: &TestApp, person: &Person, path: &str) -> (String, Option<String>) {
    let resp = authorize(app, person, path).await;
    assert_eq!(resp.status(), 302, "{path}");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(&location);
    assert!(!q.contains_key("code"), "{location}");
    assert_eq!(q["iss"], app.base, "{location}");
    assert!(q.contains_key("error_description"));
    (q["error"].clone(), q.get("state").cloned())
}

#[tokio::test]
async fn pkce_is_required_s256_only_and_checked() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "pkce@example.com").await;
    let (_, challenge) = pkce();
    // Missing challenge, missing method, plain.
    let mut params = standard_params(&wallet, SCOPE, "s1", &challenge);
    params.retain(|(k, _)| *k != "code_challenge");
    assert_eq!(
        error_redirect(&app, &person, &authorize_path(&params)).await,
        ("invalid_request".into(), Some("s1".into()))
    );
    let mut params = standard_params(&wallet, SCOPE, "s2", &challenge);
    params.retain(|(k, _)| *k != "code_challenge_method");
    assert_eq!(
        error_redirect(&app, &person, &authorize_path(&params))
            .await
            .0,
        "invalid_request"
    );
    let mut params = standard_params(&wallet, SCOPE, "s3", &challenge);
    params.retain(|(k, _)| *k != "code_challenge_method");
    params.push(("code_challenge_method", "plain"));
    assert_eq!(
        error_redirect(&app, &person, &authorize_path(&params))
            .await
            .0,
        "invalid_request"
    );
    assert_eq!(codes_of(&app, &person.user_id).await, 0);
    // A wrong verifier, a verifier that is the challenge (what plain would accept), none at all.
    let (code, verifier) = code_for(&app, &person, &wallet, SCOPE).await;
    let (other_verifier, other_challenge) = pkce();
    assert_oauth_error(
        exchange(&app, &wallet, &code, &other_verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        exchange(&app, &wallet, &code, &other_challenge).await,
        400,
        "invalid_grant",
    )
    .await;
    let resp = token_request(
        &app,
        &wallet,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
    // The redirect URI of the token request must match too.
    let resp = token_request(
        &app,
        &wallet,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:8765/cb"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(tokens_of(&app, &person.user_id).await, (0, 0));
    // The right verifier still works (failed attempts do not burn the code).
    assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "replay@example.com").await;
    let (code, verifier) = code_for(&app, &person, &wallet, SCOPE).await;
    let first = assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
    let access = first["access_token"].as_str().unwrap();
    let refresh_token = first["refresh_token"].as_str().unwrap();
    assert_eq!(api_status(&app, access).await, 200);
    assert_oauth_error(
        exchange(&app, &wallet, &code, &verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(api_status(&app, access).await, 401);
    assert_oauth_error(
        refresh(&app, &wallet, refresh_token, None).await,
        400,
        "invalid_grant",
    )
    .await;
    let row = authorization_code::Entity::find()
        .filter(authorization_code::Column::UserId.eq(person.user_id.clone()))
        .one(app.state.db())
        .await
        .unwrap()
        .unwrap();
    assert!(row.exchanged_at.is_some() && row.revoked_at.is_some());
    // Audited.
    let admin = app.token("admin").await;
    let audit = app
        .http
        .get(app.url("/api/v1/audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains("oauth.code_replay_detected"), "{audit}");
    assert!(audit.contains("oauth.code_exchanged"));
    assert!(audit.contains("oauth.consent_granted"));
}

#[tokio::test]
async fn concurrent_exchanges_of_one_code_have_one_winner() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "race@example.com").await;
    let (code, verifier) = code_for(&app, &person, &wallet, SCOPE).await;
    let (a, b) = tokio::join!(
        exchange(&app, &wallet, &code, &verifier),
        exchange(&app, &wallet, &code, &verifier)
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(statuses.contains(&400), "{statuses:?}");
    // Whoever won, the grant is revoked now: no live token remains.
    for resp in [a, b] {
        if resp.status() == 200 {
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(
                api_status(&app, body["access_token"].as_str().unwrap()).await,
                401
            );
        }
    }
}

#[tokio::test]
async fn redirect_uri_mismatch_and_open_redirects_get_an_error_page() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "redirect@example.com").await;
    let (_, challenge) = pkce();
    for bad in [
        "https://evil.example/cb",
        "https://wallet.example/cb/",
        "https://wallet.example/cb?x=1",
        "https://wallet.example/cb#frag",
        "https://wallet.example/c",
        "https://wallet.example/cbx",
        "https://wallet.example.evil.example/cb",
        "https://wallet.example@evil.example/cb",
        "https://evil.example@wallet.example/cb",
        "https://wallet.example%2F@evil.example/cb",
        "https://wallet.example/cb%2F..%2F..%2Fevil",
        "https://WALLET.example/cb",
        "http://wallet.example/cb",
        "//evil.example/cb",
        "http://127.0.0.1:8766/cb",
        "javascript:alert(1)",
        "",
    ] {
        let mut params = standard_params(&wallet, SCOPE, "st", &challenge);
        params.retain(|(k, _)| *k != "redirect_uri");
        params.push(("redirect_uri", bad));
        let resp = authorize(&app, &person, &authorize_path(&params)).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert!(resp.headers().get("location").is_none(), "{bad}");
        let page = resp.text().await.unwrap();
        assert!(page.contains("not registered"), "{bad}: {page}");
        assert!(!page.contains("evil.example"), "{bad} is not echoed");
    }
    // No redirect_uri at all, an unknown client, a missing client_id: pages too.
    let mut params = standard_params(&wallet, SCOPE, "st", &challenge);
    params.retain(|(k, _)| *k != "redirect_uri");
    let resp = authorize(&app, &person, &authorize_path(&params)).await;
    assert_eq!(resp.status(), 400);
    let unknown = Wallet {
        client_id: "nope".into(),
        secret: None,
        redirect_uri: REDIRECT.into(),
    };
    let resp = authorize(
        &app,
        &person,
        &authorize_path(&standard_params(&unknown, SCOPE, "st", &challenge)),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(codes_of(&app, &person.user_id).await, 0);
}

#[tokio::test]
async fn missing_state_and_bad_response_type_go_back_as_errors() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "state@example.com").await;
    let (_, challenge) = pkce();
    let mut params = standard_params(&wallet, SCOPE, "", &challenge);
    params.retain(|(k, _)| *k != "state");
    assert_eq!(
        error_redirect(&app, &person, &authorize_path(&params)).await,
        ("invalid_request".into(), None)
    );
    let mut params = standard_params(&wallet, SCOPE, "st", &challenge);
    params.retain(|(k, _)| *k != "response_type");
    params.push(("response_type", "token"));
    assert_eq!(
        error_redirect(&app, &person, &authorize_path(&params))
            .await
            .0,
        "unsupported_response_type"
    );
    // A scope the client may not be granted, and an unknown scope.
    for scope in ["admin", "issuers:read root"] {
        let params = standard_params(&wallet, scope, "st", &challenge);
        assert_eq!(
            error_redirect(&app, &person, &authorize_path(&params))
                .await
                .0,
            "invalid_scope"
        );
    }
    assert_eq!(codes_of(&app, &person.user_id).await, 0);
}

#[tokio::test]
async fn a_learner_cannot_obtain_credentials_issue() {
    let app = TestApp::spawn().await;
    // A learner: no memberships at all.
    let learner = person(&app, "learner@example.com").await;
    let wallet = insert_client(
        &app,
        "Greedy Wallet",
        &[REDIRECT],
        &format!("credentials:issue issuers:read {PROFILE}"),
        "client_secret_basic",
    )
    .await;
    let (_, challenge) = pkce();
    for scope in ["credentials:issue", "issuers:read"] {
        let scope = format!("{PROFILE} {scope}");
        let params = standard_params(&wallet, &scope, "st", &challenge);
        assert_eq!(
            error_redirect(&app, &learner, &authorize_path(&params))
                .await
                .0,
            "invalid_scope"
        );
    }
    assert_eq!(codes_of(&app, &learner.user_id).await, 0);
    assert_eq!(tokens_of(&app, &learner.user_id).await, (0, 0));
    // What every confirmed user may grant works.
    let (code, verifier) = code_for(&app, &learner, &wallet, PROFILE).await;
    let body = assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
    assert_eq!(body["scope"], PROFILE);
    // A viewer may read but not issue.
    viewer_of_new_issuer(&app, &learner.user_id).await;
    let params = standard_params(&wallet, "credentials:issue", "st", &challenge);
    assert_eq!(
        error_redirect(&app, &learner, &authorize_path(&params))
            .await
            .0,
        "invalid_scope"
    );
    code_for(&app, &learner, &wallet, "issuers:read").await;
}

#[tokio::test]
async fn refresh_scope_only_narrows_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "family@example.com").await;
    let (code, verifier) = code_for(&app, &person, &wallet, SCOPE).await;
    let first = assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    // Escalation is refused (and does not consume the token).
    assert_oauth_error(
        refresh(&app, &wallet, &r1, Some("issuers:read credentials:issue")).await,
        400,
        "invalid_scope",
    )
    .await;
    // Narrowing works.
    let second = assert_tokens(refresh(&app, &wallet, &r1, Some("issuers:read")).await).await;
    assert_eq!(second["scope"], "issuers:read");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    let third = assert_tokens(refresh(&app, &wallet, &r2, None).await).await;
    let r3 = third["refresh_token"].as_str().unwrap().to_owned();
    let a3 = third["access_token"].as_str().unwrap().to_owned();
    assert_eq!(api_status(&app, &a3).await, 200);
    // Another client cannot use it.
    let other = insert_client(&app, "Other", &[REDIRECT], SCOPE, "client_secret_basic").await;
    assert_oauth_error(refresh(&app, &other, &r3, None).await, 400, "invalid_grant").await;
    // Reusing r1: refused, and the newest refresh and access tokens die with the family.
    assert_oauth_error(
        refresh(&app, &wallet, &r1, None).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(api_status(&app, &a3).await, 401);
    assert_oauth_error(
        refresh(&app, &wallet, &r3, None).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        api_status(&app, first["access_token"].as_str().unwrap()).await,
        401
    );
    // The purge removes the revoked family.
    let (_, refresh_deleted) =
        oxbadge::oauth::purge_expired_grants(app.state.db(), app.state.clock().now())
            .await
            .unwrap();
    assert_eq!(refresh_deleted, 3);
    assert_eq!(tokens_of(&app, &person.user_id).await.1, 0);
}

#[tokio::test]
async fn a_refresh_after_losing_a_membership_carries_only_what_is_left() {
    let app = TestApp::spawn().await;
    let person = person(&app, "demoted@example.com").await;
    let issuer = viewer_of_new_issuer(&app, &person.user_id).await;
    let wallet = insert_client(&app, "Wallet", &[REDIRECT], SCOPE, "client_secret_basic").await;
    let (code, verifier) = code_for(&app, &person, &wallet, SCOPE).await;
    let first = assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
    // A refresh while the membership stands keeps `issuers:read` (and fills the ceiling cache).
    let second = assert_tokens(
        refresh(
            &app,
            &wallet,
            first["refresh_token"].as_str().unwrap(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(second["scope"], SCOPE);
    let admin = app.token("issuers:write issuers:read").await;
    let resp = app
        .http
        .delete(app.url(&format!(
            "/api/v1/issuers/{issuer}/members/user/{}",
            person.user_id
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    // At once (well inside the cache's two seconds): the next access token has no service scope.
    let third = assert_tokens(
        refresh(
            &app,
            &wallet,
            second["refresh_token"].as_str().unwrap(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(third["scope"], "offline_access");
}

#[tokio::test]
async fn a_refresh_token_without_offline_access_is_not_issued_and_idle_tokens_expire() {
    let app = TestApp::spawn_with(|s| s.refresh_token_idle_secs = 3600).await;
    let (person, wallet) = setup(&app, "idle@example.com").await;
    let (code, verifier) = code_for(&app, &person, &wallet, "issuers:read").await;
    let body = assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    let (code, verifier) = code_for(&app, &person, &wallet, SCOPE).await;
    let body = assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
    let r = body["refresh_token"].as_str().unwrap();
    app.state.clock().advance(chrono::Duration::minutes(61));
    assert_oauth_error(refresh(&app, &wallet, r, None).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "expired@example.com").await;
    let (code, verifier) = code_for(&app, &person, &wallet, SCOPE).await;
    app.state.clock().advance(chrono::Duration::minutes(10));
    assert_oauth_error(
        exchange(&app, &wallet, &code, &verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(tokens_of(&app, &person.user_id).await, (0, 0));
    // A day later the purge deletes it.
    app.state.clock().advance(chrono::Duration::days(1));
    let (codes, _) = oxbadge::oauth::purge_expired_grants(app.state.db(), app.state.clock().now())
        .await
        .unwrap();
    assert_eq!(codes, 1);
}

#[tokio::test]
async fn another_clients_code_is_refused() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "thief@example.com").await;
    let thief = insert_client(&app, "Thief", &[REDIRECT], SCOPE, "client_secret_basic").await;
    let public = insert_client(&app, "Thief app", &[REDIRECT], SCOPE, "none").await;
    let (code, verifier) = code_for(&app, &person, &wallet, SCOPE).await;
    assert_oauth_error(
        exchange(&app, &thief, &code, &verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        exchange(&app, &public, &code, &verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    // A public client id with a made-up secret, and a confidential client without its secret.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &wallet.client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_client").await;
    assert_eq!(tokens_of(&app, &person.user_id).await, (0, 0));
    // The rightful client still can.
    assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
    // A public client cannot use client_credentials.
    let resp = token_request(&app, &public, &[("grant_type", "client_credentials")]).await;
    assert_oauth_error(resp, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn the_consent_form_needs_its_csrf_token() {
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "csrf@example.com").await;
    let (_, challenge) = pkce();
    let resp = authorize(
        &app,
        &person,
        &authorize_path(&standard_params(&wallet, SCOPE, "st", &challenge)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    let fields = hidden_fields(&page);
    for csrf in [None, Some("wrong"), Some("")] {
        let mut form: Vec<(String, String)> = fields
            .iter()
            .filter(|(k, _)| k != "csrf")
            .cloned()
            .collect();
        if let Some(c) = csrf {
            form.push(("csrf".into(), c.into()));
        }
        form.push(("decision".into(), "approve".into()));
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let resp = post_form(
            &person.http,
            &app.url("/oauth/consent"),
            &person.cookie,
            &pairs,
        )
        .await;
        assert_eq!(resp.status(), 403, "{csrf:?}");
        assert!(resp.headers().get("location").is_none());
    }
    // A cross-site post with the right token is refused too.
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut pairs = pairs;
    pairs.push(("decision", "approve"));
    let resp = person
        .http
        .post(app.url("/oauth/consent"))
        .header("cookie", &person.cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&pairs)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(codes_of(&app, &person.user_id).await, 0);
}

#[tokio::test]
async fn invalid_grant_storms_from_one_client_are_limited() {
    let app = TestApp::spawn().await;
    let (_person, wallet) = setup(&app, "storm@example.com").await;
    let (verifier, _) = pkce();
    let mut limited = None;
    for i in 0..30 {
        let resp = exchange(&app, &wallet, &format!("oxbac_guess{i}"), &verifier).await;
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
        assert_oauth_error(resp, 400, "invalid_grant").await;
    }
    let resp = limited.expect("the client is limited after a burst of invalid_grant");
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
}

/// Concurrent token requests are committed together by the grant writer, each keeping its own
/// outcome: fresh exchanges and refreshes succeed, a code presented twice in the same burst has one
/// winner and its grant dies, a refresh token presented twice likewise, a wrong verifier is
/// refused without touching its code (which is then exchanged normally), and nothing else is
/// affected.
#[tokio::test]
async fn a_burst_of_grants_commits_together_and_each_keeps_its_outcome() {
    use futures_util::future::join_all;
    let app = TestApp::spawn().await;
    let (person, wallet) = setup(&app, "burst@example.com").await;
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(code_for(&app, &person, &wallet, SCOPE).await);
    }
    let mut refresh_tokens = Vec::new();
    for (code, verifier) in codes.drain(..4) {
        let body = assert_tokens(exchange(&app, &wallet, &code, &verifier).await).await;
        refresh_tokens.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    let (twice_code, twice_verifier) = codes.pop().unwrap();
    let (bad_code, bad_verifier) = codes.pop().unwrap();
    let reused = refresh_tokens.pop().unwrap();

    // The burst: 6 fresh exchanges, 3 refreshes, one code twice, one refresh token twice, one
    // wrong verifier, all at once.
    let mut burst = Vec::new();
    for (code, verifier) in &codes {
        burst.push(("fresh-code", exchange(&app, &wallet, code, verifier)));
    }
    let mut outcomes: Vec<(&str, reqwest::Response)> = Vec::new();
    let fresh = join_all(burst.into_iter().map(|(k, f)| async move { (k, f.await) }));
    let (app_ref, wallet_ref) = (&app, &wallet);
    let refreshes =
        join_all(refresh_tokens.iter().map(|r| async move {
            ("fresh-refresh", refresh(app_ref, wallet_ref, r, None).await)
        }));
    let doubles = async {
        let (a, b, c, d, e) = tokio::join!(
            exchange(&app, &wallet, &twice_code, &twice_verifier),
            exchange(&app, &wallet, &twice_code, &twice_verifier),
            refresh(&app, &wallet, &reused, None),
            refresh(&app, &wallet, &reused, None),
            exchange(
                &app,
                &wallet,
                &bad_code,
                "wrong-verifier-wrong-verifier-wrong-verifier-0"
            ),
        );
        vec![
            ("twice-code", a),
            ("twice-code", b),
            ("twice-refresh", c),
            ("twice-refresh", d),
            ("bad-verifier", e),
        ]
    };
    let (f, r, d) = tokio::join!(fresh, refreshes, doubles);
    outcomes.extend(f);
    outcomes.extend(r);
    outcomes.extend(d);

    let mut twice_winners = Vec::new();
    for (kind, resp) in outcomes {
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        match kind {
            "fresh-code" | "fresh-refresh" => {
                assert_eq!(status, 200, "{kind}: {body}");
                let access = body["access_token"].as_str().unwrap();
                assert_eq!(api_status(&app, access).await, 200, "{kind}");
                assert!(body["refresh_token"].is_string(), "{kind}: {body}");
            }
            "twice-code" | "twice-refresh" => {
                if status == 200 {
                    twice_winners.push((kind, body["access_token"].as_str().unwrap().to_owned()));
                } else {
                    assert_eq!(
                        (status, body["error"].as_str()),
                        (400, Some("invalid_grant"))
                    );
                }
            }
            "bad-verifier" => {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (400, Some("invalid_grant")),
                    "{body}"
                );
            }
            other => unreachable!("{other}"),
        }
    }
    // At most one winner each, and its tokens died with the replay.
    for kind in ["twice-code", "twice-refresh"] {
        assert!(
            twice_winners.iter().filter(|(k, _)| *k == kind).count() <= 1,
            "{kind}"
        );
    }
    for (kind, access) in &twice_winners {
        assert_eq!(
            api_status(&app, access).await,
            401,
            "{kind}'s winner survived the replay"
        );
    }
    // The refused verifier left its code usable.
    let late = assert_tokens(exchange(&app, &wallet, &bad_code, &bad_verifier).await).await;
    assert_eq!(
        api_status(&app, late["access_token"].as_str().unwrap()).await,
        200
    );
}
