//! OAuth 2.0 client credentials through HTTP: the token endpoint's answers and headers,
//! tokens accepted wherever a key is, forged tokens refused, revocation, introspection,
//! the JWKS and metadata documents, key rotation, and throttling of failed clients.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyward_service::Operator;
use serde_json::{Value, json};

use crate::support::{TestApp, TestResponse};

/// A credential's client id and secret, and its API key.
struct Client {
    id: String,
    secret: String,
    key: String,
    key_id: String,
}

async fn client(app: &TestApp, body: Value) -> Client {
    let created = app.create_key(body).await;
    Client {
        id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
        key: created["key"].as_str().unwrap().to_owned(),
        key_id: created["key_id"].as_str().unwrap().to_owned(),
    }
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn token_basic(app: &TestApp, id: &str, secret: &str, form: &str) -> TestResponse {
    app.post("/v1/auth/token")
        .header("authorization", &basic(id, secret))
        .raw("application/x-www-form-urlencoded", form.to_owned())
        .send()
        .await
}

async fn access_token(app: &TestApp, client: &Client) -> String {
    let response = token_basic(
        app,
        &client.id,
        &client.secret,
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.json()["access_token"].as_str().unwrap().to_owned()
}

fn assert_no_store(response: &TestResponse) {
    assert_eq!(
        response.header("cache-control"),
        Some("no-store"),
        "{}",
        response.text
    );
    assert_eq!(response.header("pragma"), Some("no-cache"));
}

fn assert_oauth_error(response: &TestResponse, status: u16, error: &str) {
    assert_eq!(response.status.as_u16(), status, "{}", response.text);
    assert_eq!(response.json()["error"], error, "{}", response.text);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_no_store(response);
}

async fn authorize_bearer(app: &TestApp, token: &str) -> TestResponse {
    app.get("/v1/authorize")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn basic_and_post_both_issue_a_token_that_works_like_a_key() {
    let app = TestApp::new().await;
    let c = client(
        &app,
        json!({"name": "oauth", "permissions": ["keys:read", "dns:*"]}),
    )
    .await;

    let response = token_basic(&app, &c.id, &c.secret, "grant_type=client_credentials").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_no_store(&response);
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let head = header(token);
    assert_eq!(head["typ"], "at+jwt");
    assert_eq!(head["alg"], "ES256");
    assert!(head["kid"].is_string());
    let claims = claims(token);
    assert_eq!(claims["sub"], c.key_id);
    assert_eq!(claims["client_id"], c.id);
    assert_eq!(claims["env"], "live");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    for claim in ["iss", "aud", "jti", "scope"] {
        assert!(claims[claim].is_string(), "{claim}: {claims}");
    }

    // client_secret_post, JSON body.
    let response = app
        .post("/v1/auth/token")
        .json(json!({"grant_type": "client_credentials", "client_id": c.id, "client_secret": c.secret}))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);

    // The token is accepted by the proxy endpoint, the management API and verify.
    let answer = authorize_bearer(&app, token).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.header("x-keyward-key-id"), Some(c.key_id.as_str()));
    let listed = app
        .get("/v1/keys")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let verified = app
        .post("/v1/keys/verify")
        .key(&app.admin_key)
        .json(json!({"key": token, "required_scopes": ["dns:write"]}))
        .send()
        .await;
    assert_eq!(verified.json()["code"], "VALID", "{}", verified.text);
    let record = app
        .get("/v1/auth/client_credentials/introspect")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text);
    assert_eq!(record.json()["authenticated_with"], "access_token");
    assert_eq!(record.json()["credential"]["key_id"], c.key_id);
}

