//! `/mcp`: Keyward's tools for AI assistants, over the Model Context Protocol's Streamable
//! HTTP transport (`rmcp`, the protocol's official Rust SDK).
//!
//! Every request is admitted like a management API request, by the credential in
//! `Authorization: Bearer` (an API key or an access token): its organization, scopes,
//! environment, the organization's IP rules as seen from the caller's address, and its rate
//! limit. A request without one is refused with a `WWW-Authenticate` challenge naming the
//! protected resource metadata (`/.well-known/oauth-protected-resource`, RFC 9728), from
//! which an MCP client learns where to get a token. Each tool is a thin adapter over the
//! service function the API calls, run as that credential: a tool it may not use is not
//! listed, and calling it anyway is a tool error naming the missing scope.
//!
//! Errors a caller can act on (a bad argument, a missing scope, an unknown key) are tool
//! results marked as errors, carrying the problem's `code` and message, as the API's
//! problem documents do: never a transport failure.

mod tools;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use crate::caller::KeyCaller;
use crate::state::AppState;

pub use tools::Tools;

/// Where the tools are served.
pub const PATH: &str = "/mcp";
/// Where the protected resource metadata is published.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The MCP endpoint and its metadata.
pub fn routes(state: &AppState) -> Router<AppState> {
    let tools_state = state.clone();
    // Stateless: each request is admitted on its own credential, and a simple call is
    // answered with JSON. The Host check guards servers that trust whoever reaches them;
    // every request here must carry a credential, which a page of another site cannot
    // attach.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(state.config.body_limit_bytes)
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(Tools::new(tools_state.clone())),
        NeverSessionManager::default().into(),
        config,
    );
    Router::new()
        .nest_service(
            PATH,
            tower::ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(state.clone(), authenticate))
                .service(service),
        )
        .route(METADATA_PATH, get(metadata))
}

/// Admits the request by its credential and leaves the caller for the tools; otherwise
/// answers the refusal with the challenge that points to the metadata.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    // RFC 6750: a credential that was presented and refused is an invalid token; a request
    // without one gets the bare challenge.
    let presented = parts.headers.contains_key(header::AUTHORIZATION)
        || parts.headers.contains_key("x-api-key");
    let caller = <KeyCaller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
        &mut parts, &state,
    )
    .await;
    match caller {
        Ok(mut caller) => {
            // The audit log says which changes came through MCP.
            caller.actor.via = Some("mcp");
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => {
            let mut response = error.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                let error = if presented {
                    ", error=\"invalid_token\""
                } else {
                    ""
                };
                let challenge = format!(
                    "Bearer resource_metadata=\"{}{METADATA_PATH}\"{error}",
                    issuer(&state)
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
            }
            response
        }
    }
}

/// RFC 9728: this resource, the authorization server that issues its tokens (Keyward
/// itself), and how a token is presented.
async fn metadata(State(state): State<AppState>) -> Response {
    let issuer = issuer(&state);
    let body = json!({
        "resource": format!("{issuer}{PATH}"),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": crate::openapi::values::scope_names(&state.engine.config().catalogue),
        "resource_documentation": format!("{issuer}/docs/"),
    });
    ([(header::CACHE_CONTROL, "max-age=300")], axum::Json(body)).into_response()
}

/// Keyward's public base URL: the issuer of its access tokens.
fn issuer(state: &AppState) -> &str {
    state.engine.config().tokens.issuer.trim_end_matches('/')
}
