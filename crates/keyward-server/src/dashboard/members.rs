//! Settings → Members (who may manage the organization, invitations) and Settings → Your
//! account (your own password), and `/invite`, where an invited person joins.
//!
//! An invitation's link holds its token in the query (`/invite?token=…`): Keyward logs
//! request paths, never queries, and every dashboard answer says `Referrer-Policy:
//! no-referrer`. The link is shown once, to the member who made it, to pass on.

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::member::{MemberRole, PASSWORD_MIN_CHARS, SessionToken};
use keyward_core::typeid::UserId;
use keyward_service::ServiceError;
use keyward_service::error::Conflict;
use keyward_service::principal::{ManageMembers, ReadMembers};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::dashboard::credentials::LIST_PATH;
use crate::dashboard::derived::Derived;
use crate::dashboard::page::{Nav, PageError, display_time, render};
use crate::dashboard::session::{
    Protected, SignedIn, TokenOnly, cookie, csrf_token, read_checked_form, secure_cookies,
    session_set_cookie, set_cookie,
};
use crate::error::ApiError;
use crate::state::AppState;

/// The Members page.
pub const PATH: &str = "/settings/members";
/// The account page.
pub const ACCOUNT_PATH: &str = "/settings/account";
/// Where an invitation's link leads.
pub const INVITE_PATH: &str = "/invite";
/// The role an invitation form starts with.
pub const DEFAULT_INVITE_ROLE: MemberRole = MemberRole::Developer;
/// The cookie the invitation form's CSRF token derives from, before there is a session.
const INVITE_COOKIE: &str = "keyward_invite";

/// One member as the page shows it.
#[derive(Debug)]
pub struct MemberView {
    id: String,
    email: String,
    role: MemberRole,
    added: String,
    last_login: String,
    /// Whether the viewer may change or remove this member.
    editable: bool,
    /// Whether this is the member looking.
    you: bool,
}

/// One invitation as the page shows it.
#[derive(Debug)]
pub struct InvitationView {
    handle: String,
    role: MemberRole,
    created: String,
    expires: String,
    editable: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    nav: Nav,
    members: Vec<MemberView>,
    invitations: Vec<InvitationView>,
    /// The roles the viewer may give.
    assignable: Vec<MemberRole>,
    /// The link of the invitation just made, shown once.
    link: String,
    link_role: String,
    error: String,
    notice: &'static str,
}

/// What the page says after a change.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MembersQuery {
    /// `role`, `removed` or `withdrawn`.
    pub done: String,
}

/// The form of a change of role, and of an invitation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoleForm {
    /// The role's name.
    pub role: String,
}

async fn members_page(
    state: &AppState,
    signed_in: &SignedIn,
    status: StatusCode,
    link: Option<(String, MemberRole)>,
    error: String,
    notice: &'static str,
) -> Result<Response, PageError> {
    let principal = signed_in.principal();
    let permit = principal.permit::<ReadMembers>()?;
    let service = state.service.members();
    let members = service.list(permit).await?;
    let invitations = service.invitations(permit).await?;
    let authority = principal.authority;
    let manages = principal.may::<ManageMembers>();
    let may_assign = |role: MemberRole| manages && authority.may_assign(role).is_ok();
    let (link, link_role) = link.map_or((String::new(), String::new()), |(l, r)| {
        (l, r.as_str().to_owned())
    });
    let page = MembersPage {
        nav: signed_in.nav("members"),
        members: members
            .into_iter()
            .map(|m| MemberView {
                id: m.id.to_string(),
                editable: may_assign(m.role),
                you: m.id == signed_in.member.id,
                email: m.email,
                role: m.role,
                added: display_time(m.created_at),
                last_login: m
                    .last_login_at
                    .map_or_else(|| "Never".to_owned(), display_time),
            })
            .collect(),
        invitations: invitations
            .iter()
            .map(|i| InvitationView {
                handle: i.handle(),
                role: i.role,
                created: display_time(i.created_at),
                expires: display_time(i.expires_at),
                editable: may_assign(i.role),
            })
            .collect(),
        assignable: MemberRole::ALL
            .into_iter()
            .filter(|r| may_assign(*r))
            .collect(),
        link,
        link_role,
        error,
        notice,
    };
    Ok(render(status, &page))
}