#[tokio::test]
async fn scope_only_narrows() {
    let app = TestApp::new().await;
    let c = client(
        &app,
        json!({"name": "oauth", "permissions": ["keys:read", "dns:*"]}),
    )
    .await;
    let response = token_basic(
        &app,
        &c.id,
        &c.secret,
        "grant_type=client_credentials&scope=dns%3Aread",
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json()["scope"], "dns:read");
    let token = response.json()["access_token"].as_str().unwrap().to_owned();
    let verified = app
        .post("/v1/keys/verify")
        .key(&app.admin_key)
        .json(json!({"key": token, "required_scopes": ["dns:write"]}))
        .send()
        .await;
    assert_eq!(
        verified.json()["code"],
        "INSUFFICIENT_SCOPE",
        "{}",
        verified.text
    );
    let listed = app
        .get("/v1/keys")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    listed.assert_problem(403, "insufficient_scope");

    for scope in ["billing:read", "nonsense:read", "*"] {
        let response = token_basic(
            &app,
            &c.id,
            &c.secret,
            &format!(
                "grant_type=client_credentials&scope={}",
                scope.replace(':', "%3A")
            ),
        )
        .await;
        assert_oauth_error(&response, 400, "invalid_scope");
    }
}

#[tokio::test]
async fn every_client_authentication_failure_gets_the_same_answer() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth"})).await;
    let revoked = client(&app, json!({"name": "revoked"})).await;
    app.post(&format!("/v1/keys/{}/revoke", revoked.key_id))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    let disabled = client(&app, json!({"name": "disabled"})).await;
    app.post(&format!("/v1/keys/{}/disable", disabled.key_id))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    let expired = client(
        &app,
        json!({"name": "expired", "expires_at": "2026-06-01T13:00:00Z"}),
    )
    .await;
    let other_admin = app.other_organization().await;
    let other = app
        .create_key_as(&other_admin, json!({"name": "other"}))
        .await;
    let other_secret = other["client_secret"].as_str().unwrap();
    app.clock.advance(time::Duration::hours(2));

    let unknown_org = "organization_01jxe20q5hf9p4bm3kfz7v0w6t";
    // A secret of the right shape and checksum that no credential has: it reaches the
    // lookup, where a made-up one fails its checksum first.
    let unknown = keyward_core::secret::PlainSecret::generate(
        &keyward_core::secret::KeyPrefix::new("kw").unwrap(),
        keyward_core::secret::SecretKind::ClientSecret,
    );
    assert!(keyward_core::secret::parse_secret(unknown.expose()).is_ok());
    let cases: Vec<(&str, &str, &str)> = vec![
        ("unknown organization", unknown_org, &c.secret),
        ("well-formed unknown secret", &c.id, unknown.expose()),
        (
            "wrong secret",
            &c.id,
            "kw_cs_0000000000000000000000000000000000000000000000",
        ),
        ("another organization's secret", &c.id, other_secret),
        ("revoked", &revoked.id, &revoked.secret),
        ("disabled", &disabled.id, &disabled.secret),
        ("expired", &expired.id, &expired.secret),
        ("malformed", &c.id, "not-a-secret"),
        ("an API key as secret", &c.id, &c.key),
        ("malformed client id", "nobody", &c.secret),
    ];
    let mut basic_answers = Vec::new();
    let mut post_answers = Vec::new();
    for (cause, id, secret) in &cases {
        let response = token_basic(&app, id, secret, "grant_type=client_credentials").await;
        assert_oauth_error(&response, 401, "invalid_client");
        assert!(
            response
                .header("www-authenticate")
                .unwrap()
                .starts_with("Basic realm="),
            "{cause}"
        );
        basic_answers.push((cause, response.text));
        let form = format!(
            "grant_type=client_credentials&client_id={id}&client_secret={}",
            secret.replace('+', "%2B")
        );
        let response = app
            .post("/v1/auth/token")
            .raw("application/x-www-form-urlencoded", form)
            .send()
            .await;
        assert_oauth_error(&response, 401, "invalid_client");
        assert!(
            response
                .header("www-authenticate")
                .unwrap()
                .starts_with("Basic realm="),
            "{cause}: a 401 names the scheme it takes"
        );
        post_answers.push((cause, response.text));
    }
    for answers in [basic_answers, post_answers] {
        for (cause, text) in &answers {
            assert_eq!(text, &answers[0].1, "{cause} differs from {}", answers[0].0);
        }
    }
}

