//! Credentials edited, found and archived in the dashboard, through HTTP: the edit form
//! under the API's rules with a stale form refused, every form error at once in plain
//! words, the scope picker and effective scopes, the search box, a pasted key looked up by
//! its hash, and revoked credentials archived from the default list.

use axum::http::StatusCode;
use keyward_store::testing::record_secrets;
use serde_json::json;

use crate::dashboard::{Member, signed_in};
use crate::support::TestApp;

/// The value of the hidden `version` field of an edit form.
fn version_of(page: &str) -> String {
    let marker = "name=\"version\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

async fn key(app: &TestApp, body: serde_json::Value) -> serde_json::Value {
    let created = app.create_key(body).await;
    record_secrets([
        created["key"].as_str().unwrap(),
        created["client_secret"].as_str().unwrap_or_default(),
    ]);
    created
}

/// Posts the edit form of `id` with `fields` (and the version it was shown at).
async fn save(
    app: &TestApp,
    member: &Member,
    id: &str,
    version: &str,
    fields: &[(&str, &str)],
) -> crate::support::TestResponse {
    let mut all = vec![("version", version)];
    all.extend_from_slice(fields);
    member
        .post(app, &format!("/developer/api-credentials/{id}/edit"), &all)
        .await
}

#[tokio::test]
async fn a_credential_is_edited_and_a_stale_form_is_refused_not_applied() {
    let (app, member) = signed_in().await;
    let created = key(
        &app,
        json!({
            "name": "billing",
            "permissions": ["dns:read", "keys:verify"],
            "owner_id": "cust-9",
            "metadata": { "plan": "pro" },
        }),
    )
    .await;
    let id = created["key_id"].as_str().unwrap();

    let form = member
        .get(&app, &format!("/developer/api-credentials/{id}/edit"))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    // The picker holds what it has boxes for; the rest is typed.
    assert!(
        form.text
            .contains("value=\"dns:read\" id=\"scope-dns-read\" aria-label=\"dns: read\" checked"),
        "{}",
        form.text
    );
    assert!(form.text.contains("name=\"scopes\" value=\"keys:verify\""));
    assert!(form.text.contains("value=\"cust-9\""));
    assert!(
        form.text.contains("&#34;plan&#34;: &#34;pro&#34;"),
        "{}",
        form.text
    );
    let shown_at = version_of(&form.text);

    let saved = save(
        &app,
        &member,
        id,
        &shown_at,
        &[
            ("name", "billing v2"),
            ("scope", "dns:read"),
            ("scope", "dns:write"),
            ("scopes", "keys:verify"),
            ("owner_id", "cust-10"),
            ("ip_allowlist", "192.0.2.0/24\n198.51.100.7"),
            ("rate_limit", "7"),
            ("metadata", "{\"plan\": \"team\"}"),
            ("expires_on", "2099-01-31"),
            ("starts_on", "2026-06-02"),
        ],
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let stored = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(stored["name"], "billing v2");
    assert_eq!(
        stored["permissions"],
        json!(["dns:read", "dns:write", "keys:verify"])
    );
    assert_eq!(stored["owner_id"], "cust-10");
    assert_eq!(
        stored["ip_allowlist"],
        json!(["192.0.2.0/24", "198.51.100.7/32"])
    );
    assert_eq!(stored["rate_limit_override"], 7);
    assert_eq!(stored["metadata"], json!({ "plan": "team" }));
    assert_eq!(stored["expires_at"], "2099-01-31T23:59:59.999Z");
    assert_eq!(stored["not_before"], "2026-06-02T00:00:00Z");

    // The same form sent again was shown before that change: refused, nothing lost.
    let stale = save(&app, &member, id, &shown_at, &[("name", "overwritten")]).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.text);
    assert!(stale.text.contains("id=\"conflict\""));
    assert!(
        stale.text.contains("value=\"billing v2\""),
        "the form shows what is stored now"
    );
    let after = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(after["name"], "billing v2");

    // Emptying fields clears them.
    let fresh = version_of(&stale.text);
    let cleared = save(&app, &member, id, &fresh, &[("name", "billing v2")]).await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER, "{}", cleared.text);
    let bare = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(bare["permissions"], json!([]));
    assert!(
        bare["owner_id"].is_null() && bare["expires_at"].is_null(),
        "{bare}"
    );
    assert!(bare["not_before"].is_null(), "{bare}");
    assert_eq!(bare["metadata"], json!({}));

    // A revoked credential has no edit form.
    app.act_on_key(&created, "revoke").await;
    let gone = member
        .get(&app, &format!("/developer/api-credentials/{id}/edit"))
        .await;
    assert_eq!(gone.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn every_form_error_shows_at_once_in_plain_words() {
    let (app, member) = signed_in().await;
    let long = format!("10.0.0.0/33{}", "9".repeat(200));
    let page = member
        .post(
            &app,
            "/developer/api-credentials",
            &[
                ("name", " "),
                ("scopes", "orders:read"),
                ("ip_allowlist", long.as_str()),
                ("metadata", "[1, 2]"),
                ("rate_limit", "fast"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.text.contains("There are 5 problems"), "{}", page.text);
    for field in ["name", "scopes", "ip_allowlist", "metadata", "rate_limit"] {
        assert!(
            page.text.contains(&format!("<a href=\"#{field}\">")),
            "{field} is linked from the summary"
        );
    }
    let summary = &page.text[page.text.find("id=\"error-summary\"").unwrap()..];
    let summary = &summary[..summary.find("</div>").unwrap()];
    assert!(
        !summary.contains('`'),
        "no code marks in messages: {summary}"
    );
    assert!(summary.contains("“orders:read”"), "{summary}");
    assert!(
        !summary.contains(&"9".repeat(50)),
        "a long value is cut in the message: {summary}"
    );
    assert!(
        page.text.contains(&long),
        "what was typed is kept in its field"
    );
}

#[tokio::test]
async fn the_picker_and_the_role_give_the_effective_scopes() {
    let (app, member) = signed_in().await;
    let form = member.get(&app, "/developer/api-credentials/new").await;
    assert!(form.text.contains("id=\"scope-picker\""));
    assert!(form.text.contains("id=\"scope-dns-all\""));
    assert!(form.text.contains("id=\"scope-everything\""));
    // A form refused for its name shows what the picked scopes and role would give.
    let page = member
        .post(
            &app,
            "/developer/api-credentials",
            &[
                ("name", ""),
                ("scope", "dns:read"),
                ("scope", "vps:*"),
                ("role", "dns_manager"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let effective = &page.text[page.text.find("id=\"effective-scopes\"").unwrap()..];
    let effective = &effective[..effective.find("</ul>").unwrap()];
    assert!(effective.contains("<code>dns:read</code>"), "{effective}");
    assert!(effective.contains("<code>vps:*</code>"), "{effective}");
    assert!(
        effective.contains("<code>dns:*</code>"),
        "the role's scopes: {effective}"
    );
    assert!(
        effective.contains("<code>domains:read</code>"),
        "{effective}"
    );
}

#[tokio::test]
async fn keys_are_found_by_search_or_a_pasted_key_and_revoked_ones_archived() {
    let (app, member) = signed_in().await;
    let kept = key(
        &app,
        json!({ "name": "Reseller sync", "owner_id": "acct-42" }),
    )
    .await;
    let revoked = key(&app, json!({ "name": "Old reseller key" })).await;
    app.act_on_key(&revoked, "revoke").await;
    let long_name = "x".repeat(100);
    key(&app, json!({ "name": long_name })).await;

    let list = member.get(&app, "/developer/api-credentials").await;
    assert!(list.text.contains("Reseller sync"));
    assert!(
        !list.text.contains("Old reseller key"),
        "revoked ones are archived"
    );
    assert!(
        list.text
            .contains("class=\"truncate\" href=\"/developer/api-credentials/"),
        "names are cut to fit"
    );
    let hint = kept["key"].as_str().unwrap();
    let masked = format!("{}…{}", &hint[..8], &hint[hint.len() - 4..]);
    assert!(list.text.contains(&masked), "the masked key {masked}");
    for status in ["revoked", "all"] {
        let page = member
            .get(&app, &format!("/developer/api-credentials?status={status}"))
            .await;
        assert!(page.text.contains("Old reseller key"), "{status}");
    }

    let found = member
        .get(&app, "/developer/api-credentials?q=RESELLER")
        .await;
    assert!(found.text.contains("Reseller sync"));
    assert!(!found.text.contains(&long_name));
    let by_owner = member
        .get(&app, "/developer/api-credentials?q=acct-42")
        .await;
    assert!(by_owner.text.contains("Reseller sync"));

    // A key typed in the search box is refused, never searched for.
    let secret = kept["key"].as_str().unwrap();
    let refused = member
        .get(&app, &format!("/developer/api-credentials?q={secret}"))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text.contains("Find a pasted key"),
        "{}",
        refused.text
    );

    // A pasted key finds its credential by its hash.
    let looked_up = member
        .post(
            &app,
            "/developer/api-credentials/lookup",
            &[("secret", secret)],
        )
        .await;
    assert_eq!(looked_up.status, StatusCode::OK, "{}", looked_up.text);
    assert!(looked_up.text.contains("id=\"lookup-result\""));
    assert!(looked_up.text.contains(kept["key_id"].as_str().unwrap()));
    assert!(looked_up.text.contains("active: it works"));
    assert!(
        !looked_up.text.contains(secret),
        "the pasted key is not shown back"
    );
    let old = member
        .post(
            &app,
            "/developer/api-credentials/lookup",
            &[("secret", revoked["key"].as_str().unwrap())],
        )
        .await;
    assert!(old.text.contains("is revoked"), "{}", old.text);
    let unknown = member
        .post(
            &app,
            "/developer/api-credentials/lookup",
            &[("secret", "kw_live_notarealkeyatall")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.text.contains("No credential of your organization"));
}

#[tokio::test]
async fn usage_charts_cover_three_ranges_and_the_overview_the_whole_organization() {
    let (app, member) = signed_in().await;
    let busy = key(&app, json!({ "name": "busy", "permissions": ["dns:read"] })).await;
    let idle = key(&app, json!({ "name": "never used" })).await;
    let ending = key(
        &app,
        json!({ "name": "ending soon", "expires_at": "2026-06-11T00:00:00Z" }),
    )
    .await;
    let busy_key = busy["key"].as_str().unwrap();
    for _ in 0..3 {
        app.get("/v1/authorize")
            .key(busy_key)
            .send()
            .await
            .expect(200);
    }
    app.get("/v1/authorize")
        .key(busy_key)
        .header("x-keyward-required-scopes", "dns:write")
        .send()
        .await
        .expect(403);
    app.get("/v1/authorize")
        .key(ending["key"].as_str().unwrap())
        .send()
        .await
        .expect(200);
    app.state.engine.flush_usage().await.unwrap();
    let id = busy["key_id"].as_str().unwrap();

    let day = member
        .get(
            &app,
            &format!("/developer/api-credentials/{id}/usage-chart"),
        )
        .await;
    assert_eq!(day.status, StatusCode::OK);
    assert!(
        day.text.contains("aria-current=\"true\">last 24 hours<"),
        "{}",
        day.text
    );
    assert_eq!(day.text.matches("class=\"hit\"").count(), 24);
    assert!(
        day.text.contains("Accepted 3, Missing scope 1"),
        "{}",
        day.text
    );
    assert!(
        day.text.contains("title=\"INSUFFICIENT_SCOPE\""),
        "the code on hover"
    );
    assert!(day.text.contains("class=\"tick scale\""), "a scale");
    assert!(
        !day.text.contains("empty-bar"),
        "empty hours are drawn as nothing"
    );
    let week = member
        .get(
            &app,
            &format!("/developer/api-credentials/{id}/usage-chart?range=7d"),
        )
        .await;
    assert_eq!(week.text.matches("class=\"hit\"").count(), 28);
    assert!(week.text.contains("aria-current=\"true\">last 7 days<"));
    let month = member
        .get(
            &app,
            &format!("/developer/api-credentials/{id}/usage-chart?range=30d"),
        )
        .await;
    assert_eq!(month.text.matches("class=\"hit\"").count(), 30);
    assert!(month.text.contains("Requests per day"));

    let overview = member.get(&app, "/developer/overview").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.text);
    let section = |title: &str| {
        let start = overview.text.find(&format!("id=\"{title}\"")).unwrap();
        let rest = &overview.text[start..];
        rest[..rest.find("</section>").unwrap()].to_owned()
    };
    let busiest = section("busiest-title");
    assert!(
        busiest.find("busy").unwrap() < busiest.find("ending soon").unwrap(),
        "{busiest}"
    );
    assert!(
        busiest.contains("<td>4</td><td>1</td>"),
        "4 requests, 1 refused: {busiest}"
    );
    let unused = section("unused-title");
    assert!(
        unused.contains("never used") && !unused.contains(">busy<"),
        "{unused}"
    );
    assert!(unused.contains(idle["key_id"].as_str().unwrap()));
    let expiring = section("expiring-title");
    assert!(
        expiring.contains("ending soon") && !expiring.contains("never used"),
        "{expiring}"
    );
    // The three credentials made by the bootstrap key count too: 3 + 4 + 1.
    assert!(
        overview.text.contains("8 requests in the last 24 hours"),
        "{}",
        overview.text
    );
    let chart = member
        .get(&app, "/developer/overview/usage-chart?range=30d")
        .await;
    assert!(chart.text.contains("8 requests in the last 30 days"));
}

#[tokio::test]
async fn the_credential_page_says_until_when_a_rotated_secret_works() {
    let (app, member) = signed_in().await;
    let created = key(&app, json!({ "name": "rotating" })).await;
    let id = created["key_id"].as_str().unwrap();
    let page = member
        .get(&app, &format!("/developer/api-credentials/{id}"))
        .await;
    assert!(!page.text.contains("id=\"grace-notice\""));
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .json(json!({ "grace_period_seconds": 3600 }))
        .send()
        .await
        .expect(200)
        .json();
    record_secrets([rotated["key"].as_str().unwrap()]);
    let page = member
        .get(&app, &format!("/developer/api-credentials/{id}"))
        .await;
    assert!(
        page.text
            .contains("keep working until <strong>2026-06-01 13:00 UTC</strong>"),
        "{}",
        page.text
    );
    app.clock.advance(time::Duration::minutes(61));
    let page = member
        .get(&app, &format!("/developer/api-credentials/{id}"))
        .await;
    assert!(
        !page.text.contains("id=\"grace-notice\""),
        "the grace is over"
    );
}

#[tokio::test]
async fn the_rule_and_webhook_forms_list_every_error_at_the_top() {
    let (app, member) = signed_in().await;
    let rule = member
        .post(
            &app,
            "/developer/api-security",
            &[("type", "maybe"), ("ip_network", "10.0.0.0/33")],
        )
        .await;
    assert_eq!(
        rule.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        rule.text
    );
    assert!(rule.text.contains("There are 2 problems"), "{}", rule.text);
    assert!(
        rule.text.contains("<a href=\"#type\">") && rule.text.contains("<a href=\"#ip_network\">")
    );
    let summary = &rule.text[rule.text.find("id=\"error-summary\"").unwrap()..];
    assert!(!summary[..summary.find("</div>").unwrap()].contains('`'));

    let hook = member
        .post(
            &app,
            "/developer/webhooks",
            &[("url", ""), ("description", "x")],
        )
        .await;
    assert_eq!(
        hook.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        hook.text
    );
    assert!(hook.text.contains("There are 2 problems"), "{}", hook.text);
    assert!(hook.text.contains("<a href=\"#webhook-url\">"));
    assert!(hook.text.contains("<a href=\"#webhook-events\">"));
}

#[tokio::test]
async fn the_credential_page_says_from_where_a_replaced_secret_is_still_sent() {
    let (app, member) = signed_in().await;
    let created = key(&app, json!({ "name": "moved" })).await;
    let id = created["key_id"].as_str().unwrap();
    let old_key = created["key"].as_str().unwrap().to_owned();
    // Used during a grace period: it works, and nothing is said.
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .json(json!({ "grace_period_seconds": 60 }))
        .send()
        .await
        .expect(200)
        .json();
    record_secrets([rotated["key"].as_str().unwrap()]);
    app.get("/v1/authorize")
        .key(&old_key)
        .peer("198.51.100.7")
        .send()
        .await
        .expect(200);
    app.state.engine.flush_usage().await.unwrap();
    let page = member
        .get(&app, &format!("/developer/api-credentials/{id}"))
        .await;
    assert!(!page.text.contains("id=\"old-secret-used\""));
    // After the grace: refused, and the page says when and from where.
    app.clock.advance(time::Duration::minutes(2));
    for peer in ["198.51.100.7", "198.51.100.8"] {
        app.get("/v1/authorize")
            .key(&old_key)
            .peer(peer)
            .send()
            .await
            .expect(401);
        app.clock.advance(time::Duration::seconds(1));
    }
    app.state.engine.flush_usage().await.unwrap();
    let page = member
        .get(&app, &format!("/developer/api-credentials/{id}"))
        .await;
    assert!(
        page.text.contains("2026-06-01 12:02 UTC from 198.51.100.8"),
        "{}",
        page.text
    );
    // A key that was never rotated says nothing of old secrets.
    let other = key(&app, json!({ "name": "unrotated" })).await;
    let page = member
        .get(
            &app,
            &format!(
                "/developer/api-credentials/{}",
                other["key_id"].as_str().unwrap()
            ),
        )
        .await;
    assert!(!page.text.contains("id=\"old-secret-used\""));
}
