//! Real OAuth clients against the binary: Python's `authlib`, `requests-oauthlib`, `pyjwt`
//! and `jwcrypto` (`oauth_clients.py`), installed by `.ci/run` in a venv, and the Rust
//! `oauth2` crate. The interpreter is `KEYWARD_TEST_PYTHON`, else `python3`; the Python
//! test is skipped with a notice when it or the packages are missing, failing under
//! `KEYWARD_TEST_REQUIRE_SERVICES=1`.

use std::process::Command;

use keyward_store::testing::skip_or_fail;

use crate::support::{Server, database, init, run_python_script};

fn python() -> Option<String> {
    let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args([
            "-c",
            "import authlib, requests_oauthlib, jwt, jwcrypto, requests",
        ])
        .output()
        .ok()?;
    probe.status.success().then_some(python)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_oauth_clients_get_and_check_tokens() {
    let Some(python) = python() else {
        skip_or_fail(
            "python oauth clients",
            "python3 with authlib, requests-oauthlib, pyjwt[crypto] and jwcrypto (see .ci/run)",
        );
        return;
    };
    let db = database().await;
    let bootstrap = init(db.url());
    let server = Server::start(db.url(), &[], &[]);
    let envs = vec![
        ("KEYWARD_URL", server.base.clone()),
        ("CLIENT_ID", bootstrap.organization_id),
        ("CLIENT_SECRET", bootstrap.client_secret),
        // The test server is plain HTTP on loopback; oauthlib refuses that otherwise.
        ("OAUTHLIB_INSECURE_TRANSPORT", "1".to_owned()),
    ];
    run_python_script(python, "oauth_clients.py", envs, String::new).await;
}

/// The Rust `oauth2` crate's client credentials flow, with both authentication methods,
/// a narrowing scope, and its reading of an `invalid_client` answer.
#[tokio::test(flavor = "multi_thread")]
async fn the_rust_oauth2_crate_gets_tokens() {
    use oauth2::basic::{BasicClient, BasicErrorResponseType};
    use oauth2::{
        AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl,
    };

    let db = database().await;
    let bootstrap = init(db.url());
    let server = Server::start(db.url(), &[], &[]);
    // The crate's own reqwest (the server is plain HTTP on this machine: no TLS needed).
    let http = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token_url = TokenUrl::new(server.url("/v1/auth/token")).unwrap();
    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = BasicClient::new(ClientId::new(bootstrap.organization_id.clone()))
            .set_client_secret(ClientSecret::new(bootstrap.client_secret.clone()))
            .set_token_uri(token_url.clone())
            .set_auth_type(auth_type.clone());
        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("dns:read".to_owned()))
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth_type:?}: {e:?}"));
        assert_eq!(
            token.expires_in(),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            token
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            Some(vec!["dns:read".to_owned()])
        );
        assert!(token.refresh_token().is_none());
        let answer = http
            .get(server.url("/v1/authorize"))
            .bearer_auth(token.access_token().secret())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{auth_type:?}");
        assert_eq!(answer.headers()["x-keyward-scopes"], "dns:read");
    }
    let wrong = BasicClient::new(ClientId::new(bootstrap.organization_id.clone()))
        .set_client_secret(ClientSecret::new(format!("{}x", bootstrap.client_secret)))
        .set_token_uri(token_url);
    match wrong
        .exchange_client_credentials()
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(error.error(), &BasicErrorResponseType::InvalidClient);
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }
}
