//! `keyward keys …` and `keyward orgs …` as an operator types them: `--org` left out on a
//! deployment with one organization, every setting on create and update, dates as dates,
//! and errors in one line that says what to do next.

use keyward_store::testing::record_secrets_shown;
use serde_json::Value;

use crate::support::{database, init, keyward};

/// Runs `keyward --database DB args…`: (exit status, standard output, standard error).
fn keyward_on(database: &str, args: &[&str]) -> (i32, String, String) {
    let output = keyward()
        .arg("--database")
        .arg(database)
        .args(args)
        .env_remove("KEYWARD_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    record_secrets_shown(&stdout);
    (
        output.status.code().unwrap_or(-1),
        stdout,
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Runs a command that must succeed, printing JSON.
fn json(database: &str, args: &[&str]) -> Value {
    let (status, out, err) = keyward_on(database, args);
    assert_eq!(status, 0, "{args:?}: {err}");
    // A command's log holds only what went wrong.
    assert!(err.is_empty(), "{args:?} wrote to standard error: {err}");
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("{args:?}: not JSON: {out}"))
}

#[tokio::test]
async fn keys_are_managed_without_naming_the_only_organization() {
    let db = database().await;
    let bootstrap = init(db.url());
    let db = db.url();

    let orgs = json(db, &["orgs", "list", "--json"]);
    assert_eq!(
        orgs[0]["organization_id"],
        bootstrap.organization_id.as_str()
    );

    let made = json(
        db,
        &[
            "keys",
            "create",
            "--name",
            "Billing sync",
            "--description",
            "nightly job",
            "--permission",
            "dns:read",
            "--allow",
            "192.0.2.0/24",
            "--rate-limit",
            "5",
            "--owner-id",
            "cust-7",
            "--metadata",
            r#"{"plan":"pro"}"#,
            "--expires-at",
            "2099-06-01",
            "--json",
        ],
    );
    let id = made["key_id"].as_str().unwrap().to_owned();
    assert_eq!(made["expires_at"], "2099-06-01T00:00:00Z");
    assert_eq!(made["ip_allowlist"], serde_json::json!(["192.0.2.0/24"]));
    assert_eq!(made["rate_limit_override"], 5);
    assert_eq!(made["metadata"]["plan"], "pro");
    assert_eq!(made["owner_id"], "cust-7");

    let shown = json(db, &["keys", "show", &id, "--json"]);
    assert_eq!(shown["description"], "nightly job");
    assert!(shown.get("key").is_none(), "show never prints a secret");

    let updated = json(
        db,
        &[
            "keys",
            "update",
            &id,
            "--name",
            "Billing",
            "--clear",
            "expires-at",
            "--clear",
            "allowlist",
            "--permission",
            "dns:write",
            "--json",
        ],
    );
    assert_eq!(updated["name"], "Billing");
    assert!(updated["expires_at"].is_null(), "{updated}");
    assert!(updated["not_before"].is_null(), "{updated}");
    assert_eq!(updated["ip_allowlist"], serde_json::json!([]));
    assert_eq!(updated["permissions"], serde_json::json!(["dns:write"]));
    assert_eq!(updated["owner_id"], "cust-7", "what is not given is kept");

    for (command, status) in [("disable", "disabled"), ("enable", "active")] {
        let (code, out, err) = keyward_on(db, &["keys", command, &id]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&id), "{out}");
        assert_eq!(json(db, &["keys", "show", &id, "--json"])["status"], status);
    }
    let disabled_only = json(db, &["keys", "list", "--status", "disabled", "--json"]);
    assert_eq!(disabled_only, serde_json::json!([]));
    let for_owner = json(db, &["keys", "list", "--owner-id", "cust-7", "--json"]);
    assert_eq!(for_owner.as_array().unwrap().len(), 1);
    let test_keys = json(db, &["keys", "list", "--environment", "test", "--json"]);
    assert_eq!(test_keys, serde_json::json!([]));
}

#[tokio::test]
async fn errors_are_one_line_saying_what_to_do() {
    let db = database().await;
    let bootstrap = init(db.url());
    let db = db.url();

    // An unknown key names itself, the organization, and how to list them.
    let missing = "api_key_01m91ew689ejgbbe2j6gm9g2w8";
    let (code, _, err) = keyward_on(db, &["keys", "show", missing]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(missing) && err.contains("keys list"), "{err}");
    assert!(err.contains(&bootstrap.organization_id), "{err}");

    // A value clap can check is a usage error, exit 2, said once.
    let (code, _, err) = keyward_on(
        db,
        &["keys", "create", "--name", "x", "--expires-at", "June 1st"],
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.matches("expected a date").count(), 1, "{err}");
    let (code, _, err) = keyward_on(db, &["keys", "list", "--status", "sleeping"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = keyward_on(db, &["keys", "create", "--name", "x", "--metadata", "[1]"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("JSON object"), "{err}");

    // A second organization: --org is needed, and a wrong one is named.
    init(db);
    let (code, _, err) = keyward_on(db, &["keys", "list"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("2 organizations") && err.contains("--org"),
        "{err}"
    );
    let (code, _, err) = keyward_on(db, &["keys", "list", "--org", "acme"]);
    assert_eq!(code, 1);
    assert!(err.contains("orgs list"), "{err}");
    let (code, out, _) = keyward_on(
        db,
        &[
            "keys",
            "list",
            "--org",
            &bootstrap.organization_id,
            "--json",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn users_are_listed_given_roles_and_removed_but_the_last_owner_stays() {
    let db = database().await;
    let bootstrap = init(db.url());
    let db = db.url();

    // The organization's first member is its owner; the next a developer, unless told.
    for (email, role) in [
        ("ada@example.com", None),
        ("bob@example.com", None),
        ("cy@example.com", Some("viewer")),
    ] {
        let mut args = vec!["users", "add", "--email", email];
        if let Some(role) = role {
            args.extend(["--role", role]);
        }
        let (code, out, err) = keyward_on(db, &args);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("Password: "),
            "a generated password is shown once: {out}"
        );
    }
    let listed = json(db, &["users", "list", "--json"]);
    let roles: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("ada@example.com", "owner"),
            ("bob@example.com", "developer"),
            ("cy@example.com", "viewer")
        ]
    );
    assert!(listed[0]["last_login_at"].is_null());
    assert_eq!(
        listed[0]["organization_id"],
        bootstrap.organization_id.as_str()
    );
    assert!(listed[0].get("password_hash").is_none());
    let (code, text, _) = keyward_on(db, &["users", "list"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("LAST LOGIN") && text.contains("never"),
        "{text}"
    );

    // The last owner can be neither demoted nor removed; after a second owner, it can.
    for args in [
        &[
            "users",
            "set-role",
            "--email",
            "ada@example.com",
            "--role",
            "admin",
        ][..],
        &["users", "remove", "--email", "ada@example.com"][..],
    ] {
        let (code, _, err) = keyward_on(db, args);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("last owner") && err.contains("set-role"),
            "{err}"
        );
    }
    let (code, out, err) = keyward_on(
        db,
        &[
            "users",
            "set-role",
            "--email",
            "BOB@example.com",
            "--role",
            "owner",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("owner"), "{out}");
    let (code, _, err) = keyward_on(db, &["users", "remove", "--email", "ada@example.com"]);
    assert_eq!(code, 0, "{err}");
    let left: Vec<String> = json(db, &["users", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["bob@example.com", "cy@example.com"]);

    // Unknown members and roles: one line, and a usage error for a role clap can check.
    let (code, _, err) = keyward_on(db, &["users", "remove", "--email", "nobody@example.com"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("nobody@example.com") && err.contains("users list"),
        "{err}"
    );
    let (code, _, err) = keyward_on(
        db,
        &[
            "users",
            "set-role",
            "--email",
            "cy@example.com",
            "--role",
            "root",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("owner, admin, developer or viewer"), "{err}");
}

#[tokio::test]
async fn users_reset_two_step_names_the_member_or_says_none_exists() {
    let db = database().await;
    init(db.url());
    let db = db.url();
    let (code, _, err) = keyward_on(db, &["users", "add", "--email", "ada@example.com"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = keyward_on(
        db,
        &["users", "reset-two-step", "--email", "ada@example.com"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Turned off two-step verification of ada@example.com"),
        "{out}"
    );
    let listed = json(db, &["users", "list", "--json"]);
    assert_eq!(listed[0]["two_step"], false);
    let (code, _, err) = keyward_on(
        db,
        &["users", "reset-two-step", "--email", "no@example.com"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("no@example.com") && err.contains("users list"),
        "{err}"
    );
}

#[tokio::test]
async fn server_flags_appear_only_under_serve_and_config_check() {
    let help = |args: &[&str]| {
        let output = keyward().args(args).arg("--help").output().unwrap();
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    for command in [&["serve"][..], &["config", "check"][..]] {
        let text = help(command);
        assert!(
            text.contains("--allow-query-api-key"),
            "{command:?}: {text}"
        );
        assert!(text.contains("--trusted-proxies"), "{command:?}");
    }
    for command in [
        &["keys", "create"][..],
        &["users", "add"][..],
        &["orgs", "list"][..],
    ] {
        let text = help(command);
        assert!(
            !text.contains("--allow-query-api-key"),
            "{command:?}: {text}"
        );
        assert!(!text.contains("--trusted-proxies"), "{command:?}");
        assert!(!text.contains("--listen"), "{command:?}");
    }
    // A server flag given to another command is a usage error, said once.
    let output = keyward()
        .args(["orgs", "list", "--trusted-proxies", "10.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
