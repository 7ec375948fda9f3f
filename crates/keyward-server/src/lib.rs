//! Keyward's HTTP interface: thin adapters over the management service and the
//! verification engine. Each handler parses its request, calls one service or engine
//! function, and renders the result; failures become problem+json (RFC 6749's shape on the
//! OAuth endpoints).
//!
//! # Layout
//! - [`router`]: the axum router with its middleware, the one production and tests use.
//! - [`state`]: `AppState`, wiring the store, the engine, the gate and the service.
//! - [`config`]: `ServerConfig`, every setting, and each part's narrow view of it.
//! - [`caller`]: the authenticated caller of an API request, admitted by the gate.
//! - [`routes`](mod@routes): the handlers, one module per resource.
//! - [`json`]: JSON documents shared beyond one handler (and the CLI's `--json`).
//! - [`answers`]: what answers about a cached credential reuse while it stays cached.
//! - [`original`]: how `/v1/authorize` reads the proxied request and its routes' scopes.
//! - [`oauth`]: OAuth's request parameters and error answers.
//! - [`dashboard`]: the web dashboard for organization members (login, credentials, IP
//!   rules, audit log).
//! - [`error`]: `ApiError` and its problem+json answers.
//! - [`extract`]: body and query extractors whose rejections are problem+json.
//! - [`deadline`]: the request timeout, armed only for requests that wait.
//! - [`listen`]: accepting connections, with bounds on slow and idle clients and on their
//!   number.
//! - [`metrics`]: Prometheus metrics and request latency.
//! - [`openapi`]: the OpenAPI 3.1 document generated from the handlers, served at
//!   `/v1/openapi.json` with an interactive reference at `/docs`.

pub mod answers;
pub mod caller;
pub mod config;
pub mod dashboard;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod json;
pub mod listen;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod original;
pub mod routes;
pub mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use crate::config::ServerConfig;
use crate::error::ApiError;
pub use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The routes and their OpenAPI description, before state and middleware.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base_document())
        .routes(routes!(routes::keys::create, routes::keys::list))
        .routes(routes!(routes::keys::get, routes::keys::update))
        .routes(routes!(routes::keys::disable))
        .routes(routes!(routes::keys::enable))
        .routes(routes!(routes::keys::revoke))
        .routes(routes!(routes::keys::revoke_self))
        .routes(routes!(routes::keys::lookup))
        .routes(routes!(routes::leaks::report))
        .routes(routes!(routes::leaks::report_github))
        .routes(routes!(routes::keys::rotate))
        .routes(routes!(routes::usage::usage))
        .routes(routes!(routes::audit::list))
        .routes(routes!(routes::audit::export))
        .routes(routes!(routes::ip_rules::list, routes::ip_rules::create))
        .routes(routes!(routes::ip_rules::update, routes::ip_rules::delete))
        .routes(routes!(routes::webhooks::list, routes::webhooks::create))
        .routes(routes!(
            routes::webhooks::get,
            routes::webhooks::update,
            routes::webhooks::delete
        ))
        .routes(routes!(routes::webhooks::rotate_secret))
        .routes(routes!(routes::webhooks::test))
        .routes(routes!(routes::webhooks::deliveries))
        .routes(routes!(routes::roles::list, routes::roles::create))
        .routes(routes!(routes::roles::scopes))
        .routes(routes!(routes::oauth::caller_record))
        // The management routes above put their caller's rate limit on every answer and
        // count scope refusals as such; the verification and OAuth routes below set their
        // own headers and skip the cost.
        .route_layer(axum::middleware::from_fn(caller::admission_layer))
        .routes(routes!(routes::verify::verify))
        .routes(routes!(routes::authorize::authorize))
        .routes(routes!(routes::oauth::token))
        .routes(routes!(routes::oauth::jwks))
        .routes(routes!(routes::oauth::metadata))
        .routes(routes!(routes::oauth::introspect))
        .routes(routes!(routes::oauth::revoke))
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
}

