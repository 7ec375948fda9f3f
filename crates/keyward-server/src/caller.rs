//! The authenticated caller of an API request, admitted by the gate as what its route says
//! it is: a management request ([`Management`]) or the caller of a verification endpoint
//! ([`Verification`]). The management routes report the caller's rate limit on every
//! answer ([`rate_limit_layer`]).

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use keyward_core::audit::Actor;
use keyward_core::rate_limit::RateDecision;
use keyward_core::typeid::OrganizationId;
use keyward_engine::{Demand, Identity, Purpose};
use keyward_gate::headers::{LIMIT_HEADER, rate_limit_headers};
use keyward_service::{Authority, Principal};

use crate::error::ApiError;
use crate::state::AppState;

/// Why a route's caller is admitted, which decides what its admission counts.
pub trait CallerPurpose: Send + Sync + 'static {
    /// The engine's purpose.
    const PURPOSE: Purpose;
}

/// A management request: counted against the credential's rate limit and the
/// organization's ceiling.
#[derive(Debug, Clone, Copy)]
pub struct Management;

impl CallerPurpose for Management {
    const PURPOSE: Purpose = Purpose::Management;
}

/// The caller of a verification endpoint, which asks for many requests: the keys it
/// verifies are what is counted, not its own.
#[derive(Debug, Clone, Copy)]
pub struct Verification;

impl CallerPurpose for Verification {
    const PURPOSE: Purpose = Purpose::Verification;
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct Caller<P = Management> {
    /// The caller's credential and scopes.
    pub identity: Arc<Identity>,
    /// The state of its rate limit after this request (`None` for the callers of
    /// verification endpoints, which are not counted).
    pub rate: Option<RateDecision>,
    /// How it is recorded in the audit log.
    pub actor: Actor,
    purpose: PhantomData<P>,
}

impl<P> Caller<P> {
    /// The caller's organization: the only one it can see.
    pub fn organization_id(&self) -> &OrganizationId {
        &self.identity.credential.organization_id
    }

    /// The caller as the management service sees it: bounded by its credential.
    pub fn principal(&self) -> Principal<'_> {
        Principal {
            organization: self.organization_id(),
            actor: &self.actor,
            authority: Authority::Credential(&self.identity),
        }
    }
}

impl<P: CallerPurpose> FromRequestParts<AppState> for Caller<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let demand = Demand {
            purpose: P::PURPOSE,
            ..Demand::default()
        };
        let admitted = state.gate.admit(parts, parts.uri.query(), &demand).await?;
        if let (Some(rate), Some(slot)) = (&admitted.rate, parts.extensions.get::<RateSlot>()) {
            slot.fill(*rate);
        }
        let actor = Actor {
            id: admitted.identity.credential.id.to_string(),
            source_ip: admitted.ip,
        };
        Ok(Caller {
            identity: admitted.identity,
            rate: admitted.rate,
            actor,
            purpose: PhantomData,
        })
    }
}

/// Where a management request's admission leaves the caller's rate limit state, for
/// [`rate_limit_layer`] to put on the answer.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(Arc<OnceLock<RateDecision>>);

impl RateSlot {
    /// Keeps `decision` for the answer (the first one wins).
    pub fn fill(&self, decision: RateDecision) {
        let _ = self.0.set(decision);
    }
}

/// Middleware: gives each request a [`RateSlot`] and puts what the [`Caller`] extractor
/// left there on the answer as `RateLimit-*` headers, unless the handler set its own.
pub async fn rate_limit_layer(mut request: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    if let Some(decision) = slot.0.get()
        && !response.headers().contains_key(LIMIT_HEADER)
    {
        rate_limit_headers(decision, response.headers_mut());
    }
    response
}
