//! `/login`, its second step `/login/code` for a member with a second factor, and
//! `/logout`.
//!
//! The service counts failed logins per source address and bounds the password checks
//! running at once: past the threshold the address gets 429 with `Retry-After`, and a
//! login beyond the bound 503.

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::member::SessionToken;
use keyward_gate::Refusal;
use keyward_service::members::{LoggedIn, LoginFailure, LoginStep, SECOND_FACTOR_WINDOW};
use serde::Deserialize;

use crate::dashboard::credentials::LIST_PATH;
use crate::dashboard::derived::Derived;
use crate::dashboard::page::{PageError, render};
use crate::dashboard::session::{
    LOGIN_COOKIE, Protected, TokenOnly, cookie, csrf_token, read_checked_form, secure_cookies,
    session_cookie, session_set_cookie, set_cookie, url_encode,
};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf_token: Derived,
    email: String,
    next: String,
    error: Option<&'static str>,
    notice: &'static str,
}

/// Where to go after logging in: a path on this server only, never another site. Browsers
/// drop tabs and new lines from URLs and read `\\` as `/`, so a path with any of them (or
/// any other space or control character) is refused along with `//host`. Public for the
/// fuzz target that checks no input leads off this server.
pub fn safe_next(next: Option<&str>) -> String {
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
    let ip = state.gate.client_ip(&parts);
    let next = safe_next(form.next.as_deref());
    match state
        .service
        .members()
        .log_in(&form.email, &form.password, ip)
        .await
    {
        Ok(LoginStep::Done(logged_in)) => signed_in_to(&parts, &state, &logged_in, &next),
        Ok(LoginStep::SecondFactor(challenge)) => {
            let secure = secure_cookies(&parts, &state);
            let mut response =
                Redirect::to(&format!("{CODE_PATH}?next={}", url_encode(&next))).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    CHALLENGE_COOKIE,
                    &challenge,
                    "/login",
                    SECOND_FACTOR_WINDOW.whole_seconds(),
                    secure,
                ),
            );
            response
        }
        Err(LoginFailure::Throttled(wait)) => {
            PageError::from(Refusal::Throttled(wait)).into_response()
        }
        Err(LoginFailure::Busy) => PageError::from(Refusal::Unavailable).into_response(),
        Err(LoginFailure::Failed(error)) => PageError::from(error).into_response(),
        Err(LoginFailure::Mismatch) => {
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

/// A new session's cookies, and on to `next`.
fn signed_in_to(parts: &Parts, state: &AppState, logged_in: &LoggedIn, next: &str) -> Response {
    let secure = secure_cookies(parts, state);
    let mut response = Redirect::to(next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        session_set_cookie(parts, state, &logged_in.token),
    );
    for name in [LOGIN_COOKIE, CHALLENGE_COOKIE] {
        headers.append(
            header::SET_COOKIE,
            set_cookie(name, "", "/login", 0, secure),
        );
    }
    response
}

/// The second step of a login.
pub const CODE_PATH: &str = "/login/code";
/// The cookie holding a login's sealed challenge between its two steps.
const CHALLENGE_COOKIE: &str = "keyward_login_challenge";

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage {
    csrf_token: Derived,
    next: String,
    error: Option<&'static str>,
}

/// The code form: a code of the authenticator app, or a recovery code. Without a
/// challenge (none, or expired) it is the login page.
pub async fn code_form(parts: Parts, Query(query): Query<LoginQuery>) -> Response {
    let secret = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if secret.is_empty() || cookie(&parts.headers, CHALLENGE_COOKIE).is_none() {
        return Redirect::to("/login").into_response();
    }
    let page = CodePage {
        csrf_token: csrf_token(secret),
        next: safe_next(query.next.as_deref()),
        error: None,
    };
    render(StatusCode::OK, &page)
}

/// The code form's fields.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    /// Six digits, or a recovery code.
    pub code: String,
    /// The page to return to.
    pub next: Option<String>,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeForm")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// Checks the code; on success starts the session and goes to `next`.
pub async fn code_submit(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let secret = cookie(&parts.headers, LOGIN_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let challenge = cookie(&parts.headers, CHALLENGE_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let request = Request::from_parts(parts.clone(), body);
    let form: CodeForm = match read_checked_form(request, &secret, &state).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let next = safe_next(form.next.as_deref());
    let ip = state.gate.client_ip(&parts);
    match state
        .service
        .members()
        .second_factor(&challenge, &form.code, ip)
        .await
    {
        Ok(logged_in) => signed_in_to(&parts, &state, &logged_in, &next),
        Err(LoginFailure::Throttled(wait)) => {
            PageError::from(Refusal::Throttled(wait)).into_response()
        }
        Err(LoginFailure::Busy) => PageError::from(Refusal::Unavailable).into_response(),
        Err(LoginFailure::Failed(error)) => PageError::from(error).into_response(),
        Err(LoginFailure::Mismatch) => {
            let page = CodePage {
                csrf_token: csrf_token(&secret),
                next,
                error: Some(
                    "That code is not right, was used already, or the login took too long: \
                     try the code your app shows now, or log in again.",
                ),
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
    let logged_out = state
        .service
        .members()
        .log_out(&signed_in.session, &signed_in.member, &signed_in.actor)
        .await;
    if let Err(error) = logged_out {
        return PageError::from(error).into_response();
    }
    let secure = secure_cookies(&parts, &state);
    let mut response = Redirect::to("/login?done=logout").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(session_cookie(secure), "", "/", 0, secure),
    );
    response
}
