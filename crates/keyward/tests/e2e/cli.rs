//! The command line: init, keys, migrate, config check, and the first `serve`.

use keyward_store::testing::{record_secrets, record_secrets_shown};
use regex::Regex;
use serde_json::Value;

use crate::support::{Server, client, database, init, keyward};

fn run(args: &[&str], database: &str) -> String {
    let output = keyward()
        .arg("--database")
        .arg(database)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    record_secrets_shown(&stdout);
    stdout
}

/// Logs in through the dashboard's form; returns the status of the form post (303 when
/// the email and password are right).
async fn dashboard_login(server: &Server, email: &str, password: &str) -> reqwest::StatusCode {
    let form = client().get(server.url("/login")).send().await.unwrap();
    let cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let page = form.text().await.unwrap();
    let token = Regex::new(r#"name="csrf_token" value="([0-9a-f]{64})""#)
        .unwrap()
        .captures(&page)
        .unwrap()[1]
        .to_owned();
    let no_redirects = crate::support::http()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    no_redirects
        .post(server.url("/login"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf_token", token.as_str()),
                ("email", email),
                ("password", password),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_add_and_passwd_set_dashboard_logins() {
    let db = database().await;
    let bootstrap = init(db.url());
    let added = run(
        &[
            "users",
            "add",
            "--org",
            &bootstrap.organization_id,
            "--email",
            "Grace@Example.com",
        ],
        db.url(),
    );
    let generated = Regex::new(r"Password:\s+(\S{20})")
        .unwrap()
        .captures(&added)
        .unwrap_or_else(|| panic!("no password in {added}"))[1]
        .to_owned();
    record_secrets([generated.as_str()]);
    assert!(added.contains("grace@example.com"), "{added}");
    // A second member with the same email, an unknown organization and a short password are
    // refused with a message.
    for (args, message) in [
        (
            vec![
                "users",
                "add",
                "--org",
                &bootstrap.organization_id,
                "--email",
                "grace@example.com",
            ],
            "belongs to a member already",
        ),
        (
            vec![
                "users",
                "add",
                "--org",
                "organization_01h455vb4pex5vsknk084sn02q",
                "--email",
                "x@example.com",
            ],
            "no organization",
        ),
        (
            vec!["users", "passwd", "--email", "nobody@example.com"],
            "no member",
        ),
    ] {
        let output = keyward()
            .arg("--database")
            .arg(db.url())
            .args(&args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let server = Server::start(db.url(), &[], &[]);
    assert_eq!(
        dashboard_login(&server, "grace@example.com", &generated).await,
        reqwest::StatusCode::SEE_OTHER
    );
    let changed = run(
        &["users", "passwd", "--email", "grace@example.com"],
        db.url(),
    );
    let new_password = Regex::new(r"Password:\s+(\S{20})")
        .unwrap()
        .captures(&changed)
        .unwrap()[1]
        .to_owned();
    record_secrets([new_password.as_str()]);
    assert_eq!(
        dashboard_login(&server, "grace@example.com", &generated).await,
        reqwest::StatusCode::UNAUTHORIZED,
        "the old password no longer works"
    );
    assert_eq!(
        dashboard_login(&server, "grace@example.com", &new_password).await,
        reqwest::StatusCode::SEE_OTHER
    );
    let logs = server.stop();
    assert!(!logs.contains(&generated) && !logs.contains(&new_password));
}

#[tokio::test]
async fn init_prints_the_three_values_once_as_json() {
    let db = database().await;
    let path = db.url();
    let bootstrap = init(path);
    assert!(
        Regex::new(r"^kw_live_[0-9A-Za-z]{38}$")
            .unwrap()
            .is_match(&bootstrap.api_key)
    );
    assert!(
        Regex::new(r"^kw_cs_[0-9A-Za-z]{46}$")
            .unwrap()
            .is_match(&bootstrap.client_secret)
    );
    assert!(
        Regex::new(r"^organization_[0-7][0-9a-hjkmnp-tv-z]{25}$")
            .unwrap()
            .is_match(&bootstrap.organization_id)
    );
}

#[tokio::test]
async fn keys_commands_work_on_the_same_database() {
    let db = database().await;
    let path = db.url();
    let org = init(path).organization_id;
    let created: Value = serde_json::from_str(&run(
        &[
            "keys",
            "create",
            "--org",
            &org,
            "--name",
            "from cli",
            "--environment",
            "test",
            "--permission",
            "dns:read",
            "--json",
        ],
        path,
    ))
    .unwrap();
    assert!(created["key"].as_str().unwrap().starts_with("kw_test_"));
    assert_eq!(created["permissions"], serde_json::json!(["dns:read"]));
    let id = created["key_id"].as_str().unwrap();

    let listed: Value =
        serde_json::from_str(&run(&["keys", "list", "--org", &org, "--json"], path)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        !listed
            .to_string()
            .contains(created["key"].as_str().unwrap())
    );

    let rotated: Value =
        serde_json::from_str(&run(&["keys", "rotate", "--org", &org, id, "--json"], path)).unwrap();
    assert_ne!(rotated["key"], created["key"]);
    assert!(run(&["keys", "revoke", "--org", &org, id], path).contains("revoked"));
    let listed = run(&["keys", "list", "--org", &org], path);
    assert!(listed.contains("revoked"), "{listed}");

    let failure = keyward()
        .arg("--database")
        .arg(path)
        .args([
            "keys",
            "create",
            "--org",
            &org,
            "--name",
            "x",
            "--permission",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!failure.status.success());
    assert!(String::from_utf8_lossy(&failure.stderr).contains("permissions"));
}

#[test]
fn config_check_shows_the_effective_settings_without_passwords() {
    let output = keyward()
        .args(["config", "check"])
        .env(
            "KEYWARD_DATABASE_URL",
            "postgres://keyward:hunter2@db.internal/keyward",
        )
        .env("KEYWARD_KEY_PREFIX", "edns")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["key_prefix"], "edns");
    assert_eq!(value["listen"], "127.0.0.1:8080");
    assert!(!text.contains("hunter2"));
    assert_eq!(
        value["database_url"],
        "postgres://keyward:[redacted]@db.internal/keyward"
    );
}

#[tokio::test]
async fn migrate_prepares_an_empty_database_and_is_idempotent() {
    let db = database().await;
    let path = db.url();
    assert!(run(&["migrate"], path).contains("migrations applied"));
    assert!(run(&["migrate"], path).contains("migrations applied"));
    let bootstrap = init(path);
    let listed = run(
        &[
            "keys",
            "list",
            "--org",
            &bootstrap.organization_id,
            "--json",
        ],
        path,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&listed)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_serve_bootstraps_once_and_its_key_works() {
    let db = database().await;
    let path = db.url();
    let server = Server::start(path, &[], &[]);
    let output = server.output.lock().unwrap().clone();
    let key = Regex::new(r"API key:\s+(kw_live_[0-9A-Za-z]{38})")
        .unwrap()
        .captures(&output)
        .unwrap()[1]
        .to_owned();
    assert!(
        output.contains("Client ID:") && output.contains("Client secret:"),
        "{output}"
    );
    let response = client()
        .get(server.url("/v1/keys"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let password = Regex::new(r"Email:\s+admin@localhost\n\s+Password:\s+(\S{20})\n")
        .unwrap()
        .captures(&output)
        .unwrap_or_else(|| panic!("no first member in {output}"))[1]
        .to_owned();
    record_secrets([password.as_str()]);
    assert_eq!(
        dashboard_login(&server, "admin@localhost", &password).await,
        reqwest::StatusCode::SEE_OTHER,
        "the printed password logs in"
    );
    let first_output = server.stop();
    assert_eq!(
        first_output.matches(&key).count(),
        1,
        "the key is printed exactly once"
    );
    assert_eq!(first_output.matches(&password).count(), 1);

    let again = Server::start(path, &[], &[]);
    let second = again.stop();
    assert!(
        !second.contains("API key:") && !second.contains("Password:"),
        "a second start prints no secrets: {second}"
    );
}

#[tokio::test]
async fn signing_keys_rotate_publishes_a_second_key() {
    let db = database().await;
    init(db.url());
    let rotated = run(&["signing-keys", "rotate"], db.url());
    assert!(rotated.starts_with("Made signing key kw2-"), "{rotated}");
    let listed = run(&["signing-keys", "list"], db.url());
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("ES256") && l.contains("private key sealed")),
        "{listed}"
    );
}

/// Runs `serve` on `database` and expects it to stop by itself, at once, with one line on
/// standard error (no warning or error logged before it); returns that line.
fn serve_refused(database: &str) -> String {
    let output = keyward()
        .arg("--database")
        .arg(database)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "1")
        // Warnings and errors only: PostgreSQL's informational notices are not the failure.
        .env("KEYWARD_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one line, no retries or backtrace: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "it must not listen"
    );
    lines[0].to_owned()
}

#[tokio::test]
async fn serve_stops_at_once_on_a_file_that_is_not_its_database() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("notes.db");
    std::fs::write(&path, "these are notes, not a database\n".repeat(100)).unwrap();
    let line = serve_refused(path.to_str().unwrap());
    assert!(line.contains(path.to_str().unwrap()), "{line}");
    assert!(line.contains("not a usable SQLite database"), "{line}");
    assert!(line.contains("file is not a database"), "{line}");

    // A database that a newer Keyward upgraded.
    let db = database().await;
    init(db.url());
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, \
         execution_time) SELECT 9999, 'from the future', installed_on, success, checksum, \
         execution_time FROM _sqlx_migrations WHERE version = 1",
    )
    .await;
    let line = serve_refused(db.url());
    assert!(line.contains("schema is newer"), "{line}");
    assert!(line.contains("9999"), "{line}");
}

#[tokio::test]
async fn metrics_can_have_an_address_of_their_own() {
    let db = database().await;
    let admin = init(db.url()).api_key;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("keyward.toml");
    std::fs::write(&file, "metrics_listen = \"127.0.0.1:0\"\n").unwrap();
    let server = Server::start(db.url(), &["--config", file.to_str().unwrap()], &[]);
    let output = server.output.lock().unwrap().clone();
    let metrics = Regex::new(r"Metrics on (http://127\.0\.0\.1:\d+)/metrics")
        .unwrap()
        .captures(&output)
        .unwrap_or_else(|| panic!("no metrics address printed: {output}"))[1]
        .to_owned();
    let http = client();
    // A use of the API, so that there is something to count.
    let used = http
        .get(server.url("/v1/keys"))
        .header("x-api-key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 200);
    let beside = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(beside.status(), 404, "not on the API's address");
    let scraped = http.get(format!("{metrics}/metrics")).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains("keyward_http_request_duration_seconds"),
        "{text}"
    );
    let api = http.get(format!("{metrics}/v1/keys")).send().await.unwrap();
    assert_eq!(api.status(), 404, "the metrics address serves nothing else");
}

/// Runs `keyward scan` with `args` on `database`; returns its exit status and output.
fn scan(args: &[&str], database: &str, stdin: &str) -> (i32, String, String) {
    scan_with(args, database, stdin, &[])
}

/// [`scan`] with environment variables.
fn scan_with(
    args: &[&str],
    database: &str,
    stdin: &str,
    envs: &[(&str, &str)],
) -> (i32, String, String) {
    use std::io::Write;
    let mut child = keyward()
        .envs(envs.iter().copied())
        .arg("--database")
        .arg(database)
        .arg("scan")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn scan_finds_secrets_says_which_still_work_and_exits_for_a_hook() {
    let (db, other) = (database().await, database().await);
    let path = db.url();
    let bootstrap = init(path);
    let org = bootstrap.organization_id.clone();
    let foreign = init(other.url()).api_key;
    let create = |name: &str| -> Value {
        serde_json::from_str(&run(
            &["keys", "create", "--org", &org, "--name", name, "--json"],
            path,
        ))
        .unwrap()
    };
    let revoked = create("to revoke");
    run(
        &[
            "keys",
            "revoke",
            "--org",
            &org,
            revoked["key_id"].as_str().unwrap(),
        ],
        path,
    );
    let rotated = create("to rotate");
    run(
        &[
            "keys",
            "rotate",
            "--org",
            &org,
            rotated["key_id"].as_str().unwrap(),
        ],
        path,
    );
    let secret = |v: &Value| v["key"].as_str().unwrap().to_owned();
    let (live, revoked, replaced) = (
        bootstrap.api_key.clone(),
        secret(&revoked),
        secret(&rotated),
    );
    // The live key with its last character changed: the same shape, a failing checksum.
    let mut look_alike = live.clone();
    let last = look_alike.pop().unwrap();
    look_alike.push(if last == 'x' { 'y' } else { 'x' });

    let tree = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let file = tree.path().join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    write("app/config.py", format!("API_KEY = \"{live}\"\n"));
    write(
        "app/deploy/.env",
        format!("# old\nKEY={revoked}\nSECRET={}\n", bootstrap.client_secret),
    );
    write(
        "notes.md",
        format!("rotated: {replaced}\nforeign: {foreign}\n"),
    );
    write("fixtures/look_alike.txt", format!("{look_alike}\n"));
    write(".git/config", format!("{live}\n"));
    let dir = tree.path().to_str().unwrap();

    let (status, out, err) = scan(&[dir], path, "");
    assert_eq!(status, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].ends_with("app/config.py:1: api_key kw_live_…".to_owned().as_str())
            || lines[0].contains("app/config.py:1: api_key kw_live_…"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "app/deploy/.env:2: api_key kw_live_…{}",
            &revoked[revoked.len() - 4..]
        )),
        "{out}"
    );
    assert!(
        out.contains("app/deploy/.env:3: client_secret kw_cs_…"),
        "{out}"
    );
    assert!(
        !out.contains("look_alike") && !out.contains(".git"),
        "{out}"
    );
    for whole in [
        &live,
        &revoked,
        &replaced,
        &foreign,
        &bootstrap.client_secret,
    ] {
        assert!(!out.contains(whole.as_str()), "a whole secret was printed");
    }

    let (status, out, _) = scan(&["--live", "--json", dir], path, "");
    assert_eq!(status, 1);
    let found: Vec<Value> = serde_json::from_str(&out).unwrap();
    let states: Vec<(&str, &str)> = found
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["state"].as_str().unwrap()))
        .map(|(p, s)| (p.rsplit('/').next().unwrap(), s))
        .collect();
    assert_eq!(
        states,
        [
            ("config.py", "active"),
            (".env", "revoked"),
            (".env", "active"),
            // Rotated without grace: ended, and known as replaced.
            ("notes.md", "replaced"),
            ("notes.md", "unknown"),
        ]
    );
    assert_eq!(found[0]["organization_id"], org.as_str());
    assert!(found[4].get("key_id").is_none());
    assert!(!out.contains(&live));

    // Standard input, a clean file, an unreadable path.
    let (status, out, _) = scan(&["-"], path, &format!("token: {live}\n"));
    assert_eq!(
        (status, out.starts_with("-:1: api_key")),
        (1, true),
        "{out}"
    );
    let (status, out, _) = scan(&[&format!("{dir}/fixtures")], path, "");
    assert_eq!((status, out.as_str()), (0, ""));
    let (status, _, err) = scan(&[&format!("{dir}/missing")], path, "");
    assert_eq!(status, 2, "{err}");
    assert!(err.contains("missing"), "{err}");

    // The same through a running server, with a key of the organization that holds
    // keys:read: the same states, and none of another organization's.
    let server = Server::start(path, &[], &[]);
    let reader: Value = serde_json::from_str(&run(
        &[
            "keys",
            "create",
            "--org",
            &org,
            "--name",
            "scanner",
            "--permission",
            "keys:read",
            "--json",
        ],
        path,
    ))
    .unwrap();
    let reader_key = reader["key"].as_str().unwrap();
    let (status, out, err) = scan_with(
        &["--server", &server.base, "--json", dir],
        path,
        "",
        &[("KEYWARD_API_KEY", reader_key)],
    );
    assert_eq!(status, 1, "{out}{err}");
    let found: Vec<Value> = serde_json::from_str(&out).unwrap();
    let states: Vec<&str> = found.iter().map(|f| f["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        ["active", "revoked", "active", "replaced", "unknown"]
    );
    assert_eq!(
        found[0]["key_id"].as_str(),
        Some(bootstrap_key_id(path, &org).as_str())
    );
    assert!(found.iter().all(|f| f.get("organization_id").is_none()));
    let (status, out, _) = scan_with(
        &["--server", &server.base, "--json", dir],
        path,
        "",
        &[(
            "KEYWARD_API_KEY",
            format!(
                "{}{}",
                &reader_key[..reader_key.len() - 1],
                if reader_key.ends_with('x') { 'y' } else { 'x' }
            )
            .as_str(),
        )],
    );
    assert_eq!(
        status, 2,
        "a key that does not authenticate is an error: {out}"
    );
    let (status, _, err) = scan_with(&["--server", &server.base, dir], path, "", &[]);
    assert_eq!(status, 2);
    assert!(err.contains("KEYWARD_API_KEY"), "{err}");
    let keys_write_only: Value = serde_json::from_str(&run(
        &[
            "keys",
            "create",
            "--org",
            &org,
            "--name",
            "writer",
            "--permission",
            "keys:write",
            "--json",
        ],
        path,
    ))
    .unwrap();
    let (status, _, err) = scan_with(
        &["--server", &server.base, dir],
        path,
        "",
        &[("KEYWARD_API_KEY", keys_write_only["key"].as_str().unwrap())],
    );
    assert_eq!(status, 2);
    assert!(err.contains("403"), "{err}");
}

/// The id of the organization's bootstrap credential, the oldest one.
fn bootstrap_key_id(database: &str, org: &str) -> String {
    let listed: Value =
        serde_json::from_str(&run(&["keys", "list", "--org", org, "--json"], database)).unwrap();
    let all = listed.as_array().unwrap();
    all.iter()
        .find(|k| k["name"] == "Bootstrap credential")
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned()
}
