//! The authenticated caller of an API request. A management request ([`Caller`]) is made
//! with a credential the gate admits, or by a member signed in to the dashboard with the
//! session's CSRF token in a header; the caller of a verification endpoint, and a request
//! about its own credential, must present a credential ([`KeyCaller`]). The management
//! routes report the caller's rate limit on every answer, and count a request the
//! operation refused for a scope with that outcome rather than as admitted
//! ([`admission_layer`]).

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use keyward_core::audit::Actor;
use keyward_core::member::Member;
use keyward_core::rate_limit::RateDecision;
use keyward_core::typeid::OrganizationId;
use keyward_core::verify::Outcome;
use keyward_engine::{Admitted, Counted, Demand, Identity, Purpose, Verifier};
use keyward_gate::Refusal;
use keyward_gate::headers::{LIMIT_HEADER, rate_limit_headers};
use keyward_service::{Authority, Principal};

use crate::dashboard::session::api_session;
use crate::error::{ApiError, RefusedAs};
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

/// Who makes a management request.
#[derive(Debug, Clone)]
pub enum Who {
    /// A credential (an API key or an access token), bounded by its scopes.
    Credential(Arc<Identity>),
    /// A member signed in to the dashboard, managing the member's organization.
    Member(Member),
}

/// The caller of a management request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The credential or the member.
    pub who: Who,
    /// The state of the rate limit this request counted against: the credential's, or for
    /// a member the organization's ceiling.
    pub rate: Option<RateDecision>,
    /// How it is recorded in the audit log.
    pub actor: Actor,
}

impl Caller {
    /// The caller's organization: the only one it can see.
    pub fn organization_id(&self) -> &OrganizationId {
        match &self.who {
            Who::Credential(identity) => &identity.credential.organization_id,
            Who::Member(member) => &member.organization_id,
        }
    }

    /// The caller as the management service sees it: a credential bounded by what it
    /// holds, a member by its role (as in the dashboard).
    pub fn principal(&self) -> Principal<'_> {
        let authority = match &self.who {
            Who::Credential(identity) => Authority::Credential(identity),
            Who::Member(member) => Authority::Member(member.role),
        };
        Principal {
            organization: self.organization_id(),
            actor: &self.actor,
            authority,
        }
    }
}

/// The demand a caller of purpose `P` is admitted for.
fn demand<P: CallerPurpose>() -> Demand<'static> {
    Demand {
        purpose: P::PURPOSE,
        ..Demand::default()
    }
}

/// Leaves the rate limit state of an admission for [`admission_layer`].
fn report_rate(parts: &Parts, rate: Option<&RateDecision>) {
    if let (Some(rate), Some(slot)) = (rate, parts.extensions.get::<AdmissionSlot>()) {
        let _ = slot.0.rate.set(*rate);
    }
}

/// The credential caller of an admission.
fn key_caller<P>(parts: &Parts, admitted: Admitted, state: &AppState) -> KeyCaller<P> {
    report_rate(parts, admitted.rate.as_ref());
    let counted = admitted.counted.map(|c| (state.engine.clone(), c));
    // On a management route the admission layer recounts a refusal; elsewhere (MCP) the
    // caller does, through `count_refusal`.
    let counted = match (counted, parts.extensions.get::<AdmissionSlot>()) {
        (Some(counted), Some(slot)) => {
            let _ = slot.0.counted.set(counted);
            None
        }
        (counted, _) => counted,
    };
    let actor = Actor {
        id: admitted.identity.credential.id.to_string(),
        source_ip: admitted.ip,
        via: None,
    };
    KeyCaller {
        identity: admitted.identity,
        rate: admitted.rate,
        actor,
        counted: Arc::new(std::sync::Mutex::new(counted)),
        purpose: PhantomData,
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// A presented credential decides, whatever cookie comes with it; without one, the
    /// dashboard session, counted against the organization's ceiling as a credential's
    /// management request is.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let demand = demand::<Management>();
        let query = parts.uri.query();
        if let Some(admitted) = state.gate.admit_if_presented(parts, query, &demand).await? {
            let KeyCaller {
                identity,
                rate,
                actor,
                ..
            } = key_caller::<Management>(parts, admitted, state);
            return Ok(Caller {
                who: Who::Credential(identity),
                rate,
                actor,
            });
        }
        let Some(signed_in) = api_session(parts, state).await? else {
            return Err(Refusal::Unauthenticated(Outcome::Missing).into());
        };
        let organization = &signed_in.member.organization_id;
        let rate = state
            .gate
            .engine()
            .count_management(organization)
            .map_err(|denial| Refusal::from_denial(denial, &[]))?;
        report_rate(parts, Some(&rate));
        Ok(Caller {
            who: Who::Member(signed_in.member),
            rate: Some(rate),
            actor: signed_in.actor,
        })
    }
}

/// A caller that presents a credential: the caller of a verification endpoint, or a
/// request about the calling credential itself.
#[derive(Debug, Clone)]
pub struct KeyCaller<P = Management> {
    /// The caller's credential and scopes.
    pub identity: Arc<Identity>,
    /// The state of its rate limit after this request (`None` for the callers of
    /// verification endpoints, which are not counted).
    pub rate: Option<RateDecision>,
    /// How it is recorded in the audit log.
    pub actor: Actor,
    /// How usage counted the request, where no admission layer recounts a refusal.
    counted: Arc<std::sync::Mutex<Option<Recount>>>,
    purpose: PhantomData<P>,
}

impl<P> KeyCaller<P> {
    /// Counts the request as refused for a scope when `error` is such a refusal (once: a
    /// request is counted once), where no admission layer does it (the MCP tools).
    pub fn count_refusal(&self, error: &keyward_service::ServiceError) {
        if !matches!(
            error,
            keyward_service::ServiceError::Forbidden(
                keyward_service::error::Forbidden::MissingScope(_)
            )
        ) {
            return;
        }
        let taken = self
            .counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((engine, counted)) = taken {
            engine.recount(&counted, Outcome::InsufficientScope);
        }
    }

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

impl<P: CallerPurpose> FromRequestParts<AppState> for KeyCaller<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let admitted = state
            .gate
            .admit(parts, parts.uri.query(), &demand::<P>())
            .await?;
        Ok(key_caller(parts, admitted, state))
    }
}

/// Where a management request's admission leaves what [`admission_layer`] needs once the
/// answer is made: the caller's rate limit state, and how usage counted the request.
#[derive(Debug, Clone, Default)]
pub struct AdmissionSlot(Arc<Admission>);

/// The engine that counted a request, and how: what recounting a refusal needs.
type Recount = (Arc<Verifier>, Counted);

#[derive(Default)]
struct Admission {
    rate: OnceLock<RateDecision>,
    /// The engine that counted the request, and how.
    counted: OnceLock<Recount>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Middleware: gives each request an [`AdmissionSlot`]; puts what the [`Caller`] extractor
/// left there on the answer as `RateLimit-*` headers, unless the handler set its own; and
/// when the answer is a refusal marked [`RefusedAs`], counts the credential's request with
/// that outcome instead of `VALID`.
pub async fn admission_layer(mut request: Request, next: Next) -> Response {
    let slot = AdmissionSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    if let Some(decision) = slot.0.rate.get()
        && !response.headers().contains_key(LIMIT_HEADER)
    {
        rate_limit_headers(decision, response.headers_mut());
    }
    if let (Some(RefusedAs(outcome)), Some((engine, counted))) = (
        response.extensions().get::<RefusedAs>(),
        slot.0.counted.get(),
    ) {
        engine.recount(counted, *outcome);
    }
    response
}
