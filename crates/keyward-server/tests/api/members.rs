//! Members and their roles through HTTP: what each role may do in the dashboard and in the
//! management API called with its session, invitations (made, accepted once, withdrawn,
//! expired), the last owner, and changing one's own password.

use axum::http::StatusCode;
use keyward_core::clock::Clock;
use keyward_core::member::MemberRole;
use keyward_store::testing::record_secrets;
use serde_json::json;

use crate::dashboard::{
    EMAIL, Member, PASSWORD, add_member, add_member_as, cookie_value, csrf_of, login, set_cookie,
};
use crate::support::{TestApp, TestResponse};

/// The invitation link a Members page shows, once.
fn link_of(page: &str) -> String {
    let marker = "id=\"invite-link\" value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no invitation link in {page}"))
        + marker.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

/// The token of an invitation link.
fn token_of(link: &str) -> String {
    link.split_once("token=").unwrap().1.to_owned()
}

/// Makes an invitation for `role` as `member`; returns its token.
async fn invite(app: &TestApp, member: &Member, role: &str) -> String {
    let page = member
        .post(app, "/settings/members/invitations", &[("role", role)])
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.text);
    let link = link_of(&page.text);
    assert!(link.starts_with("http://"), "{link}");
    assert!(link.contains("/invite?token="), "{link}");
    let token = token_of(&link);
    record_secrets([token.as_str()]);
    token
}

/// An invitation's form as a browser holds it: its pre-session cookie and CSRF token.
struct InviteForm {
    cookie: String,
    csrf: String,
}

/// Opens an invitation link.
async fn open_invitation(app: &TestApp, token: &str) -> InviteForm {
    let form = app.get(&format!("/invite?token={token}")).send().await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    InviteForm {
        cookie: cookie_value(set_cookie(&form, "keyward_invite").unwrap()),
        csrf: csrf_of(&form.text),
    }
}

/// Opens an invitation link and posts its form; returns the answer.
async fn accept(
    app: &TestApp,
    token: &str,
    email: &str,
    password: &str,
    confirm: &str,
) -> TestResponse {
    let form = open_invitation(app, token).await;
    submit(app, &form, token, email, password, confirm).await
}

/// Posts an invitation form opened before.
async fn submit(
    app: &TestApp,
    form: &InviteForm,
    token: &str,
    email: &str,
    password: &str,
    confirm: &str,
) -> TestResponse {
    let cookie = &form.cookie;
    let body = serde_urlencoded::to_string([
        ("csrf_token", form.csrf.as_str()),
        ("token", token),
        ("email", email),
        ("password", password),
        ("confirm_password", confirm),
    ])
    .unwrap();
    app.post("/invite")
        .header("cookie", &format!("keyward_invite={cookie}"))
        .raw("application/x-www-form-urlencoded", body)
        .send()
        .await
}

/// The signed-in member an accepted invitation's answer starts a session for.
async fn joined(app: &TestApp, response: &TestResponse) -> Member {
    assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.text);
    assert_eq!(
        response.header("location"),
        Some("/developer/api-credentials")
    );
    let cookie = format!(
        "keyward_session={}",
        cookie_value(set_cookie(response, "keyward_session").unwrap())
    );
    let page = app
        .get("/developer/api-credentials")
        .header("cookie", &cookie)
        .send()
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    Member {
        csrf: csrf_of(&page.text),
        cookie,
    }
}

/// A management API call with `member`'s session.
fn api<'a>(
    app: &'a TestApp,
    member: &Member,
    method: &str,
    path: &str,
) -> crate::support::Call<'a> {
    app.call(method.parse().unwrap(), path)
        .header("cookie", &member.cookie)
        .header("x-csrf-token", &member.csrf)
}