#[tokio::test]
async fn malformed_requests_are_invalid_request_and_other_grants_unsupported() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth"})).await;
    let form = "application/x-www-form-urlencoded";

    let repeated = token_basic(
        &app,
        &c.id,
        &c.secret,
        "grant_type=client_credentials&grant_type=client_credentials",
    )
    .await;
    assert_oauth_error(&repeated, 400, "invalid_request");

    let both = app
        .post("/v1/auth/token")
        .header("authorization", &basic(&c.id, &c.secret))
        .raw(
            form,
            format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                c.id, c.secret
            ),
        )
        .send()
        .await;
    assert_oauth_error(&both, 400, "invalid_request");

    let in_query = app
        .post(&format!("/v1/auth/token?client_secret={}", c.secret))
        .raw(
            form,
            format!("grant_type=client_credentials&client_id={}", c.id),
        )
        .send()
        .await;
    assert_oauth_error(&in_query, 400, "invalid_request");

    let no_grant = token_basic(&app, &c.id, &c.secret, "scope=dns%3Aread").await;
    assert_oauth_error(&no_grant, 400, "invalid_request");

    let other_grant = token_basic(&app, &c.id, &c.secret, "grant_type=password").await;
    assert_oauth_error(&other_grant, 400, "unsupported_grant_type");

    let duplicate_json = app
        .post("/v1/auth/token")
        .raw(
            "application/json",
            r#"{"grant_type":"client_credentials","grant_type":"x"}"#,
        )
        .send()
        .await;
    assert_oauth_error(&duplicate_json, 400, "invalid_request");

    let wrong_type = app
        .post("/v1/auth/token")
        .raw("text/plain", "grant_type=client_credentials")
        .send()
        .await;
    assert_oauth_error(&wrong_type, 400, "invalid_request");

    let get = app.get("/v1/auth/token").send().await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST"));
    assert_no_store(&get);
    // Every other method on every OAuth endpoint: the same answer, in RFC 6749's shape.
    for path in ["/v1/auth/token", "/v1/auth/revoke", "/v1/auth/introspect"] {
        for method in ["OPTIONS", "GET", "HEAD", "PUT", "PATCH", "DELETE", "TRACE"] {
            let answer = app
                .call(
                    axum::http::Method::from_bytes(method.as_bytes()).unwrap(),
                    path,
                )
                .send()
                .await;
            assert_eq!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(answer.header("allow"), Some("POST"), "{method} {path}");
            assert_no_store(&answer);
            if method != "HEAD" {
                assert_oauth_error(&answer, 405, "invalid_request");
            }
        }
    }
}

#[tokio::test]
async fn a_client_from_a_denied_address_is_unauthorized() {
    let app = TestApp::new().await;
    let c = client(
        &app,
        json!({"name": "oauth", "ip_allowlist": ["192.0.2.0/24"]}),
    )
    .await;
    let response = app
        .post("/v1/auth/token")
        .header("authorization", &basic(&c.id, &c.secret))
        .peer("198.51.100.7")
        .raw(
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials",
        )
        .send()
        .await;
    assert_oauth_error(&response, 400, "unauthorized_client");
}

/// Re-signs `token`'s header and claims after `edit`, with the real key unknown: the
/// signature is kept, so only a checker that ignores it could accept the result.
fn tamper(token: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
    let mut parts = token.split('.');
    let mut head = header(token);
    let mut body = claims(token);
    edit(&mut head, &mut body);
    let _ = (parts.next(), parts.next());
    let signature = parts.next().unwrap();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(head.to_string()),
        URL_SAFE_NO_PAD.encode(body.to_string()),
        signature
    )
}

