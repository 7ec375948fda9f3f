//! The dashboard through HTTP, without a browser: sessions, cookies, CSRF, escaping,
//! security headers, login throttling, isolation between organizations, and what is
//! stored. The browser walk is `crates/keyward/tests/e2e/dashboard_browser.py`.

use axum::http::StatusCode;
use keyward_core::member::MemberRole;
use keyward_core::typeid::OrganizationId;
use keyward_service::Operator;
use keyward_store::AuditQuery;
use zeroize::Zeroizing;

use crate::support::{TestApp, TestResponse};

pub const EMAIL: &str = "ada@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

/// The value of the hidden `csrf_token` field of a page.
pub fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF field in {page}"))
        + marker.len();
    page[start..start + 64].to_owned()
}

/// The value a `Set-Cookie` header gives `name`, with the header's attributes.
pub fn set_cookie<'r>(response: &'r TestResponse, name: &str) -> Option<&'r str> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

pub fn cookie_value(header: &str) -> String {
    header
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap()
}

/// Adds a member with [`PASSWORD`] and the default role (owner for the organization's
/// first); returns its id.
pub async fn add_member(app: &TestApp, org: &str, email: &str) -> String {
    add_member_as(app, org, email, None).await
}

/// Adds a member with [`PASSWORD`] and `role`; returns its id.
pub async fn add_member_as(
    app: &TestApp,
    org: &str,
    email: &str,
    role: Option<MemberRole>,
) -> String {
    keyward_store::testing::record_secrets([PASSWORD]);
    let (member, _) = app
        .state
        .service
        .members()
        .add(
            &Operator::new(),
            &OrganizationId::parse(org).unwrap(),
            email,
            role,
            Some(Zeroizing::new(PASSWORD.to_owned())),
        )
        .await
        .unwrap();
    member.id.to_string()
}

/// A logged-in member: its session cookie and its forms' CSRF token.
pub struct Member {
    pub cookie: String,
    pub csrf: String,
}

/// Logs in through the form from `ip`; returns the answer to the form post and the
/// pre-login cookie used.
pub async fn post_login(app: &TestApp, email: &str, password: &str, ip: &str) -> TestResponse {
    let form = app.get("/login").peer(ip).send().await;
    assert_eq!(form.status, StatusCode::OK);
    let login_cookie = cookie_value(set_cookie(&form, "keyward_login").unwrap());
    let body = serde_urlencoded::to_string([
        ("csrf_token", csrf_of(&form.text).as_str()),
        ("email", email),
        ("password", password),
        ("next", "/developer/api-security"),
    ])
    .unwrap();
    app.post("/login")
        .peer(ip)
        .header("cookie", &format!("keyward_login={login_cookie}"))
        .raw("application/x-www-form-urlencoded", body)
        .send()
        .await
}

pub async fn login(app: &TestApp, email: &str) -> Member {
    let response = post_login(app, email, PASSWORD, "127.0.0.1").await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.text);
    assert_eq!(response.header("location"), Some("/developer/api-security"));
    let cookie = format!(
        "keyward_session={}",
        cookie_value(set_cookie(&response, "keyward_session").unwrap())
    );
    let page = app
        .get("/developer/api-credentials")
        .header("cookie", &cookie)
        .send()
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    Member {
        csrf: csrf_of(&page.text),
        cookie,
    }
}

impl Member {
    pub async fn get(&self, app: &TestApp, path: &str) -> TestResponse {
        app.get(path).header("cookie", &self.cookie).send().await
    }