#[tokio::test]
async fn an_invited_viewer_joins_once_and_reads_but_changes_nothing() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let owner = login(&app, EMAIL).await;
    let members = owner.get(&app, "/settings/members").await;
    assert_eq!(members.status, StatusCode::OK);
    assert!(
        members.text.contains("id=\"nav-role\">owner<"),
        "{}",
        members.text
    );

    let token = invite(&app, &owner, "viewer").await;
    let open = app.get(&format!("/invite?token={token}")).send().await;
    assert_eq!(open.status, StatusCode::OK);
    assert!(open.text.contains("id=\"invite-role\">viewer<"));

    // Two problems at once, each linked from the summary.
    let refused = accept(&app, &token, "vera@example.com", "short", "other").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.text.contains("There are 2 problems"),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("href=\"#password\""));
    assert!(refused.text.contains("href=\"#confirm_password\""));

    record_secrets(["viewer password 1234"]);
    let second_tab = open_invitation(&app, &token).await;
    let response = accept(
        &app,
        &token,
        "Vera@Example.com",
        "viewer password 1234",
        "viewer password 1234",
    )
    .await;
    let viewer = joined(&app, &response).await;

    // The link works once.
    let again = app.get(&format!("/invite?token={token}")).send().await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.text.contains("id=\"invite-gone\""));
    let reused = submit(
        &app,
        &second_tab,
        &token,
        "eve@example.com",
        "another password 1",
        "another password 1",
    )
    .await;
    assert_eq!(reused.status, StatusCode::NOT_FOUND, "{}", reused.text);

    // The viewer reads, is offered no change, and every change is refused.
    let list = viewer.get(&app, "/developer/api-credentials").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text.contains("id=\"create-credential\""));
    assert!(list.text.contains("id=\"nav-role\">viewer<"));
    let create = viewer
        .post(&app, "/developer/api-credentials", &[("name", "sneaky")])
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN, "{}", create.text);
    assert!(create.text.contains("viewer"), "{}", create.text);
    let rule = viewer
        .post(
            &app,
            "/developer/api-security",
            &[("ip_network", "10.0.0.0/8"), ("type", "deny")],
        )
        .await;
    assert_eq!(rule.status, StatusCode::FORBIDDEN);

    // The same bounds hold in the management API called with the session.
    let listed = api(&app, &viewer, "GET", "/v1/keys").send().await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let made = api(&app, &viewer, "POST", "/v1/keys")
        .json(json!({ "name": "sneaky", "permissions": ["keys:read"] }))
        .send()
        .await;
    let problem = made.assert_problem(403, "insufficient_role");
    assert!(
        problem["detail"].as_str().unwrap().contains("keys:write"),
        "{problem}"
    );
    let rule = api(&app, &viewer, "POST", "/v1/ip-rules")
        .json(json!({ "ip_network": "10.0.0.0/8", "type": "deny" }))
        .send()
        .await;
    rule.assert_problem(403, "insufficient_role");

    // A viewer sees the members but cannot invite.
    let page = viewer.get(&app, "/settings/members").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("vera@example.com"));
    assert!(!page.text.contains("id=\"invite\""));
    let invited = viewer
        .post(&app, "/settings/members/invitations", &[("role", "viewer")])
        .await;
    assert_eq!(invited.status, StatusCode::FORBIDDEN);

    // The audit log says who joined, by which invitation, as what.
    let log = app
        .get("/v1/audit-log?action=member.joined")
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let event = &log["data"][0];
    assert_eq!(event["details"]["email"], "vera@example.com");
    assert_eq!(event["details"]["role"], "viewer");
}

#[tokio::test]
async fn a_developer_manages_credentials_but_not_members() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    add_member_as(
        &app,
        &app.organization_id,
        "dev@example.com",
        Some(MemberRole::Developer),
    )
    .await;
    let developer = login(&app, "dev@example.com").await;
    let made = api(&app, &developer, "POST", "/v1/keys")
        .json(json!({ "name": "deploy", "permissions": ["*"] }))
        .send()
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    record_secrets([made.json()["key"].as_str().unwrap()]);

    let page = developer.get(&app, "/settings/members").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("id=\"invite\""), "no invitation form");
    assert!(!page.text.contains("/remove\""), "no remove buttons");
    let invited = developer
        .post(
            &app,
            "/settings/members/invitations",
            &[("role", "developer")],
        )
        .await;
    assert_eq!(invited.status, StatusCode::FORBIDDEN);
    assert!(
        invited.text.contains("Your role does not allow this"),
        "{}",
        invited.text
    );
}