#[tokio::test]
async fn forged_tokens_are_refused_as_invalid_token() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth", "permissions": ["*"]})).await;
    let token = access_token(&app, &c).await;
    assert_eq!(authorize_bearer(&app, &token).await.status, StatusCode::OK);

    let jwks: Value = app.get("/.well-known/jwks.json").send().await.json();
    let public = jwks["keys"][0].to_string();
    let kid = header(&token)["kid"].as_str().unwrap().to_owned();
    let hs256 = {
        let mut head = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        head.typ = Some("at+jwt".into());
        head.kid = Some(kid.clone());
        jsonwebtoken::encode(
            &head,
            &claims(&token),
            &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
        )
        .unwrap()
    };
    let alg_none = {
        let head = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(head.to_string()),
            token.split('.').nth(1).unwrap()
        )
    };
    let mut flipped = token.clone().into_bytes();
    let at = token.find('.').unwrap() + 5;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let forged = [
        ("alg none", alg_none),
        ("HS256 keyed with the public key", hs256),
        (
            "no typ",
            tamper(&token, |h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
        ),
        (
            "wrong iss",
            tamper(&token, |_, c| c["iss"] = json!("https://evil.example")),
        ),
        (
            "wrong aud",
            tamper(&token, |_, c| c["aud"] = json!("elsewhere")),
        ),
        ("more scope", tamper(&token, |_, c| c["scope"] = json!("*"))),
        (
            "unknown kid",
            tamper(&token, |h, _| h["kid"] = json!("kw9-unknown")),
        ),
        ("bit flip", String::from_utf8(flipped).unwrap()),
    ];
    for (what, forged) in forged {
        let answer = authorize_bearer(&app, &forged).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            answer.text
        );
        assert!(
            answer
                .header("www-authenticate")
                .unwrap()
                .contains("error=\"invalid_token\""),
            "{what}"
        );
    }

    // Expired beyond the 30 s leeway: refused as EXPIRED; within it, still good.
    app.clock.advance(time::Duration::seconds(3600 + 20));
    assert_eq!(authorize_bearer(&app, &token).await.status, StatusCode::OK);
    app.clock.advance(time::Duration::seconds(15));
    let late = authorize_bearer(&app, &token).await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED);
    assert_eq!(late.json()["outcome"], "EXPIRED", "{}", late.text);
}

#[tokio::test]
async fn revoking_the_credential_or_the_token_refuses_it_at_once() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth"})).await;
    let token = access_token(&app, &c).await;
    let other_token = access_token(&app, &c).await;
    assert_eq!(authorize_bearer(&app, &token).await.status, StatusCode::OK);

    let form = "application/x-www-form-urlencoded";
    for garbage in ["garbage", "eyJhbGciOiJub25lIn0.e30.", "kw_live_unknown"] {
        let response = app
            .post("/v1/auth/revoke")
            .header("authorization", &basic(&c.id, &c.secret))
            .raw(form, format!("token={garbage}"))
            .send()
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{garbage}: {}",
            response.text
        );
    }
    let response = app
        .post("/v1/auth/revoke")
        .header("authorization", &basic(&c.id, &c.secret))
        .raw(form, format!("token={token}&token_type_hint=access_token"))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_no_store(&response);
    let refused = authorize_bearer(&app, &token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["outcome"], "REVOKED");
    assert_eq!(
        authorize_bearer(&app, &other_token).await.status,
        StatusCode::OK,
        "only that jti"
    );

    let audit = app
        .get("/v1/audit-log?action=token.revoked")
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(
        audit.json()["data"].as_array().unwrap().len(),
        1,
        "{}",
        audit.text
    );

    // Revoking the credential refuses its tokens at once.
    app.post(&format!("/v1/keys/{}/revoke", c.key_id))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    let refused = authorize_bearer(&app, &other_token).await;
    assert_eq!(refused.json()["outcome"], "REVOKED", "{}", refused.text);

    // Another client's revocation of a token does nothing.
    let d = client(&app, json!({"name": "second"})).await;
    let token = access_token(&app, &d).await;
    let other_admin = app.other_organization().await;
    let other = app
        .create_key_as(&other_admin, json!({"name": "other"}))
        .await;
    let response = app
        .post("/v1/auth/revoke")
        .header(
            "authorization",
            &basic(
                other["client_id"].as_str().unwrap(),
                other["client_secret"].as_str().unwrap(),
            ),
        )
        .raw(form, format!("token={token}"))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(authorize_bearer(&app, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn introspection_answers_active_or_only_active_false() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth", "permissions": ["dns:read"]})).await;
    let token = access_token(&app, &c).await;
    let form = "application/x-www-form-urlencoded";
    let introspect = |token: String| {
        app.post("/v1/auth/introspect")
            .key(&app.admin_key)
            .raw(form, format!("token={token}"))
            .send()
    };
    let response = introspect(token.clone()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_no_store(&response);
    let body = response.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "dns:read");
    assert_eq!(body["sub"], c.key_id);
    assert_eq!(body["client_id"], c.id);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["jti"], claims(&token)["jti"]);

    // As an OAuth client, with Basic.
    let response = app
        .post("/v1/auth/introspect")
        .header("authorization", &basic(&c.id, &c.secret))
        .raw(form, format!("token={token}"))
        .send()
        .await;
    assert_eq!(response.json()["active"], true, "{}", response.text);

    let other_admin = app.other_organization().await;
    let other = app
        .create_key_as(&other_admin, json!({"name": "other"}))
        .await;
    let other_client = Client {
        id: other["client_id"].as_str().unwrap().to_owned(),
        secret: other["client_secret"].as_str().unwrap().to_owned(),
        key: String::new(),
        key_id: String::new(),
    };
    let foreign = access_token(&app, &other_client).await;
    for inactive in [
        foreign,
        "garbage".to_owned(),
        tamper(&token, |_, c| c["scope"] = json!("*")),
    ] {
        let response = introspect(inactive).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(
            response.json(),
            json!({"active": false}),
            "{}",
            response.text
        );
    }
    let unauthenticated = app
        .post("/v1/auth/introspect")
        .raw(form, format!("token={token}"))
        .send()
        .await;
    assert_oauth_error(&unauthenticated, 401, "invalid_client");
}

