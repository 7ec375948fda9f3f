//! `/login` and `/logout`.
//!
//! Failed logins are counted per source address (as failed key checks are): past the
//! threshold the address gets 429 with `Retry-After`. At most [`LoginGate::PARALLEL`]
//! password checks run at once, so a burst of parallel guesses can neither outrun the
//! count nor exhaust memory (each argon2id check takes 19 MiB). Each attempt on a known
//! member is in its organization's audit log.

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::member::SessionToken;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::auth::request_client_ip;
use crate::dashboard::credentials::LIST_PATH;
use crate::dashboard::members::{LoginFailure, authenticate};
use crate::dashboard::session::{
    LOGIN_COOKIE, Protected, SESSION_LIFETIME, TokenOnly, cookie, csrf_token, read_checked_form,
    secure_cookies, session_cookie, set_cookie, start_session,
};
use crate::dashboard::{PageError, render};
use crate::error::ApiError;
use crate::state::AppState;
use crate::throttle::{Throttle, ThrottleConfig};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf_token: String,
    email: String,
    next: String,
    error: Option<&'static str>,
    notice: &'static str,
}

/// Where to go after logging in: a path on this server only, never another site. Browsers
/// drop tabs and new lines from URLs and read `\\` as `/`, so a path with any of them (or
/// any other space or control character) is refused along with `//host`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/login")
                && path
                    .chars()
                    .all(|c| c != '\\' && !c.is_whitespace() && !c.is_control()) =>
        {
            path.to_owned()
        }
        _ => LIST_PATH.to_owned(),
    }
}

/// What stands before a password check: the per-address failure count and a bound on
/// checks running at once.
#[derive(Debug)]
pub struct LoginGate {
    /// Failed logins per source address.
    pub throttle: Throttle,
    checks: Semaphore,
}

impl LoginGate {
    /// Password checks that may run at once.
    pub const PARALLEL: usize = 4;

    /// A gate with this throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            throttle: Throttle::new(config),
            checks: Semaphore::new(Self::PARALLEL),
        }
    }
}

/// The query of the login page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// The page to return to.
    pub next: Option<String>,
    /// `logout` right after logging out.
    pub done: Option<String>,
}

/// The login form. It sets the pre-login cookie its CSRF token derives from, or keeps the
/// one the browser has (so two login tabs do not void each other's form).
pub async fn form(
    State(state): State<AppState>,
    parts: Parts,
    Query(query): Query<LoginQuery>,
) -> Response {
    let kept = cookie(&parts.headers, LOGIN_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let secret = kept.unwrap_or_else(|| SessionToken::generate().expose().to_owned());
    let page = LoginPage {
        csrf_token: csrf_token(&secret),
        email: String::new(),
        next: safe_next(query.next.as_deref()),
        error: None,
        notice: match query.done.as_deref() {
            Some("logout") => "You have logged out.",
            _ => "",
        },
    };
    let mut response = render(StatusCode::OK, &page);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_COOKIE,
            &secret,
            "/login",
            3600,
            secure_cookies(&parts, &state),
        ),
    );
    response
}

/// The fields of the login form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    /// The member's email.
    pub email: String,
    /// The password.
    pub password: String,
    /// The page to return to.
    pub next: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("email", &self.email)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// Checks the login form; on success starts a session and goes to `next`.
pub async fn submit(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let secret = cookie(&parts.headers, LOGIN_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let request = Request::from_parts(parts.clone(), body);
    let form: LoginForm = match read_checked_form(request, &secret, &state).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let ip = request_client_ip(&parts, &state);
    let now = state.clock.now();
    let gate = &state.login_gate;
    gate.throttle.prune(now);
    if let Some(wait) = ip.and_then(|ip| gate.throttle.blocked(ip, now)) {
        return PageError(ApiError::Throttled(wait)).into_response();
    }
    let Ok(_permit) = gate.checks.try_acquire() else {
        return PageError(ApiError::Unavailable).into_response();
    };
    let next = safe_next(form.next.as_deref());
    match authenticate(&state, &form.email, &form.password, ip).await {
        Ok(member) => {
            // The session starts when the check started: a password set meanwhile voids it.
            let token = match start_session(&state, &member, now).await {
                Ok(token) => token,
                Err(error) => return PageError(error).into_response(),
            };
            let secure = secure_cookies(&parts, &state);
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(
                    session_cookie(secure),
                    token.expose(),
                    "/",
                    SESSION_LIFETIME.whole_seconds(),
                    secure,
                ),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(LOGIN_COOKIE, "", "/login", 0, secure),
            );
            response
        }
        Err(LoginFailure::Store(error)) => PageError(error).into_response(),
        Err(LoginFailure::Mismatch) => {
            if let Some(ip) = ip {
                gate.throttle.record_failure(ip, now);
            }
            let page = LoginPage {
                csrf_token: csrf_token(&secret),
                email: form.email,
                next,
                error: Some("The email or the password is not right."),
                notice: "",
            };
            render(StatusCode::UNAUTHORIZED, &page)
        }
    }
}

/// Ends the session (a CSRF-checked form) and goes back to the login page.
pub async fn logout(
    State(state): State<AppState>,
    parts: Parts,
    Protected { signed_in, .. }: Protected<TokenOnly>,
) -> Response {
    if let Err(error) = state.store.delete_session(&signed_in.session).await {
        return PageError(error.into()).into_response();
    }
    let event = signed_in.actor.event(
        &signed_in.member.organization_id,
        state.clock.now(),
        "member.logged_out",
        Some(signed_in.member.id.as_str()),
        Default::default(),
    );
    if let Err(error) = state.store.insert_audit_event(&event).await {
        tracing::warn!(%error, "could not record a logout");
    }
    let secure = secure_cookies(&parts, &state);
    let mut response = Redirect::to("/login?done=logout").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(session_cookie(secure), "", "/", 0, secure),
    );
    response
}