/// The Members page.
pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<MembersQuery>,
) -> Result<Response, PageError> {
    let notice = match query.done.as_str() {
        "role" => "The role was changed.",
        "removed" => "The member was removed; their sessions have ended.",
        "withdrawn" => "The invitation was withdrawn; its link no longer works.",
        _ => "",
    };
    members_page(
        &state,
        &signed_in,
        StatusCode::OK,
        None,
        String::new(),
        notice,
    )
    .await
}

/// The origin links are made for: the request's own host, `https` when a trusted proxy
/// says the request came over TLS.
fn origin(parts: &Parts, state: &AppState) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if secure_cookies(parts, state) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The refusals a member form shows on the page, in words and with their status;
/// anything else is an error page.
fn in_words(error: ServiceError) -> Result<(StatusCode, String), PageError> {
    match error {
        ServiceError::Conflict(Conflict::LastOwner) => Ok((
            StatusCode::CONFLICT,
            "The organization must keep at least one owner. Make another member owner first."
                .to_owned(),
        )),
        ServiceError::Forbidden(forbidden) => Ok((
            StatusCode::FORBIDDEN,
            format!(
                "Your role does not allow this: {}.",
                ApiError::from(ServiceError::Forbidden(forbidden))
            ),
        )),
        other => Err(other.into()),
    }
}

/// Makes an invitation and shows its link once.
pub async fn invite(
    State(state): State<AppState>,
    parts: Parts,
    Protected { signed_in, form }: Protected<RoleForm>,
) -> Result<Response, PageError> {
    let Some(role) = MemberRole::parse(&form.role) else {
        let error = "Choose a role for the new member.".to_owned();
        return members_page(
            &state,
            &signed_in,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            error,
            "",
        )
        .await;
    };
    let principal = signed_in.principal();
    let invited = match principal.permit::<ManageMembers>() {
        Ok(permit) => state.service.members().invite(permit, role).await,
        Err(error) => Err(error),
    };
    match invited {
        Ok(invited) => {
            let link = format!(
                "{}{INVITE_PATH}?token={}",
                origin(&parts, &state),
                invited.token.expose()
            );
            members_page(
                &state,
                &signed_in,
                StatusCode::CREATED,
                Some((link, role)),
                String::new(),
                "",
            )
            .await
        }
        Err(error) => {
            let (status, error) = in_words(error)?;
            members_page(&state, &signed_in, status, None, error, "").await
        }
    }
}

/// Changes a member's role (`role`) or removes the member (`remove`).
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Protected { signed_in, form }: Protected<RoleForm>,
) -> Result<Response, PageError> {
    let id = UserId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let principal = signed_in.principal();
    let members = state.service.members();
    let done = match action.as_str() {
        "role" => {
            let Some(role) = MemberRole::parse(&form.role) else {
                return Err(ApiError::NotFound.into());
            };
            match principal.permit::<ManageMembers>() {
                Ok(permit) => members.set_role(permit, &id, role).await.map(|_| "role"),
                Err(error) => Err(error),
            }
        }
        "remove" => match principal.permit::<ManageMembers>() {
            Ok(permit) => members.remove(permit, &id).await.map(|_| "removed"),
            Err(error) => Err(error),
        },
        _ => return Err(ApiError::NotFound.into()),
    };
    match done {
        Ok("removed") if id == signed_in.member.id => Ok(Redirect::to("/login").into_response()),
        Ok(done) => Ok(Redirect::to(&format!("{PATH}?done={done}")).into_response()),
        Err(error) => {
            let (status, error) = in_words(error)?;
            members_page(&state, &signed_in, status, None, error, "").await
        }
    }
}