    pub async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let mut all = vec![("csrf_token", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(app, path, &serde_urlencoded::to_string(&all).unwrap())
            .await
    }

    /// Posts `body` (with this member's CSRF token first) as a page of another site would.
    async fn post_from_another_site(&self, app: &TestApp, path: &str, body: &str) -> TestResponse {
        app.post(path)
            .header("cookie", &self.cookie)
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .raw(
                "application/x-www-form-urlencoded",
                format!("csrf_token={}&{body}", self.csrf),
            )
            .send()
            .await
    }

    pub async fn post_raw(&self, app: &TestApp, path: &str, body: &str) -> TestResponse {
        app.post(path)
            .header("cookie", &self.cookie)
            .raw("application/x-www-form-urlencoded", body.to_owned())
            .send()
            .await
    }
}

/// An application with one member, logged in.
pub async fn signed_in() -> (TestApp, Member) {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let member = login(&app, EMAIL).await;
    (app, member)
}

/// The status `/v1/authorize` answers for `key`.
async fn authorize(app: &TestApp, key: &str) -> StatusCode {
    app.get("/v1/authorize").key(key).send().await.status
}

/// Creates a credential through the form; returns its id, API key and client secret.
async fn create(app: &TestApp, member: &Member, name: &str) -> (String, String, String) {
    let page = member
        .post(
            app,
            "/developer/api-credentials",
            &[("name", name), ("environment", "live")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.text);
    let value_of = |id: &str| {
        let marker = format!("id=\"{id}\" value=\"");
        let start = page.text.find(&marker).unwrap() + marker.len();
        let end = start + page.text[start..].find('"').unwrap();
        page.text[start..end].to_owned()
    };
    let key = value_of("api-key");
    let credential = app
        .post("/v1/keys/verify")
        .key(&app.admin_key)
        .json(serde_json::json!({ "key": key }))
        .send()
        .await
        .json();
    (
        credential["key_id"].as_str().unwrap().to_owned(),
        key,
        value_of("client-secret"),
    )
}

#[tokio::test]
async fn logged_out_pages_redirect_to_login_and_come_back() {
    let app = TestApp::new().await;
    for path in [
        "/developer/api-credentials",
        "/developer/api-credentials/new",
        "/developer/api-security",
        "/developer/audit-log",
    ] {
        let response = app.get(path).send().await;
        assert_eq!(response.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            response.header("location"),
            Some(format!("/login?next={path}").as_str())
        );
    }
    let root = app.get("/").send().await;
    assert_eq!(root.header("location"), Some("/developer/api-credentials"));
    // A made-up or stale cookie is no session.
    let stale = app
        .get("/developer/api-security")
        .header("cookie", &format!("keyward_session={}", "ab".repeat(32)))
        .send()
        .await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    // htmx requests are told where to go instead of being redirected.
    let htmx = app
        .get("/developer/api-credentials")
        .header("hx-request", "true")
        .send()
        .await;
    assert_eq!(htmx.status, StatusCode::UNAUTHORIZED);
    assert!(htmx.header("hx-redirect").unwrap().starts_with("/login"));
    // Posts without a session go to the login page too, and change nothing.
    let post = app
        .post("/developer/api-security")
        .raw(
            "application/x-www-form-urlencoded",
            "type=deny&ip_network=10.0.0.0/25",
        )
        .send()
        .await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    assert!(
        app.store
            .ip_rules(&OrganizationId::parse(&app.organization_id).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_session_cookie_is_httponly_strict_and_secure_only_behind_tls() {
    let config = keyward_server::ServerConfig {
        gate: keyward_gate::GateConfig {
            trusted_proxies: vec!["10.9.0.1/32".parse().unwrap()],
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::with_config(config).await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let plain = post_login(&app, EMAIL, PASSWORD, "127.0.0.1").await;
    let cookie = set_cookie(&plain, "keyward_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    // Through a trusted proxy that terminated TLS, the cookie is Secure.
    let form = app.get("/login").peer("10.9.0.1").send().await;
    let login_cookie = cookie_value(set_cookie(&form, "keyward_login").unwrap());
    let body = serde_urlencoded::to_string([
        ("csrf_token", csrf_of(&form.text).as_str()),
        ("email", EMAIL),
        ("password", PASSWORD),
    ])
    .unwrap();
    let proxied = app
        .post("/login")
        .peer("10.9.0.1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("cookie", &format!("keyward_login={login_cookie}"))
        .raw("application/x-www-form-urlencoded", body)
        .send()
        .await;
    let host_only = set_cookie(&proxied, "__Host-keyward_session").unwrap();
    assert!(
        host_only.contains("; Secure") && host_only.contains("Path=/;"),
        "{host_only}"
    );
    assert!(set_cookie(&proxied, "keyward_session").is_none());
    // Behind TLS only the __Host- cookie is a session: one a sibling host planted is not.
    let token = cookie_value(host_only);
    for (name, expected) in [
        ("__Host-keyward_session", StatusCode::OK),
        ("keyward_session", StatusCode::SEE_OTHER),
    ] {
        let page = app
            .get("/developer/api-security")
            .peer("10.9.0.1")
            .header("x-forwarded-proto", "https")
            .header("cookie", &format!("{name}={token}"))
            .send()
            .await;
        assert_eq!(page.status, expected, "{name}");
    }
    // The same header from anyone else is not believed.
    let form = app.get("/login").send().await;
    let spoofed_cookie = set_cookie(&form, "keyward_login").unwrap();
    assert!(!spoofed_cookie.contains("Secure"));
}

#[tokio::test]
async fn every_page_has_a_strict_content_security_policy() {
    let (app, member) = signed_in().await;
    for path in [
        "/login",
        "/developer/api-credentials",
        "/developer/api-credentials/new",
        "/developer/api-security",
        "/developer/audit-log",
    ] {
        let page = member.get(&app, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        // No inline script and no inline event handler anywhere.
        assert!(
            !page.text.contains("<script>"),
            "{path} has an inline script"
        );
        assert!(!page.text.contains(" onclick="), "{path}");
        assert!(page.text.contains("href=\"/assets/dashboard.css"), "{path}");
    }
    for (asset, media_type) in [
        ("dashboard.css", "text/css; charset=utf-8"),
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("htmx.min.js", "text/javascript; charset=utf-8"),
    ] {
        let file = app.get(&format!("/assets/{asset}")).send().await;
        assert_eq!(file.status, StatusCode::OK, "{asset}");
        assert_eq!(file.header("content-type"), Some(media_type));
        assert!(file.text.len() > 1000, "{asset} is served whole");
    }
    assert_eq!(
        app.get("/assets/missing.js").send().await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn every_route_that_changes_something_needs_the_token_and_the_origin() {
    let (app, member) = signed_in().await;
    let (id, api_key, _) = create(&app, &member, "Kept").await;
    let rule = app
        .post("/v1/ip-rules")
        .key(&app.admin_key)
        .json(serde_json::json!({"ip_network": "198.51.100.7", "type": "deny"}))
        .send()
        .await
        .expect(201)
        .json();
    let rule_id = rule["id"].as_str().unwrap();
    let changes = keyward_server::dashboard::changes();
    assert!(changes.len() >= 7, "the list lost routes");
    for (template, _) in changes {
        let path = template.replace("{action}", "revoke").replace(
            "{id}",
            if template.contains("rules") {
                rule_id
            } else {
                &id
            },
        );
        let body =
            format!("name=x&type=deny&ip_network=203.0.113.9&email={EMAIL}&password={PASSWORD}");
        let missing = member.post_raw(&app, &path, &body).await;
        assert_eq!(
            missing.status,
            StatusCode::FORBIDDEN,
            "{path} without a token"
        );
        let cross_site = member.post_from_another_site(&app, &path, &body).await;
        assert_eq!(
            cross_site.status,
            StatusCode::FORBIDDEN,
            "{path} from another site"
        );
    }
    // Nothing changed: the key works, the rule stands, the session lives.
    assert_eq!(authorize(&app, &api_key).await, StatusCode::OK);
    let rules = app
        .get("/v1/ip-rules")
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(rules["data"].as_array().unwrap().len(), 1);
    let page = member.get(&app, "/developer/api-credentials").await;
    assert_eq!(page.status, StatusCode::OK);
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_origin_are_refused() {
    let (app, member) = signed_in().await;
    let (id, api_key, _) = create(&app, &member, "Kept").await;
    let revoke = format!("/developer/api-credentials/{id}/revoke");
    for body in [
        String::new(),
        "csrf_token=".to_owned(),
        format!("csrf_token={}", "0".repeat(64)),
        format!("csrf_token={}", &member.csrf[..63]),
    ] {
        let refused = member.post_raw(&app, &revoke, &body).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{body}: {}",
            refused.text
        );
        assert!(refused.text.contains("cannot be accepted"));
    }
    // Another member's token does not fit this session.
    let other = login(&app, EMAIL).await;
    assert_ne!(other.csrf, member.csrf);
    let crossed = member
        .post_raw(&app, &revoke, &format!("csrf_token={}", other.csrf))
        .await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);
    // A cross-site post with the right token is refused by the Origin check.
    let cross_site = member.post_from_another_site(&app, &revoke, "").await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    // The login form needs its token too.
    let login = app
        .post("/login")
        .raw(
            "application/x-www-form-urlencoded",
            format!("email={EMAIL}&password={PASSWORD}"),
        )
        .send()
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&login, "keyward_session").is_none());
    // Nothing was revoked.
    assert_eq!(authorize(&app, &api_key).await, StatusCode::OK);
    let done = member.post(&app, &revoke, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        authorize(&app, &api_key).await,
        StatusCode::UNAUTHORIZED,
        "revoked at once"
    );
}

#[tokio::test]
async fn names_are_escaped_and_secrets_are_shown_only_in_the_creation_answer() {
    let (app, member) = signed_in().await;
    let hostile = "<script>alert(1)</script>\"'&";
    let (id, api_key, client_secret) = create(&app, &member, hostile).await;
    for path in [
        "/developer/api-credentials".to_owned(),
        format!("/developer/api-credentials/{id}"),
        format!("/developer/api-credentials/{id}/usage-chart"),
        "/developer/audit-log".to_owned(),
    ] {
        let page = member.get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.text.contains("<script>alert"),
            "{path} is not escaped"
        );
        assert!(
            !page.text.contains(&api_key) && !page.text.contains(&client_secret),
            "{path} shows a secret"
        );
    }
    let list = member.get(&app, "/developer/api-credentials").await;
    assert!(
        list.text
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;&#34;&#39;&#38;")
    );
    // Rotation shows the new secrets once; the old key keeps its grace period.
    let rotated = member
        .post(
            &app,
            &format!("/developer/api-credentials/{id}/rotate"),
            &[("grace_period_seconds", "3600")],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED);
    assert!(
        rotated
            .text
            .contains("keep working until 2026-06-01 13:00 UTC"),
        "{}",
        rotated.text
    );
    assert!(rotated.text.contains(&format!(
        "data-return-to=\"/developer/api-credentials/{id}?done=rotated\""
    )));
    let detail = member
        .get(
            &app,
            &format!("/developer/api-credentials/{id}?done=rotated"),
        )
        .await;
    assert!(
        detail
            .text
            .contains("The credential has a new API key and client secret.")
    );
    assert!(
        detail
            .text
            .contains(&format!("<code>{}</code>", app.organization_id)),
        "the client id is shown"
    );
    let log = member.get(&app, "/developer/audit-log").await;
    assert!(
        log.text.contains("grace_period_seconds: 3600"),
        "the audit log shows details"
    );
    assert!(!rotated.text.contains(&api_key));
    assert_eq!(authorize(&app, &api_key).await, StatusCode::OK);
}

#[tokio::test]
async fn form_errors_are_shown_beside_their_fields() {
    let (app, member) = signed_in().await;
    let page = member
        .post(
            &app,
            "/developer/api-credentials",
            &[
                ("name", " "),
                ("expires_on", "31/12/2099"),
                ("rate_limit", "0"),
                ("description", "kept"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for id in ["name-error", "expires-error", "rate-error"] {
        assert!(page.text.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(
        page.text.contains(">kept</textarea>"),
        "what was typed is kept"
    );
    // A past expiry and an unknown scope come back from the service, beside their field.
    let past = member
        .post(
            &app,
            "/developer/api-credentials",
            &[("name", "Old"), ("expires_on", "2020-01-01")],
        )
        .await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(past.text.contains("id=\"expires-error\""), "{}", past.text);
    let scope = member
        .post(
            &app,
            "/developer/api-credentials",
            &[("name", "Odd"), ("scopes", "nonsense:fly")],
        )
        .await;
    assert_eq!(scope.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(scope.text.contains("id=\"scopes-error\""), "{}", scope.text);
    // Nothing was created.
    let list = member.get(&app, "/developer/api-credentials").await;
    assert!(!list.text.contains(">Old<") && !list.text.contains(">Odd<"));
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address_and_audited() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    for _ in 0..5 {
        let failed = post_login(&app, EMAIL, "wrong password here", "127.0.0.7").await;
        assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
        assert!(
            failed
                .text
                .contains("The email or the password is not right.")
        );
        assert!(set_cookie(&failed, "keyward_session").is_none());
    }
    // An unknown email reads the same as a wrong password.
    let unknown = post_login(&app, "nobody@example.com", PASSWORD, "127.0.0.8").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(
        unknown
            .text
            .contains("The email or the password is not right.")
    );
    // The sixth try from that address waits, even with the right password.
    let blocked = post_login(&app, EMAIL, PASSWORD, "127.0.0.7").await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.header("retry-after"), Some("30"));
    // From another address the member still gets in.
    let elsewhere = post_login(&app, EMAIL, PASSWORD, "127.0.0.9").await;
    assert_eq!(elsewhere.status, StatusCode::SEE_OTHER);
    // After the wait the address may try again.
    app.clock.advance(time::Duration::seconds(31));
    let later = post_login(&app, EMAIL, PASSWORD, "127.0.0.7").await;
    assert_eq!(later.status, StatusCode::SEE_OTHER);

    let org = OrganizationId::parse(&app.organization_id).unwrap();
    let count = |action: &'static str| {
        let store = app.store.clone();
        let org = org.clone();
        async move {
            let query = AuditQuery {
                action: Some(action.into()),
                target_id: None,
                before: None,
                limit: 50,
                ..AuditQuery::default()
            };
            store.list_audit_events(&org, &query).await.unwrap()
        }
    };
    // Failed logins are recorded without making the answer wait.
    let mut failed = count("member.login_failed").await;
    for _ in 0..100 {
        if failed.len() >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        failed = count("member.login_failed").await;
    }
    assert_eq!(failed.len(), 5);
    assert_eq!(failed[0].source_ip, Some("127.0.0.7".parse().unwrap()));
    assert_eq!(count("member.logged_in").await.len(), 2);
}

#[tokio::test]
async fn logout_and_a_new_password_end_sessions() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let first = login(&app, EMAIL).await;
    let second = login(&app, EMAIL).await;
    let out = first.post(&app, "/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.header("location"), Some("/login?done=logout"));
    let said = app.get("/login?done=logout").send().await;
    assert!(said.text.contains("You have logged out."));
    assert!(
        set_cookie(&out, "keyward_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        first.get(&app, "/developer/api-security").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        second.get(&app, "/developer/api-security").await.status,
        StatusCode::OK
    );
    app.state
        .service
        .members()
        .set_password(
            &Operator::new(),
            EMAIL,
            Some(Zeroizing::new("a brand new passphrase".to_owned())),
        )
        .await
        .unwrap();
    assert_eq!(
        second.get(&app, "/developer/api-security").await.status,
        StatusCode::SEE_OTHER
    );
    let old = post_login(&app, EMAIL, PASSWORD, "127.0.0.1").await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    // Sessions end after 12 hours however active.
    let third = {
        let response = post_login(&app, EMAIL, "a brand new passphrase", "127.0.0.1").await;
        format!(
            "keyward_session={}",
            cookie_value(set_cookie(&response, "keyward_session").unwrap())
        )
    };
    let page = app
        .get("/developer/api-security")
        .header("cookie", &third)
        .send()
        .await;
    assert_eq!(page.status, StatusCode::OK);
    app.clock.advance(time::Duration::hours(12));
    let page = app
        .get("/developer/api-security")
        .header("cookie", &third)
        .send()
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_never_redirects_to_another_site() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    for next in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let form = app
            .get(&format!("/login?next={}", next.replace('/', "%2F")))
            .send()
            .await;
        assert_eq!(form.status, StatusCode::OK, "{next}");
        assert!(
            !form.text.contains("evil.example") && !form.text.contains("javascript:"),
            "{next}"
        );
        assert!(
            form.text
                .contains("name=\"next\" value=\"/developer/api-credentials\""),
            "{next}"
        );
    }
}

#[tokio::test]
async fn a_member_sees_and_changes_only_its_own_organization() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let other_key = app.other_organization().await;
    let foreign = app
        .create_key_as(&other_key, serde_json::json!({"name": "Theirs"}))
        .await;
    let foreign_id = foreign["key_id"].as_str().unwrap();
    let member = login(&app, EMAIL).await;
    let list = member.get(&app, "/developer/api-credentials").await;
    assert!(!list.text.contains("Theirs"));
    let page = member
        .get(&app, &format!("/developer/api-credentials/{foreign_id}"))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    for action in ["revoke", "disable", "rotate"] {
        let refused = member
            .post(
                &app,
                &format!("/developer/api-credentials/{foreign_id}/{action}"),
                &[("grace_period_seconds", "0")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{action}");
    }
    let theirs = authorize(&app, foreign["key"].as_str().unwrap()).await;
    assert_eq!(theirs, StatusCode::OK, "untouched");
    let junk = member
        .get(&app, "/developer/api-credentials/not-an-id")
        .await;
    assert_eq!(junk.status, StatusCode::NOT_FOUND);
    assert!(
        junk.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn ip_rules_are_added_and_removed_with_the_lockout_guard() {
    let (app, member) = signed_in().await;
    let refused = member
        .post(
            &app,
            "/developer/api-security",
            &[("type", "deny"), ("ip_network", "127.0.0.1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.text.contains("id=\"lockout-warning\""));
    let org = OrganizationId::parse(&app.organization_id).unwrap();
    assert!(app.store.ip_rules(&org).await.unwrap().is_empty());
    let narrow = member
        .post(
            &app,
            "/developer/api-security",
            &[("type", "allow"), ("ip_network", "10.0.0.0/8")],
        )
        .await;
    assert_eq!(narrow.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(narrow.text.contains("id=\"network-error\""));
    let added = member
        .post(
            &app,
            "/developer/api-security",
            &[
                ("type", "deny"),
                ("ip_network", "127.0.0.1"),
                ("confirm_lockout", "on"),
                ("description", "<b>me</b>"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text);
    let rules = app.store.ip_rules(&org).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].created_by,
        app.store
            .member_by_email(EMAIL)
            .await
            .unwrap()
            .unwrap()
            .id
            .to_string()
    );
    let page = member.get(&app, "/developer/api-security").await;
    assert!(page.text.contains("127.0.0.1/32") && page.text.contains("&#60;b&#62;me"));
    // The organization's keys are now refused from here.
    assert_eq!(authorize(&app, &app.admin_key).await, StatusCode::FORBIDDEN);
    let path = format!("/developer/api-security/rules/{}/remove", rules[0].id);
    assert_eq!(
        member.post(&app, &path, &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(app.store.ip_rules(&org).await.unwrap().is_empty());
    assert_eq!(authorize(&app, &app.admin_key).await, StatusCode::OK);
}

#[tokio::test]
async fn passwords_and_sessions_are_stored_only_as_hashes() {
    let (app, member) = signed_in().await;
    let token = member
        .cookie
        .trim_start_matches("keyward_session=")
        .to_owned();
    let stored = app.store.member_by_email(EMAIL).await.unwrap().unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$v=19$"),
        "{}",
        stored.password_hash
    );
    let dump = app.database.stored_bytes().await;
    for secret in [PASSWORD, token.as_str(), &token[..20], member.csrf.as_str()] {
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is stored in plain text"
        );
    }
}

#[tokio::test]
async fn the_server_alone_picks_a_new_credentials_id() {
    let (app, member) = signed_in().await;
    let other = app.other_organization().await;
    let theirs = app
        .create_key_as(&other, serde_json::json!({"name": "Theirs"}))
        .await;
    let their_id = theirs["key_id"].as_str().unwrap();
    let form = member.get(&app, "/developer/api-credentials/new").await;
    let marker = "name=\"submission\" value=\"";
    let start = form.text.find(marker).unwrap() + marker.len();
    let token = form.text[start..].split('"').next().unwrap().to_owned();
    let (_, mark) = token.rsplit_once('.').unwrap();
    // An id of the browser's choosing, bare or with another id's mark, is refused alike,
    // whether or not it exists anywhere: nothing tells them apart.
    for chosen in [
        their_id.to_owned(),
        format!("{their_id}.{mark}"),
        "api_key_01jxe20q5hf9p4bm3kfz7v0w6t".to_owned(),
        format!("api_key_01jxe20q5hf9p4bm3kfz7v0w6t.{mark}"),
    ] {
        let answer = member
            .post(
                &app,
                "/developer/api-credentials",
                &[("submission", chosen.as_str()), ("name", "Chosen")],
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{chosen}: {}",
            answer.text
        );
        assert!(answer.text.contains("load it again"), "{}", answer.text);
    }
    // The form's own token works, once.
    let created = member
        .post(
            &app,
            "/developer/api-credentials",
            &[("submission", token.as_str()), ("name", "Mine")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let list = member.get(&app, "/developer/api-credentials").await;
    assert!(!list.text.contains("Chosen"), "{}", list.text);
}

#[tokio::test]
async fn the_forms_follow_the_apis_text_rule_with_its_words() {
    let (app, member) = signed_in().await;
    let mut cases: Vec<(String, &str)> = crate::errors::DECEPTIVE_TEXT
        .iter()
        .map(|(text, says)| {
            let encoded = serde_urlencoded::to_string([("x", *text)]).unwrap();
            (encoded["x=".len()..].to_owned(), *says)
        })
        .collect();
    // Bytes that are not UTF-8 at all, which a form decoder turns into U+FFFD.
    cases.push(("%FF%FE".to_owned(), "must be valid UTF-8"));
    for (encoded, says) in cases {
        let body = format!("csrf_token={}&name={encoded}", member.csrf);
        let page = member
            .post_raw(&app, "/developer/api-credentials", &body)
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{encoded}");
        assert!(page.text.contains(says), "{encoded}: {}", page.text);

        if says.contains("visible") {
            continue;
        }
        let body = format!(
            "csrf_token={}&type=deny&ip_network=198.51.100.7&description={encoded}",
            member.csrf
        );
        let page = member
            .post_raw(&app, "/developer/api-security", &body)
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{encoded}");
        assert!(page.text.contains(says), "{encoded}: {}", page.text);
    }
    let list = member.get(&app, "/developer/api-credentials").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text.contains('\u{FFFD}'), "{}", list.text);
}

#[tokio::test]
async fn sending_a_form_twice_creates_and_rotates_once() {
    let (app, member) = signed_in().await;
    let form = member.get(&app, "/developer/api-credentials/new").await;
    let marker = "name=\"submission\" value=\"";
    let start = form.text.find(marker).unwrap() + marker.len();
    let token = form.text[start..].split('"').next().unwrap().to_owned();
    let id = token.split('.').next().unwrap().to_owned();
    assert!(id.starts_with("api_key_"), "{token}");
    let fields = [("submission", token.as_str()), ("name", "Reloaded")];
    let first = member
        .post(&app, "/developer/api-credentials", &fields)
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    // A reload sends the same form again: no second credential, and no secret.
    let again = member
        .post(&app, "/developer/api-credentials", &fields)
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let detail = format!("/developer/api-credentials/{id}");
    assert_eq!(
        again.header("location"),
        Some(format!("{detail}?done=created").as_str())
    );
    let list = member.get(&app, "/developer/api-credentials").await;
    assert_eq!(list.text.matches(">Reloaded</a>").count(), 1);
    assert!(!again.text.contains("kw_live_"));

    // Rotate: the form carries the version it was shown at; sent twice, it rotates once.
    let page = member.get(&app, &detail).await;
    let marker = "name=\"version\" value=\"";
    let start = page.text.find(marker).unwrap() + marker.len();
    let version = page.text[start..].split('"').next().unwrap().to_owned();
    let rotate = format!("{detail}/rotate");
    let fields = [("grace_period_seconds", "0"), ("version", version.as_str())];
    let rotated = member.post(&app, &rotate, &fields).await;
    assert_eq!(rotated.status, StatusCode::CREATED);
    let marker = "id=\"api-key\" value=\"";
    let start = rotated.text.find(marker).unwrap() + marker.len();
    let new_key = rotated.text[start..].split('"').next().unwrap().to_owned();
    let twice = member.post(&app, &rotate, &fields).await;
    assert_eq!(twice.status, StatusCode::SEE_OTHER);
    assert_eq!(
        twice.header("location"),
        Some(format!("{detail}?done=unchanged").as_str())
    );
    assert_eq!(
        authorize(&app, &new_key).await,
        StatusCode::OK,
        "the copied key still works"
    );
}

#[tokio::test]
async fn odd_form_values_get_answers_not_failures() {
    let (app, member) = signed_in().await;
    // The last day there is: a credential expiring at its end, not an overflow.
    let far = member
        .post(
            &app,
            "/developer/api-credentials",
            &[("name", "Far"), ("expires_on", "9999-12-31")],
        )
        .await;
    assert_eq!(far.status, StatusCode::CREATED, "{}", far.text);
    // Bytes that are not UTF-8 are refused, as the API refuses them.
    let body = format!("csrf_token={}&name=%FF%FE", member.csrf);
    let odd = member
        .post_raw(&app, "/developer/api-credentials", &body)
        .await;
    assert_eq!(odd.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", odd.text);
    assert!(odd.text.contains("must be valid UTF-8"), "{}", odd.text);
    for (path, body) in [
        (
            "/developer/api-credentials",
            "csrf_token=CSRF&submission=nonsense&name=x",
        ),
        (
            "/developer/api-credentials",
            "csrf_token=CSRF&name=a&name=b",
        ),
        (
            "/developer/api-security",
            "csrf_token=CSRF&type=maybe&ip_network=1.2.3.4",
        ),
        (
            "/developer/api-security",
            "csrf_token=CSRF&type=deny&ip_network=999.1.1.1",
        ),
    ] {
        let response = member
            .post_raw(&app, path, &body.replace("CSRF", &member.csrf))
            .await;
        assert!(
            response.status.is_client_error(),
            "{path} {body}: {} {}",
            response.status,
            response.text
        );
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_cannot_outrun_the_login_throttle() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let guesses = (0..24).map(|i| {
        let app = &app;
        async move {
            post_login(app, EMAIL, &format!("guess number {i:02}"), "127.0.0.5")
                .await
                .status
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        checked < 5 + keyward_service::login::LoginThrottle::PARALLEL,
        "{checked} passwords were checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(s)),
        "{statuses:?}"
    );
    // A password far longer than any that can be set is refused without a hash.
    let long = post_login(&app, EMAIL, &"x".repeat(5_000), "127.0.0.6").await;
    assert_eq!(long.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_login_page_keeps_its_cookie_and_refuses_disguised_redirects() {
    let app = TestApp::new().await;
    let first = app.get("/login").send().await;
    let cookie = cookie_value(set_cookie(&first, "keyward_login").unwrap());
    let second = app
        .get("/login")
        .header("cookie", &format!("keyward_login={cookie}"))
        .send()
        .await;
    assert_eq!(
        csrf_of(&first.text),
        csrf_of(&second.text),
        "two tabs share one token"
    );
    for next in [
        "/%09/evil.example",
        "/%0A/evil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
    ] {
        let page = app.get(&format!("/login?next={next}")).send().await;
        assert_eq!(page.status, StatusCode::OK, "{next}");
        assert!(
            page.text
                .contains("name=\"next\" value=\"/developer/api-credentials\""),
            "{next}"
        );
    }
}

impl Member {
    /// A management API call made with this member's session and `csrf` in the header.
    fn api<'a>(
        &self,
        app: &'a TestApp,
        method: &str,
        path: &str,
        csrf: &str,
    ) -> crate::support::Call<'a> {
        app.call(method.parse().unwrap(), path)
            .header("cookie", &self.cookie)
            .header("x-csrf-token", csrf)
    }
}

#[tokio::test]
async fn the_management_api_accepts_a_session_with_its_csrf_token_in_a_header() {
    let app = TestApp::new().await;
    let member_id = add_member(&app, &app.organization_id, EMAIL).await;
    let member = login(&app, EMAIL).await;
    // The pages give a script the token in a meta tag: the forms' token.
    let page = member.get(&app, "/developer/api-credentials").await;
    let meta = "<meta name=\"keyward-csrf-token\" content=\"";
    let start = page.text.find(meta).expect("the token's meta tag") + meta.len();
    assert_eq!(&page.text[start..start + 64], member.csrf);

    let created = member
        .api(&app, "POST", "/v1/keys", &member.csrf)
        .json(serde_json::json!({"name": "Made by a member", "permissions": ["keys:read"]}))
        .send()
        .await
        .expect(201);
    assert!(created.header("ratelimit-limit").is_some());
    let id = created.json()["key_id"].as_str().unwrap().to_owned();
    let list = member
        .api(&app, "GET", "/v1/keys", &member.csrf)
        .send()
        .await
        .expect(200);
    assert!(list.text.contains(&id));
    // Recorded as the member's act.
    let log = app
        .get(&format!("/v1/audit-log?target_id={id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    assert_eq!(log.json()["data"][0]["actor"], member_id.as_str());

    // Without the token, with a wrong one, or with the token of another session: refused
    // before anything happens.
    let other_csrf = login(&app, EMAIL).await.csrf;
    assert_ne!(other_csrf, member.csrf);
    for csrf in ["", "0000", other_csrf.as_str(), &member.csrf[..63]] {
        member
            .api(&app, "POST", "/v1/keys", csrf)
            .json(serde_json::json!({"name": "Forged"}))
            .send()
            .await
            .assert_problem(403, "csrf_token_invalid");
    }
    let no_header = app
        .post("/v1/keys")
        .header("cookie", &member.cookie)
        .json(serde_json::json!({"name": "Forged"}))
        .send()
        .await;
    no_header.assert_problem(403, "csrf_token_invalid");
    let list = member
        .api(&app, "GET", "/v1/keys", &member.csrf)
        .send()
        .await;
    assert!(!list.expect(200).text.contains("Forged"));

    // A credential presented with the cookie decides alone: a bad one is not rescued by
    // the session.
    member
        .api(&app, "GET", "/v1/keys", &member.csrf)
        .key("kw_live_not_a_real_key")
        .send()
        .await
        .assert_problem(401, "unauthenticated");
    // The endpoints about the calling credential, and verification, need a credential.
    for (method, path) in [
        ("GET", "/v1/auth/client_credentials/introspect"),
        ("POST", "/v1/keys/verify"),
        ("GET", "/v1/authorize"),
    ] {
        member
            .api(&app, method, path, &member.csrf)
            .json(serde_json::json!({"key": "kw_live_x"}))
            .send()
            .await
            .assert_problem(401, "unauthenticated");
    }
    // Another organization's objects answer as missing.
    let other_key = app.other_organization().await;
    let foreign = app
        .create_key_as(&other_key, serde_json::json!({"name": "Theirs"}))
        .await;
    let foreign_id = foreign["key_id"].as_str().unwrap();
    member
        .api(&app, "GET", &format!("/v1/keys/{foreign_id}"), &member.csrf)
        .send()
        .await
        .assert_problem(404, "not_found");
    member
        .api(
            &app,
            "POST",
            &format!("/v1/keys/{foreign_id}/revoke"),
            &member.csrf,
        )
        .send()
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        authorize(&app, foreign["key"].as_str().unwrap()).await,
        StatusCode::OK
    );

    // A session that ended is no authentication.
    member.post(&app, "/logout", &[]).await;
    member
        .api(&app, "GET", "/v1/keys", &member.csrf)
        .send()
        .await
        .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn a_members_api_requests_count_against_the_organizations_ceiling() {
    let app = TestApp::with_management_ceiling(1, 3).await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let member = login(&app, EMAIL).await;
    for i in 0..3 {
        let answer = member
            .api(&app, "GET", "/v1/keys", &member.csrf)
            .send()
            .await;
        assert_eq!(answer.status, StatusCode::OK, "request {i}");
    }
    let refused = member
        .api(&app, "GET", "/v1/keys", &member.csrf)
        .send()
        .await;
    refused.assert_problem(429, "organization_rate_limited");
    assert!(refused.header("retry-after").is_some());
    // The organization's keys share it.
    app.get("/v1/keys")
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(429, "organization_rate_limited");
}

#[tokio::test]
async fn the_document_says_which_operations_a_session_may_call() {
    let (app, member) = signed_in().await;
    let document = app.get("/v1/openapi.json").send().await.expect(200).json();
    let mut with_session = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        let path = path
            .replace("{id}", "api_key_00000000000000000000000000")
            .replace("{name}", "no-such-role");
        for (method, operation) in item.as_object().unwrap() {
            let Some(security) = operation["security"].as_array() else {
                continue;
            };
            let named = |scheme: &str| security.iter().any(|s| s.get(scheme).is_some());
            // The OAuth endpoints authenticate their client their own way first.
            if !named("api_key") || named("oauth_client") {
                continue;
            }
            let answer = member
                .api(&app, &method.to_uppercase(), &path, &member.csrf)
                .send()
                .await;
            if named("session") {
                with_session += 1;
                assert_ne!(answer.status, 401, "{method} {path}: {}", answer.text);
                assert_ne!(answer.status, 403, "{method} {path}: {}", answer.text);
            } else {
                answer.assert_problem(401, "unauthenticated");
            }
        }
    }
    assert!(
        with_session >= 17,
        "{with_session} operations take a session"
    );
}

#[tokio::test]
async fn a_member_adds_tests_disables_and_deletes_a_webhook() {
    let (app, member) = signed_in().await;
    let empty = member.get(&app, "/developer/webhooks").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.text.contains("id=\"no-webhooks\""));
    let refused = member
        .post(
            &app,
            "/developer/webhooks",
            &[("url", "https://127.0.0.1/hook"), ("events", "*")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("id=\"url-error\""));
    let made = member
        .post(
            &app,
            "/developer/webhooks",
            &[
                ("url", "https://hooks.example.com/keyward"),
                ("events", "key.revoked"),
                ("events", "key.exposed"),
                ("description", "<i>ops</i>"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let marker = "id=\"webhook-secret\" value=\"";
    let start = made.text.find(marker).unwrap() + marker.len();
    let secret = &made.text[start..start + made.text[start..].find('"').unwrap()];
    keyward_store::testing::record_secrets([secret]);
    assert!(secret.starts_with("whsec_"));
    let listed = member.get(&app, "/developer/webhooks").await;
    assert!(listed.text.contains("key.exposed, key.revoked"));
    assert!(listed.text.contains("&#60;i&#62;ops") && !listed.text.contains(secret));
    let id = {
        let marker = "href=\"/developer/webhooks/";
        let start = listed.text.find(marker).unwrap() + marker.len();
        listed.text[start..start + listed.text[start..].find('"').unwrap()].to_owned()
    };
    let page = format!("/developer/webhooks/{id}");
    let tested = member.post(&app, &format!("{page}/test"), &[]).await;
    assert_eq!(tested.status, StatusCode::SEE_OTHER);
    let detail = member.get(&app, &page).await;
    assert!(detail.text.contains("webhook.test") && detail.text.contains("pending"));
    assert!(!detail.text.contains(secret));
    let rotated = member
        .post(&app, &format!("{page}/rotate-secret"), &[])
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let start = rotated.text.find(marker).unwrap() + marker.len();
    let new_secret = &rotated.text[start..start + rotated.text[start..].find('"').unwrap()];
    keyward_store::testing::record_secrets([new_secret]);
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    member.post(&app, &format!("{page}/disable"), &[]).await;
    assert!(
        member
            .get(&app, &page)
            .await
            .text
            .contains("id=\"disabled-warning\"")
    );
    member.post(&app, &format!("{page}/enable"), &[]).await;
    assert!(
        !member
            .get(&app, &page)
            .await
            .text
            .contains("id=\"disabled-warning\"")
    );
    let unknown = member.post(&app, &format!("{page}/explode"), &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let deleted = member.post(&app, &format!("{page}/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(member.get(&app, &page).await.status, StatusCode::NOT_FOUND);
    // Every change is the member's, in the audit log.
    let audit = app
        .get(&format!("/v1/audit-log?target_id={id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "webhook.deleted",
            "webhook.updated",
            "webhook.updated",
            "webhook.secret_rotated",
            "webhook.created",
        ]
    );
}

#[tokio::test]
async fn a_credential_reported_in_public_is_marked_exposed() {
    let (app, member) = signed_in().await;
    let (id, key, _) = create(&app, &member, "Pasted").await;
    let (other_id, _, _) = create(&app, &member, "Kept").await;
    let list = member.get(&app, "/developer/api-credentials").await;
    assert!(!list.text.contains("badge exposed"));
    app.post("/v1/leaks")
        .json(serde_json::json!({"keys": [key], "source": "https://paste.example/x"}))
        .send()
        .await
        .expect(202);
    // Revoked on the report, it is archived: shown with every status.
    let list = member
        .get(&app, "/developer/api-credentials?status=all")
        .await;
    assert_eq!(list.text.matches("badge exposed").count(), 1);
    let detail = member
        .get(&app, &format!("/developer/api-credentials/{id}"))
        .await;
    assert!(detail.text.contains("id=\"exposed-warning\""));
    let other = member
        .get(&app, &format!("/developer/api-credentials/{other_id}"))
        .await;
    assert!(!other.text.contains("id=\"exposed-warning\""));
    let record = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert!(record["exposed_at"].is_string());
}

#[tokio::test]
async fn a_dashboard_page_that_does_not_exist_is_an_html_404() {
    let app = TestApp::new().await;
    for path in ["/developer/nope", "/developer/api-credentials/x/y/z"] {
        let missing = app.get(path).send().await;
        assert_eq!(missing.status, 404, "{path}");
        assert!(
            missing
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(
            missing.text.contains("Not found"),
            "{path}: {}",
            missing.text
        );
        // With the dashboard's headers.
        assert_eq!(missing.header("x-frame-options"), Some("DENY"), "{path}");
        assert!(
            missing.header("content-security-policy").is_some(),
            "{path}"
        );
    }
    // The API's unknown paths stay problem documents.
    app.get("/v1/nope")
        .send()
        .await
        .assert_problem(404, "not_found");
}
