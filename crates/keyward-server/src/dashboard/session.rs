//! Dashboard sessions and CSRF protection.
//!
//! - A login sets `keyward_session`: a random token (stored only as its digest),
//!   `HttpOnly`, `SameSite=Strict`, `Path=/`. When a trusted proxy says the request came
//!   over TLS it is `Secure` and named `__Host-keyward_session`, which no other host can
//!   set. Sessions end after [`SESSION_LIFETIME`], at logout, and when the member's
//!   password is set.
//! - Every form carries a CSRF token derived from the session token (or, on the login page,
//!   from a pre-login cookie): SHA-256 over a label and the token, so it cannot be forged
//!   without the cookie and reveals nothing of it. [`Protected`] checks it, in constant
//!   time, before a handler sees the form. tower-http's `CsrfLayer` (Origin and
//!   `Sec-Fetch-Site`) guards the same routes as a second line.
//! - The management API accepts the same session when the request carries the CSRF token
//!   in [`CSRF_HEADER`] ([`api_session`]): a page's own scripts, or a signed-in operator
//!   with `curl`, call it as the member. A cross-site page can neither read the token nor
//!   send the `SameSite=Strict` cookie.
//! - Derived values are [`Derived`]: it has no `==`, so the only comparison there is, is
//!   [`Derived::matches`], in constant time.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::audit::Actor;
use keyward_core::digest::LookupDigest;
use keyward_core::member::{Member, SessionToken};
use keyward_core::verify::Outcome;
use keyward_gate::Refusal;
use keyward_gate::client_ip::peer;
use keyward_service::{Authority, Principal};
use serde::de::DeserializeOwned;

pub use keyward_service::members::SESSION_LIFETIME;

use crate::dashboard::derived::Derived;
use crate::dashboard::page::{Nav, PageError};
use crate::error::ApiError;
use crate::state::AppState;

/// The session cookie's name: with the `__Host-` prefix over TLS (browsers then refuse it
/// from any other host, a sibling subdomain included), plain on HTTP, where the prefix
/// cannot be used.
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-keyward_session"
    } else {
        "keyward_session"
    }
}
/// The cookie the login form's CSRF token is derived from, before there is a session.
pub const LOGIN_COOKIE: &str = "keyward_login";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The header carrying the CSRF token of a management API request made with a session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request, if any.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The CSRF token of forms shown to the holder of the cookie `secret`.
pub fn csrf_token(secret: &str) -> Derived {
    Derived::new(b"keyward dashboard csrf v1\0", &[secret.as_bytes()])
}

/// The mark that binds a form's submission id to the session cookie `secret`.
fn submission_mark(secret: &str, id: &str) -> Derived {
    Derived::new(
        b"keyward dashboard submission v1\0",
        &[secret.as_bytes(), b"\0", id.as_bytes()],
    )
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` when `secure`; a
/// `max_age` of zero deletes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` of a new session for `token`: what every way in (a login, its second
/// step, an accepted invitation, a changed password) sends.
pub fn session_set_cookie(parts: &Parts, state: &AppState, token: &SessionToken) -> HeaderValue {
    let secure = secure_cookies(parts, state);
    set_cookie(
        session_cookie(secure),
        token.expose(),
        "/",
        SESSION_LIFETIME.whole_seconds(),
        secure,
    )
}

/// Whether cookies set in answer to this request must be `Secure`: when a trusted proxy
/// says the request reached it over TLS (Keyward itself serves plain HTTP).
pub fn secure_cookies(parts: &Parts, state: &AppState) -> bool {
    let from_proxy = peer(parts).is_some_and(|ip| {
        state
            .config
            .gate
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    });
    from_proxy
        && parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A signed-in member: extracting it from a request without a live session redirects to
/// the login page (or, for htmx, asks it to).
#[derive(Clone)]
pub struct SignedIn {
    /// The member.
    pub member: Member,
    /// The CSRF token of the forms this member is shown.
    pub csrf_token: Derived,
    /// How the member's changes are recorded in the audit log.
    pub actor: Actor,
    /// The session's digest, for logout.
    pub session: LookupDigest,
    /// The secret the CSRF token derives from (the session cookie), for [`Protected`].
    session_secret: String,
}

impl SignedIn {
    /// The navigation of the member's pages, with `active` highlighted.
    pub fn nav(&self, active: &'static str) -> Nav {
        Nav {
            active,
            email: self.member.email.clone(),
            role: self.member.role,
            csrf_token: self.csrf_token.clone(),
        }
    }

    /// A token for one submission of a form that makes something: `{id}.{mark}`, where
    /// `id` was chosen by the server when the form was shown and the mark binds it to this
    /// session. Sending the form twice (a reload) makes one object; a browser cannot pick
    /// an id, so it cannot probe which ids exist.
    pub fn submission(&self, id: &str) -> String {
        format!("{id}.{}", submission_mark(&self.session_secret, id))
    }

    /// The id of a submission token made by [`SignedIn::submission`] for this session;
    /// `None` for any other text (compared in constant time).
    pub fn submitted<'t>(&self, token: &'t str) -> Option<&'t str> {
        let (id, mark) = token.rsplit_once('.')?;
        submission_mark(&self.session_secret, id)
            .matches(mark)
            .then_some(id)
    }

    /// The member as the management service sees it: bounded by its role.
    pub fn principal(&self) -> Principal<'_> {
        Principal {
            organization: &self.member.organization_id,
            actor: &self.actor,
            authority: Authority::Member(self.member.role),
        }
    }
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("member", &self.member.id)
            .finish_non_exhaustive()
    }
}