#[tokio::test]
async fn an_admin_cannot_touch_owners_and_the_last_owner_stays() {
    let app = TestApp::new().await;
    let owner_id = add_member(&app, &app.organization_id, EMAIL).await;
    let admin_id = add_member_as(
        &app,
        &app.organization_id,
        "admin@example.com",
        Some(MemberRole::Admin),
    )
    .await;
    let admin = login(&app, "admin@example.com").await;

    // No owner invitations, no owner made, no owner demoted or removed by an admin.
    let page = admin.get(&app, "/settings/members").await;
    assert!(!page.text.contains("value=\"owner\""), "{}", page.text);
    let owner_invite = admin
        .post(&app, "/settings/members/invitations", &[("role", "owner")])
        .await;
    assert_eq!(owner_invite.status, StatusCode::FORBIDDEN);
    let promote = admin
        .post(
            &app,
            &format!("/settings/members/{admin_id}/role"),
            &[("role", "owner")],
        )
        .await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN, "{}", promote.text);
    let demote = admin
        .post(
            &app,
            &format!("/settings/members/{owner_id}/role"),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(demote.status, StatusCode::FORBIDDEN);
    let remove = admin
        .post(&app, &format!("/settings/members/{owner_id}/remove"), &[])
        .await;
    assert_eq!(remove.status, StatusCode::FORBIDDEN);
    let members = app
        .state
        .service
        .members()
        .list_all(&keyward_service::Operator::new(), None)
        .await
        .unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.email == EMAIL && m.role == MemberRole::Owner)
    );

    // The only owner cannot step down or leave.
    let owner = login(&app, EMAIL).await;
    let step_down = owner
        .post(
            &app,
            &format!("/settings/members/{owner_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(step_down.status, StatusCode::CONFLICT);
    assert!(
        step_down.text.contains("at least one owner"),
        "{}",
        step_down.text
    );
    let leave = owner
        .post(&app, &format!("/settings/members/{owner_id}/remove"), &[])
        .await;
    assert_eq!(leave.status, StatusCode::CONFLICT);

    // The owner removes the admin: the admin's session ends at once.
    let removed = owner
        .post(&app, &format!("/settings/members/{admin_id}/remove"), &[])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.text);
    let after = admin.get(&app, "/developer/api-credentials").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    let api_after = api(&app, &admin, "GET", "/v1/keys").send().await;
    assert_eq!(api_after.status, StatusCode::UNAUTHORIZED);

    // A member of no organization here is not found.
    let foreign = owner
        .post(
            &app,
            "/settings/members/user_01h455vb4pex5vsknk084sn02q/remove",
            &[],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invitations_expire_and_can_be_withdrawn() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let owner = login(&app, EMAIL).await;
    let withdrawn = invite(&app, &owner, "developer").await;
    let page = owner.get(&app, "/settings/members").await;
    let marker = "/settings/members/invitations/";
    let start = page.text.find(marker).unwrap() + marker.len();
    let handle = &page.text[start..start + 16];
    assert!(
        !withdrawn.contains(handle),
        "the handle is not part of the token"
    );
    let done = owner
        .post(&app, &format!("{marker}{handle}/withdraw"), &[])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let gone = app.get(&format!("/invite?token={withdrawn}")).send().await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    let expiring = invite(&app, &owner, "developer").await;
    let opened_in_time = open_invitation(&app, &expiring).await;
    app.clock
        .advance(time::Duration::days(7) + time::Duration::seconds(1));
    let expired = app.get(&format!("/invite?token={expiring}")).send().await;
    assert_eq!(expired.status, StatusCode::NOT_FOUND);
    let late = submit(
        &app,
        &opened_in_time,
        &expiring,
        "late@example.com",
        "late password 123",
        "late password 123",
    )
    .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    let unknown = app.get("/invite?token=0000").send().await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_member_changes_its_own_password_and_other_sessions_end() {
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let here = login(&app, EMAIL).await;
    let elsewhere = login(&app, EMAIL).await;
    let page = here.get(&app, "/settings/account").await;
    assert_eq!(page.status, StatusCode::OK);

    // Every problem at once.
    let refused = here
        .post(
            &app,
            "/settings/account/password",
            &[
                ("current_password", ""),
                ("new_password", "short"),
                ("confirm_password", "different"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.text.contains("There are 3 problems"),
        "{}",
        refused.text
    );
    let wrong = here
        .post(
            &app,
            "/settings/account/password",
            &[
                ("current_password", "not my password at all"),
                ("new_password", "a brand new password"),
                ("confirm_password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.text.contains("This is not your present password."));

    record_secrets(["a brand new password"]);
    let changed = here
        .post(
            &app,
            "/settings/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new password"),
                ("confirm_password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.text);
    let renewed = format!(
        "keyward_session={}",
        cookie_value(set_cookie(&changed, "keyward_session").unwrap())
    );
    let ok = app
        .get("/settings/account?done=password")
        .header("cookie", &renewed)
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    for old in [&here, &elsewhere] {
        let page = old.get(&app, "/developer/api-credentials").await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "an old session still works"
        );
    }
    let old_password = crate::dashboard::post_login(&app, EMAIL, PASSWORD, "127.0.0.2").await;
    assert_eq!(old_password.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_audit_page_names_actors_links_objects_filters_and_exports() {
    let app = TestApp::new().await;
    let member_id = add_member(&app, &app.organization_id, EMAIL).await;
    let member = login(&app, EMAIL).await;
    let made = api(&app, &member, "POST", "/v1/keys")
        .json(json!({ "name": "from the dashboard", "permissions": ["dns:read"] }))
        .send()
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let key = made.json();
    record_secrets([key["key"].as_str().unwrap()]);
    let key_id = key["key_id"].as_str().unwrap();

    let page = member
        .get(&app, &format!("/developer/audit-log?actor={member_id}"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains(&format!(
            "href=\"?actor={member_id}\" title=\"{member_id}\">{EMAIL}<"
        )),
        "the actor is the member's email, its id on hover: {}",
        page.text
    );
    assert!(
        page.text
            .contains(&format!("href=\"/developer/api-credentials/{key_id}\""))
    );
    assert!(
        !page.text.contains("organization.created"),
        "filtered by actor"
    );
    assert!(
        page.text.contains(&format!(
            "href=\"/developer/audit-log/export?format=csv&#38;actor={member_id}\""
        )),
        "{}",
        page.text
    );

    let csv = member
        .get(
            &app,
            &format!("/developer/audit-log/export?format=csv&actor={member_id}"),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"audit-log.csv\"")
    );
    assert!(
        csv.text
            .contains(&format!(",key.created,{member_id},{EMAIL},")),
        "{}",
        csv.text
    );
    assert!(!csv.text.contains("member.added"), "{}", csv.text);

    // A day range: nothing before the day the events happened.
    let earlier = member
        .get(&app, "/developer/audit-log?from=2026-05-01&to=2026-05-31")
        .await;
    assert!(earlier.text.contains("id=\"no-events\""));
    let bad = member
        .get(&app, "/developer/audit-log?from=someday&to=2026-05-31")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("id=\"error-summary\""), "{}", bad.text);
    assert!(bad.text.contains("href=\"#from\""));
}

/// A value of the hidden or read-only input `id` of a page.
fn input_value(page: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {page}"))
        + marker.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

/// The hidden `pending` field of the enrolment page.
fn pending_of(page: &str) -> String {
    let marker = "name=\"pending\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

/// Logs in with the password; returns the cookies the code step needs.
async fn password_step(app: &TestApp) -> (String, String) {
    let response = crate::dashboard::post_login(app, EMAIL, PASSWORD, "127.0.0.9").await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.text);
    let location = response.header("location").unwrap();
    assert!(location.starts_with("/login/code?next="), "{location}");
    assert!(
        set_cookie(&response, "keyward_session").is_none(),
        "no session yet"
    );
    let challenge = cookie_value(set_cookie(&response, "keyward_login_challenge").unwrap());
    // The login form's cookie carries on to the code form.
    let form = app.get("/login").peer("127.0.0.9").send().await;
    let login_cookie = cookie_value(set_cookie(&form, "keyward_login").unwrap());
    (login_cookie, challenge)
}

/// Posts a code for the login whose cookies are `cookies`.
async fn code_step(app: &TestApp, cookies: &(String, String), code: &str) -> TestResponse {
    let (login_cookie, challenge) = cookies;
    let cookie = format!("keyward_login={login_cookie}; keyward_login_challenge={challenge}");
    let form = app
        .get("/login/code")
        .header("cookie", &cookie)
        .send()
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let body = serde_urlencoded::to_string([
        ("csrf_token", csrf_of(&form.text).as_str()),
        ("code", code),
        ("next", "/settings/account"),
    ])
    .unwrap();
    app.post("/login/code")
        .peer("127.0.0.9")
        .header("cookie", &cookie)
        .raw("application/x-www-form-urlencoded", body)
        .send()
        .await
}

#[tokio::test]
async fn a_second_factor_is_turned_on_asked_at_login_and_its_codes_work_once() {
    use keyward_core::member::TotpSecret;
    let app = TestApp::new().await;
    add_member(&app, &app.organization_id, EMAIL).await;
    let member = login(&app, EMAIL).await;
    let account = member.get(&app, "/settings/account").await;
    assert!(account.text.contains("id=\"turn-on-two-step\""));

    let enrol = member.get(&app, "/settings/account/two-step").await;
    assert_eq!(enrol.status, StatusCode::OK);
    let base32 = input_value(&enrol.text, "totp-secret");
    record_secrets([base32.as_str()]);
    assert!(
        enrol
            .text
            .contains("otpauth://totp/Keyward:ada%40example.com?"),
        "{}",
        enrol.text
    );
    let secret = TotpSecret::from_base32(&base32).unwrap();
    let pending = pending_of(&enrol.text);
    let wrong = member
        .post(
            &app,
            "/settings/account/two-step",
            &[("pending", &pending), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let code = secret.code_at(app.clock.now());
    let on = member
        .post(
            &app,
            "/settings/account/two-step",
            &[("pending", &pending), ("code", &code)],
        )
        .await;
    assert_eq!(on.status, StatusCode::CREATED, "{}", on.text);
    let codes: Vec<String> = on
        .text
        .match_indices("<li><code>")
        .map(|(i, _)| on.text[i + 10..i + 29].to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{}", on.text);
    record_secrets(codes.iter().map(String::as_str));

    // The password alone no longer logs in; the code used to turn it on is spent.
    let cookies = password_step(&app).await;
    let reused = code_step(&app, &cookies, &code).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{}", reused.text);
    app.clock.advance(time::Duration::seconds(30));
    let fresh = secret.code_at(app.clock.now());
    let in_ = code_step(&app, &cookies, &fresh).await;
    assert_eq!(in_.status, StatusCode::SEE_OTHER, "{}", in_.text);
    assert_eq!(in_.header("location"), Some("/settings/account"));
    assert!(set_cookie(&in_, "keyward_session").is_some());
    let again = code_step(&app, &password_step(&app).await, &fresh).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "a code works once");

    // A recovery code works once, typed however.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let recovered = code_step(&app, &password_step(&app).await, &typed).await;
    assert_eq!(
        recovered.status,
        StatusCode::SEE_OTHER,
        "{}",
        recovered.text
    );
    let twice = code_step(&app, &password_step(&app).await, &codes[0]).await;
    assert_eq!(twice.status, StatusCode::UNAUTHORIZED);
    let session = format!(
        "keyward_session={}",
        cookie_value(set_cookie(&recovered, "keyward_session").unwrap())
    );
    let account = app
        .get("/settings/account")
        .header("cookie", &session)
        .send()
        .await;
    assert!(
        account.text.contains("9 recovery codes left"),
        "{}",
        account.text
    );

    // A challenge expires.
    let late = password_step(&app).await;
    app.clock.advance(time::Duration::minutes(6));
    let code = secret.code_at(app.clock.now());
    assert_eq!(
        code_step(&app, &late, &code).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Turned off with the password: the password alone logs in again.
    let member = Member {
        csrf: csrf_of(&account.text),
        cookie: session,
    };
    let off = member
        .post(
            &app,
            "/settings/account/two-step/off",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.text);
    let plain = crate::dashboard::post_login(&app, EMAIL, PASSWORD, "127.0.0.10").await;
    assert!(set_cookie(&plain, "keyward_session").is_some());

    // The audit log tells the story; no secret or code is in it.
    let log = app
        .get("/v1/audit-log?action=member.&limit=100")
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    for action in [
        "member.second_factor_enabled",
        "member.password_accepted",
        "member.second_factor_disabled",
    ] {
        assert!(log.text.contains(action), "{action}");
    }
    assert!(log.text.contains("\"second_factor\":\"recovery_code\""));
    assert!(!log.text.contains(&base32) && !log.text.contains(&codes[0]));
}