#[tokio::test]
async fn jwks_and_metadata_publish_what_clients_need() {
    let app = TestApp::new().await;
    let jwks = app.get("/.well-known/jwks.json").send().await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert!(
        jwks.header("cache-control")
            .unwrap()
            .contains("max-age=300")
    );
    let keys = jwks.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    for field in ["kid", "kty", "alg", "use", "crv", "x", "y"] {
        assert!(key[field].is_string(), "{field}: {key}");
    }
    assert!(key.get("d").is_none(), "no private parameter");

    let metadata = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await
        .json();
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let issuer = metadata["issuer"].as_str().unwrap();
    assert_eq!(
        metadata["token_endpoint"],
        format!("{issuer}/v1/auth/token")
    );
    assert_eq!(
        metadata["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
}

#[tokio::test]
async fn rotation_publishes_the_new_key_before_it_signs_and_keeps_old_tokens_valid() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth"})).await;
    let old_token = access_token(&app, &c).await;
    let old_kid = header(&old_token)["kid"].as_str().unwrap().to_owned();

    let rotated = app
        .state
        .service
        .tokens()
        .rotate_signing_key(&Operator::new())
        .await
        .unwrap();
    let kids = |jwks: Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let published = kids(app.get("/.well-known/jwks.json").send().await.json());
    assert_eq!(
        published,
        vec![old_kid.clone(), rotated.kid.clone()],
        "published before it signs"
    );
    let still_old = access_token(&app, &c).await;
    assert_eq!(header(&still_old)["kid"], old_kid.as_str());

    // Past the publish lead (10 min by default), the new key signs; old tokens still pass.
    app.clock.advance(time::Duration::minutes(11));
    let new_token = access_token(&app, &c).await;
    assert_eq!(header(&new_token)["kid"], rotated.kid.as_str());
    assert_eq!(
        authorize_bearer(&app, &old_token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        authorize_bearer(&app, &new_token).await.status,
        StatusCode::OK
    );

    // The old private key is gone from the store; its public key stays until its tokens end.
    let stored = app.store.signing_keys().await.unwrap();
    let old = stored.iter().find(|k| k.kid == old_kid).unwrap();
    assert!(
        old.sealed_private_key.is_none(),
        "old private key destroyed"
    );
    assert!(old.published_until.is_some());
    app.clock.advance(time::Duration::hours(2));
    let published = kids(app.get("/.well-known/jwks.json").send().await.json());
    assert_eq!(
        published,
        vec![rotated.kid.clone()],
        "unpublished after its last token expired"
    );
}

#[tokio::test]
async fn failed_client_authentication_is_throttled_per_address() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth"})).await;
    let form = "application/x-www-form-urlencoded";
    let mut last = None;
    for _ in 0..25 {
        let response = app
            .post("/v1/auth/token")
            .header(
                "authorization",
                &basic(
                    &c.id,
                    "kw_cs_0000000000000000000000000000000000000000000000",
                ),
            )
            .peer("127.0.0.2")
            .raw(form, "grant_type=client_credentials")
            .send()
            .await;
        last = Some(response);
    }
    let last = last.unwrap();
    assert_oauth_error(&last, 429, "temporarily_unavailable");
    assert!(last.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // The legitimate client elsewhere is not affected.
    let response = app
        .post("/v1/auth/token")
        .header("authorization", &basic(&c.id, &c.secret))
        .peer("127.0.0.3")
        .raw(form, "grant_type=client_credentials")
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

#[tokio::test]
async fn ed25519_and_rs256_keys_sign_tokens_that_verify() {
    use keyward_engine::tokens::SigningAlgorithm;
    use keyward_server::ServerConfig;
    use keyward_service::ServiceConfig;
    use keyward_service::signing::SigningConfig;
    for (algorithm, kty) in [
        (SigningAlgorithm::EdDsa, "OKP"),
        (SigningAlgorithm::Rs256, "RSA"),
    ] {
        let config = ServerConfig {
            service: ServiceConfig {
                signing: SigningConfig {
                    algorithm,
                    ..SigningConfig::default()
                },
                ..ServiceConfig::default()
            },
            ..ServerConfig::default()
        };
        let app = TestApp::with_config(config).await;
        let c = client(&app, json!({"name": "oauth"})).await;
        let token = access_token(&app, &c).await;
        assert_eq!(header(&token)["alg"], algorithm.name());
        let jwks: Value = app.get("/.well-known/jwks.json").send().await.json();
        assert_eq!(jwks["keys"][0]["kty"], kty);
        assert!(jwks["keys"][0].get("d").is_none());
        assert_eq!(
            authorize_bearer(&app, &token).await.status,
            StatusCode::OK,
            "{algorithm:?}"
        );
    }
}

#[tokio::test]
async fn a_node_with_another_master_key_makes_and_retires_no_signing_key() {
    use std::sync::Arc;

    use keyward_server::{AppState, ServerConfig};
    use keyward_store::{SqlStore, Store};
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth"})).await;
    let first = access_token(&app, &c).await;

    // Another node (or a CLI run) on the same database with a different master key.
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(app.database.url()).await.unwrap());
    let stray = AppState::new(
        store.clone(),
        Arc::new(app.clock.clone()),
        ServerConfig::default(),
    );
    let stray_tokens = stray.service.tokens();
    assert!(
        stray_tokens
            .rotate_signing_key(&Operator::new())
            .await
            .is_err(),
        "rotation refused"
    );
    app.clock.advance(time::Duration::days(40));
    let later = app.state.clock.now();
    let ring = stray_tokens.keys().await.unwrap();
    assert!(ring.signer(later).is_none(), "it cannot sign");
    assert_eq!(
        store.signing_keys().await.unwrap().len(),
        1,
        "it made no key, though one was due"
    );
    // The real node still signs (its scheduled key now), and its old key was not erased
    // by the stray one.
    let token = access_token(&app, &c).await;
    assert_eq!(authorize_bearer(&app, &token).await.status, StatusCode::OK);
    drop(first);
}

#[tokio::test]
async fn introspection_ignores_the_address_restrictions_of_the_introspected_credential() {
    let app = TestApp::new().await;
    let c = client(
        &app,
        json!({"name": "restricted", "ip_allowlist": ["127.0.0.0/8"], "permissions": ["dns:read"]}),
    )
    .await;
    let token = access_token(&app, &c).await;
    for (auth_header, value) in [
        ("x-api-key", app.admin_key.clone()),
        ("authorization", basic(&c.id, &c.secret)),
    ] {
        let response = app
            .post("/v1/auth/introspect")
            .header(auth_header, &value)
            .raw(
                "application/x-www-form-urlencoded",
                format!("token={token}"),
            )
            .send()
            .await;
        assert_eq!(
            response.json()["active"],
            true,
            "{auth_header}: {}",
            response.text
        );
    }
}

#[tokio::test]
async fn revoked_secrets_count_towards_the_throttle_like_made_up_ones() {
    let app = TestApp::new().await;
    let revoked = client(&app, json!({"name": "revoked"})).await;
    app.post(&format!("/v1/keys/{}/revoke", revoked.key_id))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let response = app
            .post("/v1/auth/token")
            .header("authorization", &basic(&revoked.id, &revoked.secret))
            .peer("127.0.0.4")
            .raw(
                "application/x-www-form-urlencoded",
                "grant_type=client_credentials",
            )
            .send()
            .await;
        statuses.push(response.status.as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn an_unreadable_basic_header_or_an_extra_empty_secret_is_refused() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth"})).await;
    for header_value in ["Basic", "Basic ", "basic !!!"] {
        let response = app
            .post("/v1/auth/token")
            .header("authorization", header_value)
            .raw(
                "application/x-www-form-urlencoded",
                format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}",
                    c.id, c.secret
                ),
            )
            .send()
            .await;
        assert_eq!(
            response.status.as_u16() / 100,
            4,
            "{header_value}: {}",
            response.text
        );
        assert_ne!(response.status, StatusCode::OK);
    }
    let bare = app
        .post("/v1/auth/token")
        .header("authorization", "Basic")
        .raw(
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials",
        )
        .send()
        .await;
    assert_oauth_error(&bare, 401, "invalid_client");
    assert!(bare.header("www-authenticate").is_some());
    let empty_secret = app
        .post("/v1/auth/token")
        .header("authorization", &basic(&c.id, &c.secret))
        .raw(
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&client_secret=",
        )
        .send()
        .await;
    assert_oauth_error(&empty_secret, 400, "invalid_request");
}

/// The order of P-256, big-endian, to build the high-S twin of an ES256 signature.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

#[tokio::test]
async fn the_malleable_twin_of_an_es256_token_is_refused() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth"})).await;
    let token = access_token(&app, &c).await;
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let mut borrow = 0i16;
    for j in (0..32).rev() {
        let mut d = i16::from(P256_ORDER[j]) - i16::from(bytes[32 + j]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        bytes[32 + j] = u8::try_from(d).unwrap();
    }
    let twin = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes));
    assert_eq!(authorize_bearer(&app, &token).await.status, StatusCode::OK);
    let answer = authorize_bearer(&app, &twin).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
}

