//! `/login` and `/logout`.
//!
//! Failed logins are counted per source address (as failed key checks are): past the
//! threshold the address gets 429 with `Retry-After`. Each attempt on a known member is in
//! its organization's audit log.

use askama::Template;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::member::SessionToken;
use serde::Deserialize;

use crate::auth::request_client_ip;
use crate::dashboard::credentials::LIST_PATH;
use crate::dashboard::members::{LoginFailure, authenticate};
use crate::dashboard::session::{
    LOGIN_COOKIE, Protected, SESSION_COOKIE, SESSION_LIFETIME, TokenOnly, cookie, csrf_matches,
    csrf_token, form_csrf, parse_form, secure_cookies, set_cookie, start_session,
};
use crate::dashboard::{PageError, render};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf_token: String,
    email: String,
    next: String,
    error: Option<&'static str>,
}

/// Where to go after logging in: a dashboard path only, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.starts_with("/login") =>
        {
            path.to_owned()
        }
        _ => LIST_PATH.to_owned(),
    }
}

/// The query of the login page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// The page to return to.
    pub next: Option<String>,
}

/// The login form. It sets the pre-login cookie its CSRF token derives from.
pub async fn form(
    State(state): State<AppState>,
    parts: Parts,
    Query(query): Query<LoginQuery>,
) -> Response {
    let secret = SessionToken::generate();
    let page = LoginPage {
        csrf_token: csrf_token(secret.expose()),
        email: String::new(),
        next: safe_next(query.next.as_deref()),
        error: None,
    };
    let mut response = render(StatusCode::OK, &page);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_COOKIE,
            secret.expose(),
            "/login",
            3600,
            secure_cookies(&parts, &state),
        ),
    );
    response
}

/// The fields of the login form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    /// The member's email.
    pub email: String,
    /// The password.
    pub password: String,
    /// The page to return to.
    pub next: Option<String>,
}

/// Checks the login form; on success starts a session and goes to `next`.
pub async fn submit(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body =
        match axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), &state)
            .await
        {
            Ok(body) => body,
            Err(rejection) => return rejection.into_response(),
        };
    let presented = form_csrf(&body).unwrap_or_default();
    let secret = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if secret.is_empty() || !csrf_matches(secret, &presented) {
        return PageError::csrf().into_response();
    }
    let form: LoginForm = match parse_form(&body) {
        Ok(form) => form,
        Err(error) => return PageError(error).into_response(),
    };
    let ip = request_client_ip(&parts, &state);
    let now = state.clock.now();
    let throttle = &state.login_throttle;
    throttle.prune(now);
    if let Some(wait) = ip.and_then(|ip| throttle.blocked(ip, now)) {
        return PageError(ApiError::Throttled(wait)).into_response();
    }
    let next = safe_next(form.next.as_deref());
    match authenticate(&state, &form.email, &form.password, ip).await {
        Ok(member) => {
            let token = match start_session(&state, &member).await {
                Ok(token) => token,
                Err(error) => return PageError(error).into_response(),
            };
            let secure = secure_cookies(&parts, &state);
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
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
                throttle.record_failure(ip, now);
            }
            let page = LoginPage {
                csrf_token: presented,
                email: form.email,
                next,
                error: Some("The email or the password is not right."),
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
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, secure_cookies(&parts, &state)),
    );
    response
}