/// Withdraws an invitation.
pub async fn withdraw(
    State(state): State<AppState>,
    Path(handle): Path<String>,
    Protected { signed_in, .. }: Protected<TokenOnly>,
) -> Result<Response, PageError> {
    let principal = signed_in.principal();
    let withdrawn = match principal.permit::<ManageMembers>() {
        Ok(permit) => state.service.members().withdraw(permit, &handle).await,
        Err(error) => Err(error),
    };
    match withdrawn {
        Ok(()) => Ok(Redirect::to(&format!("{PATH}?done=withdrawn")).into_response()),
        Err(error) => {
            let (status, error) = in_words(error)?;
            members_page(&state, &signed_in, status, None, error, "").await
        }
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    /// The error of the form, and the field it is about.
    errors: Vec<(&'static str, String)>,
    notice: &'static str,
    min_chars: usize,
    /// Whether the member's second factor is on, and its recovery codes left.
    second_factor: Option<i64>,
}

async fn account_page(
    state: &AppState,
    signed_in: &SignedIn,
    status: StatusCode,
    errors: Vec<(&'static str, String)>,
    notice: &'static str,
) -> Result<Response, PageError> {
    let members = state.service.members();
    let second_factor = if signed_in.member.second_factor {
        Some(members.recovery_codes_left(&signed_in.member).await?)
    } else {
        None
    };
    let page = AccountPage {
        nav: signed_in.nav("account"),
        errors,
        notice,
        min_chars: PASSWORD_MIN_CHARS,
        second_factor,
    };
    Ok(render(status, &page))
}

/// The account page's query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccountQuery {
    /// `password` after a change.
    pub done: String,
}

/// Settings → Your account.
pub async fn account(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<AccountQuery>,
) -> Result<Response, PageError> {
    let notice = match query.done.as_str() {
        "password" => "Your password was changed; your other sessions have ended.",
        "two-step-off" => "Two-step verification is off: a password alone logs you in.",
        _ => "",
    };
    account_page(&state, &signed_in, StatusCode::OK, Vec::new(), notice).await
}

/// The password form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    /// The present password.
    pub current_password: String,
    /// The new one.
    pub new_password: String,
    /// The new one again.
    pub confirm_password: String,
}

impl std::fmt::Debug for PasswordForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordForm(…)")
    }
}

/// Changes the member's own password: every session ends and this browser gets a new one.
pub async fn change_password(
    State(state): State<AppState>,
    parts: Parts,
    Protected { signed_in, form }: Protected<PasswordForm>,
) -> Result<Response, PageError> {
    let mut errors = Vec::new();
    if form.current_password.is_empty() {
        errors.push((
            "current_password",
            "Enter your present password.".to_owned(),
        ));
    }
    if form.new_password.chars().count() < PASSWORD_MIN_CHARS {
        errors.push((
            "new_password",
            format!("The new password needs at least {PASSWORD_MIN_CHARS} characters."),
        ));
    }
    if form.new_password != form.confirm_password {
        errors.push((
            "confirm_password",
            "The two new passwords are not the same.".to_owned(),
        ));
    }
    if errors.is_empty() {
        let changed = state
            .service
            .members()
            .change_password(
                &signed_in.member,
                &signed_in.actor,
                &form.current_password,
                Zeroizing::new(form.new_password.clone()),
            )
            .await;
        match changed {
            Ok(token) => {
                let mut response =
                    Redirect::to(&format!("{ACCOUNT_PATH}?done=password")).into_response();
                response.headers_mut().append(
                    header::SET_COOKIE,
                    session_set_cookie(&parts, &state, &token),
                );
                return Ok(response);
            }
            Err(ServiceError::Validation(error)) => {
                let message = if error.field == "current_password" {
                    "This is not your present password.".to_owned()
                } else {
                    format!("The new password {}.", error.message)
                };
                let field = if error.field == "current_password" {
                    "current_password"
                } else {
                    "new_password"
                };
                errors.push((field, message));
            }
            Err(error) => return Err(error.into()),
        }
    }
    account_page(
        &state,
        &signed_in,
        StatusCode::UNPROCESSABLE_ENTITY,
        errors,
        "",
    )
    .await
}

