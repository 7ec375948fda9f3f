//! Keyward inside the API: a tower layer for axum that checks every request's credential
//! in-process, against the same store, with the same decision as `/v1/authorize`.
//!
//! ```no_run
//! use axum::{Extension, Router, routing::get};
//! use keyward::layer::{KeywardLayer, RequireScope};
//! use keyward::Identity;
//! # async fn run(state: keyward::server::AppState) {
//! let app: Router = Router::new()
//!     .route("/v1/domains", get(|Extension(who): Extension<std::sync::Arc<Identity>>| async move {
//!         format!("domains of {}", who.credential.organization_id)
//!     }))
//!     .route_layer(RequireScope::new("domains:read").unwrap())
//!     .layer(KeywardLayer::new(&state));
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use keyward_core::credential::Environment;
use keyward_core::scope::{Scope, ScopeCatalogue, ScopeError};
use keyward_core::verify::Outcome;
use keyward_server::error::ApiError;
use keyward_server::gate::{admit, rate_limit_headers};
use keyward_server::verifier::{Identity, Verifier};
use keyward_server::{AppState, ServerConfig};
use tower::{Layer, Service};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Checks each request's credential and puts its [`Identity`] into the request's
/// extensions; refuses with 401, 403 or 429 (problem+json, RFC 6750 headers) otherwise.
#[derive(Clone)]
pub struct KeywardLayer {
    verifier: Arc<Verifier>,
    config: Arc<ServerConfig>,
    scopes: Arc<[Scope]>,
    environment: Option<Environment>,
}

impl KeywardLayer {
    /// A layer checking credentials with `state`'s verifier and settings.
    pub fn new(state: &AppState) -> Self {
        Self {
            verifier: state.verifier.clone(),
            config: state.config.clone(),
            scopes: Arc::new([]),
            environment: None,
        }
    }

    /// Also requires every request's credential to belong to `environment`.
    pub fn require_environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Also requires these scopes of every request.
    pub fn require_scopes(mut self, scopes: &[&str]) -> Result<Self, ScopeError> {
        self.scopes = parse_scopes(&self.config.catalogue, scopes)?.into();
        Ok(self)
    }
}

fn parse_scopes(catalogue: &ScopeCatalogue, scopes: &[&str]) -> Result<Vec<Scope>, ScopeError> {
    scopes.iter().map(|s| catalogue.parse(s)).collect()
}

impl<S> Layer<S> for KeywardLayer {
    type Service = Keyward<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Keyward {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`KeywardLayer`] wraps around an API.
#[derive(Clone)]
pub struct Keyward<S> {
    inner: S,
    layer: KeywardLayer,
}

impl<S> Service<Request<Body>> for Keyward<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service that was polled ready serves this request; a clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let query = parts.uri.query().map(str::to_owned);
            let admitted = admit(
                &layer.verifier,
                &layer.config,
                &parts,
                query.as_deref(),
                &layer.scopes,
                layer.environment,
            )
            .await;
            match admitted {
                Ok(admitted) => {
                    parts.extensions.insert(admitted.identity.clone());
                    let mut response = inner.call(Request::from_parts(parts, body)).await?;
                    if let Some(rate) = &admitted.rate {
                        rate_limit_headers(rate, response.headers_mut());
                    }
                    Ok(response)
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// Refuses, with 403 `insufficient_scope`, requests whose [`Identity`] (put there by
/// [`KeywardLayer`]) lacks a scope. Use it as a `route_layer` on the routes that need it.
#[derive(Clone)]
pub struct RequireScope {
    scope: Arc<Scope>,
}

impl RequireScope {
    /// Requires `scope` (from the default catalogue), e.g. `"dns:write"`.
    pub fn new(scope: &str) -> Result<Self, ScopeError> {
        Self::in_catalogue(scope, &ScopeCatalogue::default())
    }

    /// Requires `scope` from a deployment's own catalogue.
    pub fn in_catalogue(scope: &str, catalogue: &ScopeCatalogue) -> Result<Self, ScopeError> {
        Ok(Self {
            scope: Arc::new(catalogue.parse(scope)?),
        })
    }
}

impl<S> Layer<S> for RequireScope {
    type Service = ScopeGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ScopeGuard {
            inner,
            scope: self.scope.clone(),
        }
    }
}

/// The service [`RequireScope`] wraps around a route.
#[derive(Clone)]
pub struct ScopeGuard<S> {
    inner: S,
    scope: Arc<Scope>,
}

impl<S> Service<Request<Body>> for ScopeGuard<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let refusal = match request.extensions().get::<Arc<Identity>>() {
            None => Some(ApiError::Unauthenticated(Outcome::Missing)),
            Some(identity) if !identity.scopes.grants(&self.scope) => {
                Some(ApiError::InsufficientScope(self.scope.to_string()))
            }
            Some(_) => None,
        };
        if let Some(refusal) = refusal {
            return Box::pin(async move { Ok(refusal.into_response()) });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await })
    }
}
