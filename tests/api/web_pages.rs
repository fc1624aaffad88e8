//! The pages: every page renders with `lang`, a label for every field and a strict CSP; `next`
//! never leaves the site; and a real headless Chromium (driven over WebDriver by chromedriver)
//! registers, confirms, signs in and lands on the account page, with screenshots saved and an
//! axe-core accessibility check on each page (no serious or critical violations).

use crate::{
    accounts::{
        PASSWORD, browser_client, create_user, link_token, mail_body, open_page, outbox, post_form,
        set_cookie, sign_in, wait_for_mail,
    },
    browser::{Browser, assert_accessible, axe_source},
    support::TestApp,
};

/// Every `<input …>` tag of a page.
fn input_tags(html: &str) -> Vec<&str> {
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<input") {
        let end = rest[start..].find('>').unwrap() + start;
        tags.push(&rest[start..=end]);
        rest = &rest[end..];
    }
    tags
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

fn check_page(html: &str, csp: &str, what: &str) {
    assert!(html.starts_with("<!doctype html>"), "{what}");
    assert!(html.contains("<html lang=\"en\">"), "{what}: lang");
    assert!(!html.contains("<script"), "{what}: no script");
    assert!(!html.contains(" style=\""), "{what}: no inline style");
    assert!(!html.contains("<style"), "{what}: no style element");
    for tag in input_tags(html) {
        if attr(tag, "type") == Some("hidden") {
            continue;
        }
        let id = attr(tag, "id").unwrap_or_else(|| panic!("{what}: input without id: {tag}"));
        assert!(
            html.contains(&format!("<label for=\"{id}\">")),
            "{what}: no label for #{id}"
        );
    }
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(
        !csp.contains("script-src"),
        "{what}: no script allowed: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("form-action 'self'"), "{what}: {csp}");
}

#[tokio::test]
async fn every_page_renders_accessibly_under_a_strict_csp() {
    let app = TestApp::spawn().await;
    create_user(&app, "pia@example.com", "Pia", false).await;
    let http = browser_client();
    let session = sign_in(&app, &http, "pia@example.com", PASSWORD).await;
    // The OAuth pages: the consent page for a registered wallet, and the error page an unknown
    // client gets (never a redirect).
    let registered =
        crate::oauth_registration::register(&app, &crate::oauth_registration::wallet()).await;
    let wallet = crate::oauth_code_flow::Wallet {
        client_id: registered["client_id"].as_str().unwrap().to_owned(),
        secret: registered["client_secret"].as_str().map(str::to_owned),
        redirect_uri: "https://wallet.example.org/oauth/callback".into(),
    };
    let (_, challenge) = crate::oauth_code_flow::pkce();
    let scope = format!("{}profile.readonly", crate::oauth_registration::OB);
    let consent = crate::oauth_code_flow::authorize_path(&crate::oauth_code_flow::standard_params(
        &wallet,
        &scope,
        "page-check",
        &challenge,
    ));
    let unknown = crate::oauth_code_flow::authorize_path(&[
        ("response_type", "code"),
        ("client_id", "no-such-client"),
        ("redirect_uri", "https://wallet.example.org/oauth/callback"),
        ("state", "s"),
    ]);
    let pages: Vec<(&str, Option<&str>, u16)> = vec![
        ("/account/sign-in", None, 200),
        ("/account/register", None, 200),
        ("/account/forgot-password", None, 200),
        ("/account/verify-email?token=unknown", None, 400),
        ("/account/reset-password?token=unknown", None, 400),
        ("/account", Some(&session), 200),
        ("/account/no-such-page", None, 404),
        (&consent, Some(&session), 200),
        (&unknown, None, 400),
    ];
    for (path, cookie, status) in pages {
        let mut req = http.get(app.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let headers = resp.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = resp.text().await.unwrap();
        check_page(&body, &csp, path);
        // The stylesheet the page links is served, immutable.
        let css = body
            .split("href=\"")
            .find_map(|s| {
                s.starts_with("/static/")
                    .then(|| s.split('"').next().unwrap())
            })
            .unwrap();
        let resp = http.get(app.url(css)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    }
    let resp = http
        .get(app.url("/static/0000/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The account page shows the sessions with an end button per other session.
    let body = http
        .get(app.url("/account"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("This session"));
}

#[tokio::test]
async fn next_returns_only_to_local_paths() {
    let app = TestApp::spawn().await;
    create_user(&app, "ned@example.com", "Ned", false).await;
    let http = browser_client();
    for (next, expected) in [
        (
            "/oauth/authorize?client_id=a&state=b",
            "/oauth/authorize?client_id=a&state=b",
        ),
        ("//evil.example/x", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("javascript:alert(1)", "/account"),
    ] {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("next", next);
        let (cookie, csrf, page) = open_page(
            &http,
            &app.url(&format!("/account/sign-in?{}", q.finish())),
            None,
        )
        .await;
        assert!(!page.contains("evil.example"), "{next} is not echoed");
        let resp = post_form(
            &http,
            &app.url("/account/sign-in"),
            &cookie,
            &[
                ("csrf", &csrf),
                ("email", "ned@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ],
        )
        .await;
        assert_eq!(resp.status(), 303, "{next}");
        assert_eq!(resp.headers()["location"], expected, "{next}");
        assert!(set_cookie(&resp).is_some());
    }
    // A signed-out visit to the account page goes to sign-in and comes back.
    let resp = http.get(app.url("/account")).send().await.unwrap();
    assert_eq!(
        resp.headers()["location"],
        "/account/sign-in?next=%2Faccount"
    );
}

#[tokio::test]
async fn headless_chromium_registers_confirms_signs_in_and_lands_signed_in() {
    use futures_util::FutureExt;
    let Some(browser) = Browser::start("headless_chromium_registers_confirms_signs_in").await
    else {
        return;
    };
    let axe = axe_source();
    let app = TestApp::spawn().await;
    let outcome = std::panic::AssertUnwindSafe(browse(&browser, &axe, &app))
        .catch_unwind()
        .await;
    // Always end the WebDriver session, so Chromium exits even when the test failed.
    let _ = browser
        .http
        .delete(format!("{}/session/{}", browser.base, browser.session))
        .send()
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn browse(browser: &Browser, axe: &str, app: &TestApp) {
    // Register.
    browser.goto(&app.url("/account/register")).await;
    browser.screenshot("01-register").await;
    assert_accessible(browser, axe, "register").await;
    browser.fill("#display_name", "Mary Somerville").await;
    browser.fill("#email", "mary@example.com").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Check your inbox").await;
    browser.screenshot("02-registered").await;
    assert_accessible(browser, axe, "check your inbox").await;

    // Follow the link from the mail.
    let mail = wait_for_mail(&outbox(app), "mary@example.com").await;
    let token = link_token(&mail_body(&mail), "/account/verify-email");
    browser
        .goto(&app.url(&format!("/account/verify-email?token={token}")))
        .await;
    browser.screenshot("03-verify-email").await;
    assert_accessible(browser, axe, "verify email").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/account/sign-in?done=verified").await;
    browser
        .wait_for_text("Your email address is confirmed")
        .await;

    // Sign in, with a wrong password first.
    browser.fill("#email", "mary@example.com").await;
    browser.fill("#password", "not my password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("not correct").await;
    browser.screenshot("04-sign-in-error").await;
    assert_accessible(browser, axe, "sign-in error").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;

    // Landed signed in on the account page.
    let text = browser.wait_for_text("Signed in as Mary Somerville").await;
    let url = browser.url().await;
    assert!(url.ends_with("/account"), "{url}");
    assert!(text.contains("This session"), "{text}");
    browser.screenshot("05-account").await;
    assert_accessible(browser, axe, "account").await;

    // Sign out from the page.
    browser
        .click("form[action='/account/sign-out'] button")
        .await;
    browser.wait_for_text("You have signed out").await;
    browser.screenshot("06-signed-out").await;
    assert_accessible(browser, axe, "signed out").await;
    browser.goto(&app.url("/account")).await;
    browser.wait_for_url("/account/sign-in?next=").await;
}