/// Where two-step verification is turned on.
pub const TWO_STEP_PATH: &str = "/settings/account/two-step";

#[derive(Template)]
#[template(path = "two_step.html")]
struct TwoStepPage {
    nav: Nav,
    /// The secret in base32 and as an `otpauth://` link.
    secret: String,
    url: String,
    /// The sealed secret, sent back with the first code.
    pending: String,
    error: String,
    /// The recovery codes, once turned on: shown this once.
    recovery_codes: Vec<String>,
}

/// Starts turning on two-step verification: a new secret for the authenticator app.
pub async fn two_step(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, PageError> {
    let members = state.service.members();
    let enrolment = members.start_second_factor(&signed_in.member)?;
    let page = TwoStepPage {
        nav: signed_in.nav("account"),
        secret: enrolment.secret.base32(),
        url: enrolment.secret.url(&signed_in.member.email),
        pending: enrolment.pending,
        error: String::new(),
        recovery_codes: Vec::new(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// The confirmation of two-step verification.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct TwoStepForm {
    /// The sealed secret the page showed.
    pub pending: String,
    /// The code the app shows.
    pub code: String,
    /// The password, to turn it off.
    pub password: String,
}

impl std::fmt::Debug for TwoStepForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TwoStepForm(…)")
    }
}

/// Turns two-step verification on once the first code matches; shows the recovery codes
/// once.
pub async fn two_step_confirm(
    State(state): State<AppState>,
    Protected { signed_in, form }: Protected<TwoStepForm>,
) -> Result<Response, PageError> {
    let members = state.service.members();
    let enabled = members
        .enable_second_factor(
            &signed_in.member,
            &signed_in.actor,
            &form.pending,
            &form.code,
        )
        .await;
    let (status, error, codes) = match enabled {
        Ok(codes) => (
            StatusCode::CREATED,
            String::new(),
            codes.iter().map(|c| c.to_string()).collect(),
        ),
        Err(ServiceError::Validation(error)) if error.field == "code" => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "That is not the code your authenticator app shows now. Check that it has the \
             secret below and its clock is right, then try the next code."
                .to_owned(),
            Vec::new(),
        ),
        Err(error) => return Err(error.into()),
    };
    let secret = members
        .pending_secret(&signed_in.member, &form.pending)
        .ok_or(ApiError::NotFound)?;
    let page = TwoStepPage {
        nav: signed_in.nav("account"),
        secret: if codes.is_empty() {
            secret.base32()
        } else {
            String::new()
        },
        url: if codes.is_empty() {
            secret.url(&signed_in.member.email)
        } else {
            String::new()
        },
        pending: form.pending,
        error,
        recovery_codes: codes,
    };
    Ok(render(status, &page))
}

