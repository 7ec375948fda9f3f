//! Keyward inside the API: a tower layer for axum that admits every request in-process,
//! against the same store, with the same decision as `/v1/authorize`.
//!
//! ```no_run
//! use axum::{Extension, Router, routing::get};
//! use keyward_engine::Identity;
//! use keyward_gate::layer::{KeywardLayer, RequireScope};
//! # async fn run(gate: keyward_gate::Gate) {
//! let app: Router = Router::new()
//!     .route("/v1/domains", get(|Extension(who): Extension<std::sync::Arc<Identity>>| async move {
//!         format!("domains of {}", who.credential.organization_id)
//!     }))
//!     .route_layer(RequireScope::new("domains:read").unwrap())
//!     .layer(KeywardLayer::new(&gate));
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
use keyward_core::rate_limit::RateDecision;
use keyward_core::scope::{Scope, ScopeCatalogue, ScopeError};
use keyward_core::verify::Outcome;
use keyward_engine::{Demand, Identity, Purpose};
use tower::{Layer, Service};

use crate::Gate;
use crate::headers::rate_limit_headers;
use crate::refusal::Refusal;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a guard decided about a request: let it through (as it became), with the rate
/// limit state its answer reports, or refuse it.
type Verdict = Result<(Request<Body>, Option<RateDecision>), Refusal>;

/// A decision in front of an inner service, made for each request before it goes on.
pub trait Guard: Clone + Send + Sync + 'static {
    /// Decides about `request`.
    fn decide(&self, request: Request<Body>) -> impl Future<Output = Verdict> + Send;
}

/// The service a [`Guard`] wraps around an API or a route: it asks the guard about each
/// request, answers a refusal itself, and otherwise calls the inner service and puts the
/// rate limit's `RateLimit-*` headers on its answer.
#[derive(Clone)]
pub struct Guarded<S, G> {
    inner: S,
    guard: G,
}

impl<S, G> Service<Request<Body>> for Guarded<S, G>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    G: Guard,
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
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.decide(request).await {
                Ok((request, rate)) => {
                    let mut response = inner.call(request).await?;
                    if let Some(rate) = &rate {
                        rate_limit_headers(rate, response.headers_mut());
                    }
                    Ok(response)
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// Admits each request as `/v1/authorize` does and puts its [`Identity`] into the
/// request's extensions; refuses with 401, 403 or 429 (problem+json, RFC 6750 headers)
/// otherwise.
#[derive(Clone)]
pub struct KeywardLayer {
    gate: Gate,
    scopes: Arc<[Scope]>,
    environment: Option<Environment>,
}

impl KeywardLayer {
    /// A layer admitting requests through `gate`.
    pub fn new(gate: &Gate) -> Self {
        Self {
            gate: gate.clone(),
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
        let catalogue = &self.gate.engine().config().catalogue;
        self.scopes = scopes
            .iter()
            .map(|s| catalogue.parse(s))
            .collect::<Result<Vec<_>, _>>()?
            .into();
        Ok(self)
    }
}

impl Guard for KeywardLayer {
    async fn decide(&self, request: Request<Body>) -> Verdict {
        let (mut parts, body) = request.into_parts();
        let demand = Demand {
            scopes: &self.scopes,
            environment: self.environment,
            organization: None,
            purpose: Purpose::Use,
        };
        let admitted = self.gate.admit(&parts, parts.uri.query(), &demand).await?;
        parts.extensions.insert(admitted.identity);
        Ok((Request::from_parts(parts, body), admitted.rate))
    }
}

impl<S> Layer<S> for KeywardLayer {
    type Service = Keyward<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service [`KeywardLayer`] wraps around an API.
pub type Keyward<S> = Guarded<S, KeywardLayer>;

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

impl Guard for RequireScope {
    async fn decide(&self, request: Request<Body>) -> Verdict {
        match request.extensions().get::<Arc<Identity>>() {
            None => Err(Refusal::Unauthenticated(Outcome::Missing)),
            Some(identity) if !identity.scopes.grants(&self.scope) => {
                Err(Refusal::InsufficientScope(self.scope.to_string()))
            }
            Some(_) => Ok((request, None)),
        }
    }
}

impl<S> Layer<S> for RequireScope {
    type Service = ScopeGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service [`RequireScope`] wraps around a route.
pub type ScopeGuard<S> = Guarded<S, RequireScope>;