/// The answer to a request that needs a session and has none: to the login page, coming
/// back afterwards to the page (for htmx, the page that made the request).
fn to_login(parts: &Parts) -> Response {
    let htmx_page = parts
        .headers
        .get("hx-current-url")
        .and_then(|v| v.to_str().ok())
        .and_then(|url| url.parse::<axum::http::Uri>().ok())
        .and_then(|uri| uri.path_and_query().map(|pq| pq.as_str().to_owned()));
    let target = if parts.method == Method::GET || htmx_page.is_some() {
        let next = htmx_page.unwrap_or_else(|| {
            parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned())
        });
        let next = next.as_str();
        format!("/login?next={}", url_encode(next))
    } else {
        "/login".to_owned()
    };
    if parts.headers.contains_key("hx-request") {
        let mut response = axum::http::StatusCode::UNAUTHORIZED.into_response();
        if let Ok(value) = HeaderValue::from_str(&target) {
            response.headers_mut().insert("hx-redirect", value);
        }
        return response;
    }
    Redirect::to(&target).into_response()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a request's session cookie says: no cookie, a cookie of no live session, or the
/// member signed in.
enum Presented {
    None,
    Stale,
    Live(Box<SignedIn>),
}

/// Reads the request's session cookie and finds its session.
async fn presented_session(
    parts: &Parts,
    state: &AppState,
) -> Result<Presented, keyward_service::ServiceError> {
    let name = session_cookie(secure_cookies(parts, state));
    let Some(secret) = cookie(&parts.headers, name) else {
        return Ok(Presented::None);
    };
    let secret = secret.to_owned();
    let Some((session, member)) = state.service.members().session(&secret).await? else {
        return Ok(Presented::Stale);
    };
    let actor = Actor {
        id: member.id.to_string(),
        source_ip: state.gate.client_ip(parts),
        via: None,
    };
    Ok(Presented::Live(Box::new(SignedIn {
        member,
        csrf_token: csrf_token(&secret),
        actor,
        session: session.digest,
        session_secret: secret,
    })))
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match presented_session(parts, state).await {
            Ok(Presented::Live(signed_in)) => Ok(*signed_in),
            Ok(Presented::None | Presented::Stale) => Err(to_login(parts)),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// The member whose dashboard session makes a management API request, for a request that
/// presents no credential: `None` without a session cookie; refused (401) when the cookie
/// names no live session, and (403 `csrf_token_invalid`) unless [`CSRF_HEADER`] carries
/// the session's CSRF token.
pub async fn api_session(parts: &Parts, state: &AppState) -> Result<Option<SignedIn>, ApiError> {
    let signed_in = match presented_session(parts, state).await? {
        Presented::None => return Ok(None),
        Presented::Stale => return Err(Refusal::Unauthenticated(Outcome::Missing).into()),
        Presented::Live(signed_in) => *signed_in,
    };
    let presented = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !signed_in.csrf_token.matches(presented) {
        return Err(ApiError::Csrf);
    }
    Ok(Some(signed_in))
}

/// A form with no field but its CSRF token (logout, status changes).
#[derive(Debug, serde::Deserialize)]
pub struct TokenOnly {}

/// A form posted by a signed-in member whose CSRF token matched; anything else is refused
/// (403) before the handler runs. `T` reads the other fields (unknown ones are ignored).
pub struct Protected<T> {
    /// The member.
    pub signed_in: SignedIn,
    /// The form.
    pub form: T,
}

/// Reads a urlencoded form: refused (403) unless its CSRF token is the one derived from
/// the cookie `secret` (an empty secret matches nothing), then its fields into `T`.
pub async fn read_checked_form<T: DeserializeOwned>(
    request: Request,
    secret: &str,
    state: &AppState,
) -> Result<T, Response> {
    let body = Bytes::from_request(request, state)
        .await
        .map_err(IntoResponse::into_response)?;
    let presented = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(name, _)| name == CSRF_FIELD))
        .map(|(_, value)| value)
        .unwrap_or_default();
    if secret.is_empty() || !csrf_token(secret).matches(&presented) {
        return Err(PageError::csrf().into_response());
    }
    serde_urlencoded::from_bytes(&body).map_err(|e| {
        PageError(ApiError::bad_request(
            "invalid_form",
            format!("the form cannot be read: {e}"),
        ))
        .into_response()
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for Protected<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let signed_in = SignedIn::from_request_parts(&mut parts, state).await?;
        let secret = signed_in.session_secret.clone();
        let form = read_checked_form(Request::from_parts(parts, body), &secret, state).await?;
        Ok(Protected { signed_in, form })
    }
}