/// Turns two-step verification off, after the password.
pub async fn two_step_off(
    State(state): State<AppState>,
    Protected { signed_in, form }: Protected<TwoStepForm>,
) -> Result<Response, PageError> {
    let off = state
        .service
        .members()
        .disable_second_factor(&signed_in.member, &signed_in.actor, &form.password)
        .await;
    match off {
        Ok(()) => Ok(Redirect::to(&format!("{ACCOUNT_PATH}?done=two-step-off")).into_response()),
        Err(ServiceError::Validation(_)) => {
            let errors = vec![(
                "off_password",
                "This is not your present password.".to_owned(),
            )];
            account_page(
                &state,
                &signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                errors,
                "",
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    csrf_token: Derived,
    token: String,
    /// The organization's role for the new member, or empty when the link does not work.
    role: String,
    email: String,
    errors: Vec<(&'static str, String)>,
    min_chars: usize,
}

/// The invitation page's query.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct InviteQuery {
    /// The token of the link.
    pub token: String,
}

/// The invitation form: choose an email and a password. A link that does not work (never
/// made, used, withdrawn or expired) says so, with 404.
pub async fn invitation(
    State(state): State<AppState>,
    parts: Parts,
    Query(query): Query<InviteQuery>,
) -> Result<Response, PageError> {
    let found = state.service.members().invitation(&query.token).await?;
    let secret = cookie(&parts.headers, INVITE_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(
            || SessionToken::generate().expose().to_owned(),
            str::to_owned,
        );
    let status = if found.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let page = InvitePage {
        csrf_token: csrf_token(&secret),
        token: query.token,
        role: found
            .map(|i| i.role.as_str().to_owned())
            .unwrap_or_default(),
        email: String::new(),
        errors: Vec::new(),
        min_chars: PASSWORD_MIN_CHARS,
    };
    let mut response = render(status, &page);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            INVITE_COOKIE,
            &secret,
            INVITE_PATH,
            3600,
            secure_cookies(&parts, &state),
        ),
    );
    Ok(response)
}

/// The invitation form's fields.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct AcceptForm {
    /// The token of the link.
    pub token: String,
    /// The new member's email.
    pub email: String,
    /// The password chosen.
    pub password: String,
    /// The password again.
    pub confirm_password: String,
}

impl std::fmt::Debug for AcceptForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptForm")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Accepts an invitation: the new member is signed in and lands on API Credentials.
pub async fn accept(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let secret = cookie(&parts.headers, INVITE_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let request = Request::from_parts(parts.clone(), body);
    let form: AcceptForm = match read_checked_form(request, &secret, &state).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let members = state.service.members();
    let found = match members.invitation(&form.token).await {
        Ok(found) => found,
        Err(error) => return PageError::from(error).into_response(),
    };
    let mut errors = Vec::new();
    if form.password.chars().count() < PASSWORD_MIN_CHARS {
        errors.push((
            "password",
            format!("The password needs at least {PASSWORD_MIN_CHARS} characters."),
        ));
    }
    if form.password != form.confirm_password {
        errors.push((
            "confirm_password",
            "The two passwords are not the same.".to_owned(),
        ));
    }
    if found.is_some() && errors.is_empty() {
        let ip = state.gate.client_ip(&parts);
        let accepted = members
            .accept(
                &form.token,
                &form.email,
                Zeroizing::new(form.password.clone()),
                ip,
            )
            .await;
        match accepted {
            Ok(logged_in) => {
                let secure = secure_cookies(&parts, &state);
                let mut response = Redirect::to(LIST_PATH).into_response();
                let headers = response.headers_mut();
                headers.append(
                    header::SET_COOKIE,
                    session_set_cookie(&parts, &state, &logged_in.token),
                );
                headers.append(
                    header::SET_COOKIE,
                    set_cookie(INVITE_COOKIE, "", INVITE_PATH, 0, secure),
                );
                return response;
            }
            Err(ServiceError::Validation(error)) => {
                let field = if error.field == "email" {
                    "email"
                } else {
                    "password"
                };
                errors.push((field, format!("The {} {}.", error.field, error.message)));
            }
            Err(ServiceError::NotFound) => {}
            Err(error) => return PageError::from(error).into_response(),
        }
    }
    // Re-read: a link used meanwhile shows as not working.
    let role = match members.invitation(&form.token).await {
        Ok(found) => found
            .map(|i| i.role.as_str().to_owned())
            .unwrap_or_default(),
        Err(error) => return PageError::from(error).into_response(),
    };
    let status = if role.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = InvitePage {
        csrf_token: csrf_token(&secret),
        token: form.token,
        role,
        email: form.email,
        errors,
        min_chars: PASSWORD_MIN_CHARS,
    };
    render(status, &page)
}