/// The complete application: every route, the OpenAPI document at `/v1/openapi.json`, and
/// the middleware (request ids, tracing without secrets, panics as 500 problems, body limit,
/// timeout).
pub fn router(state: AppState) -> Router {
    // Installed before any request counts anything.
    metrics::install();
    let (routes, document) = api_routes().split_for_parts();
    let document = openapi::complete(document, &state.config);
    // The document at /v1/openapi.json, and the interactive reference at /docs where each
    // endpoint can be tried; its assets are inside the binary (no CDN).
    let reference = Router::from(SwaggerUi::new("/docs").url("/v1/openapi.json", document)).layer(
        ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            )),
    );
    let config = state.config.clone();
    // `/metrics` beside the API unless it has an address of its own.
    let routes = match config.metrics_listen {
        None => routes.route("/metrics", get(metrics::scrape)),
        Some(_) => routes,
    };
    // The OAuth endpoints answer any other method in RFC 6749's shape: 405 with
    // `Allow: POST` and `Cache-Control: no-store`.
    let routes = ["/v1/auth/token", "/v1/auth/revoke", "/v1/auth/introspect"]
        .into_iter()
        .fold(routes, |routes, path| {
            routes.route(path, MethodRouter::new().fallback(routes::oauth::post_only))
        });
    routes
        // Proxies that forward the original method and path (Envoy's ext_authz) append
        // the path, which no OpenAPI path can describe.
        .route(
            "/v1/authorize/{*original}",
            any(routes::authorize::authorize),
        )
        .merge(reference)
        .merge(dashboard::routes())
        .merge(mcp::routes(&state))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // One `layer` call for all the middleware: each call wraps every route in another
        // boxed service, which a request clones (an allocation a level).
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, RequestIds))
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                    keyward_gate::transport::API_KEY_HEADER,
                ]))
                .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| panic_response()))
                .layer(deadline::DeadlineLayer::new(config.request_timeout))
                .layer(DefaultBodyLimit::max(config.body_limit_bytes))
                .layer(metrics::LatencyLayer),
        )
        .with_state(state)
}

/// The policy of the interactive reference at `/docs`: its scripts, styles and images come
/// from this server only (they are inside the binary), it may call this server's API (its
/// "Try it out"), and no other site may frame it. Swagger UI draws its icons as `data:`
/// images and adds one fixed `<style>` element, allowed by its hash alone.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Request ids: a random prefix drawn by each worker thread and that thread's counter,
/// unique without a system call per request (a UUIDv4 per request costs a `getrandom`) and
/// without a counter the cores share.
#[derive(Clone, Copy)]
struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        thread_local! {
            static PREFIX: u32 = {
                let mut bytes = [0u8; 4];
                keyward_core::secret::fill_random(&mut bytes);
                u32::from_be_bytes(bytes)
            };
            static NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        let n = NEXT.with(|next| next.replace(next.get() + 1));
        // `{prefix:08x}-{n:012x}`, written without `fmt`: this runs for every request.
        let mut id = [b'-'; 21];
        hex_digits(u64::from(PREFIX.with(|prefix| *prefix)), &mut id[..8]);
        hex_digits(n, &mut id[9..]);
        axum::http::HeaderValue::from_bytes(&id)
            .ok()
            .map(RequestId::new)
    }
}

/// Writes the low `out.len()` hexadecimal digits of `n` into `out`, most significant first.
fn hex_digits(mut n: u64, out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for digit in out.iter_mut().rev() {
        *digit = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// The span of one request: method, path and request id. Never the query string (it may
/// carry `api_key=`) nor any header value.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
}

fn panic_response() -> Response {
    tracing::error!("a handler panicked");
    ApiError::internal().into_response()
}

/// `/metrics` alone, for its own address ([`ServerConfig::metrics_listen`]).
pub fn metrics_router(state: AppState) -> Router {
    metrics::install();
    Router::new()
        .route("/metrics", get(metrics::scrape))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Serves the application on `listener`, and `/metrics` on `metrics` when it has an address
/// of its own, until `shutdown` completes; then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connections.clone();
    let scraper = metrics.map(|listener| {
        let (router, limits) = (metrics_router(state.clone()), limits.clone());
        tokio::spawn(async move {
            listen::serve_router(listener, router, &limits, std::future::pending()).await
        })
    });
    let served = listen::serve_router(listener, router(state), &limits, shutdown).await;
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    served
}