#[tokio::test]
async fn token_requests_count_against_the_credentials_rate_limit() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "oauth", "rate_limit_override": 1})).await;
    for _ in 0..2 {
        access_token(&app, &c).await;
    }
    let refused = token_basic(&app, &c.id, &c.secret, "grant_type=client_credentials").await;
    assert_oauth_error(&refused, 429, "temporarily_unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
}

/// Rotates `client`'s secrets with `grace` seconds of grace; returns the new client secret.
async fn rotate(app: &TestApp, client: &Client, grace: i64) -> String {
    let rotated = app
        .post(&format!("/v1/keys/{}/rotate", client.key_id))
        .key(&app.admin_key)
        .json(json!({"grace_period_seconds": grace}))
        .send()
        .await
        .expect(200);
    rotated.json()["client_secret"].as_str().unwrap().to_owned()
}

/// Asserts that `token` is refused at `/v1/authorize` as `EXPIRED`.
async fn assert_ended(app: &TestApp, token: &str, what: &str) {
    let answer = authorize_bearer(app, token).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        answer.text
    );
    assert_eq!(
        answer.json()["outcome"],
        "EXPIRED",
        "{what}: {}",
        answer.text
    );
}

#[tokio::test]
async fn a_rotation_ends_the_tokens_minted_before_it_with_its_grace_or_at_once() {
    let app = TestApp::new().await;
    let mut c = client(&app, json!({"name": "rotating"})).await;
    let before = access_token(&app, &c).await;
    assert_eq!(authorize_bearer(&app, &before).await.status, StatusCode::OK);

    // Ten minutes of grace: the tokens from before live as long as the old secret, and a
    // token the old secret gets during the grace ends with it too.
    let new_secret = rotate(&app, &c, 600).await;
    let old_secret = std::mem::replace(&mut c.secret, new_secret);
    let after = access_token(&app, &c).await;
    let during = token_basic(&app, &c.id, &old_secret, "grant_type=client_credentials").await;
    assert_eq!(during.status, StatusCode::OK, "{}", during.text);
    let during = during.json();
    assert_eq!(during["expires_in"], 600, "{during}");
    let during = during["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims(&during)["exp"].as_i64().unwrap() - claims(&during)["iat"].as_i64().unwrap(),
        600
    );
    app.clock.advance(time::Duration::seconds(599));
    for token in [&before, &during, &after] {
        assert_eq!(authorize_bearer(&app, token).await.status, StatusCode::OK);
    }
    app.clock.advance(time::Duration::seconds(2));
    assert_ended(&app, &before, "minted before the rotation").await;
    assert_ended(&app, &during, "minted with the old secret in its grace").await;
    assert_eq!(authorize_bearer(&app, &after).await.status, StatusCode::OK);

    // Without grace: at once, and introspection agrees.
    c.secret = rotate(&app, &c, 0).await;
    assert_ended(&app, &after, "minted before a rotation without grace").await;
    let introspected = app
        .post("/v1/auth/introspect")
        .header("authorization", &basic(&c.id, &c.secret))
        .raw(
            "application/x-www-form-urlencoded",
            format!("token={after}"),
        )
        .send()
        .await
        .expect(200);
    assert_eq!(
        introspected.json()["active"],
        false,
        "{}",
        introspected.text
    );
    let fresh = access_token(&app, &c).await;
    assert_eq!(authorize_bearer(&app, &fresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn disabling_a_credential_ends_its_tokens_for_good() {
    let app = TestApp::new().await;
    let c = client(&app, json!({"name": "paused"})).await;
    let before = access_token(&app, &c).await;
    assert_eq!(authorize_bearer(&app, &before).await.status, StatusCode::OK);
    for action in ["disable", "enable"] {
        app.post(&format!("/v1/keys/{}/{action}", c.key_id))
            .key(&app.admin_key)
            .send()
            .await
            .expect(200);
    }
    assert_ended(&app, &before, "minted before a disable").await;
    // The credential itself works again, and so do the tokens it gets now.
    let after = access_token(&app, &c).await;
    assert_eq!(authorize_bearer(&app, &after).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/authorize").key(&c.key).send().await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_revokes_itself_without_keys_write_but_a_token_cannot() {
    let app = TestApp::new().await;
    let holder = client(&app, json!({"name": "Leaked", "permissions": ["dns:read"]})).await;
    // An access token of the credential may not end it.
    let token = access_token(&app, &holder).await;
    app.post("/v1/keys/self/revoke")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await
        .assert_problem(403, "api_key_required");
    assert_eq!(authorize_bearer(&app, &token).await.status, StatusCode::OK);
    // Nor can the caller without a credential.
    app.post("/v1/keys/self/revoke")
        .send()
        .await
        .assert_problem(401, "unauthenticated");

    let revoked = app
        .post("/v1/keys/self/revoke")
        .key(&holder.key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(revoked["key_id"], holder.key_id.as_str());
    assert_eq!(revoked["status"], "revoked");
    // At once: the key, its token and a second attempt are refused.
    let again = app
        .post("/v1/keys/self/revoke")
        .key(&holder.key)
        .send()
        .await;
    assert_eq!(
        again.assert_problem(401, "unauthenticated")["outcome"],
        "REVOKED"
    );
    assert_eq!(
        authorize_bearer(&app, &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Recorded as the key's own act.
    let log = app
        .get(&format!("/v1/audit-log?target_id={}", holder.key_id))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(log["data"][0]["action"], "key.revoked");
    assert_eq!(log["data"][0]["actor"], holder.key_id.as_str());
}
