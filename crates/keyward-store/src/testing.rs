//! Test databases for every test suite of the workspace (feature `testing`).
//!
//! `KEYWARD_TEST_DATABASE` picks the backend of suites that run on one: `sqlite` (default)
//! or `postgres`. Each [`TestDatabase`] is fresh — a temporary SQLite file, or a new
//! PostgreSQL database on the server at `KEYWARD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) — and is deleted when dropped.
//!
//! A test that needs PostgreSQL runs when the server answers, is skipped with a `SKIPPED`
//! line that names it when it does not, and fails instead when
//! `KEYWARD_TEST_REQUIRE_SERVICES=1`. Naming PostgreSQL in `KEYWARD_TEST_DATABASE` asks for
//! it: without it those suites fail rather than run on SQLite.
//!
//! With `KEYWARD_TEST_KEEP=DIR`, the suites leave in `DIR` what a secret could leak into,
//! for one scan after the whole run (`.ci/secret_scan.py`): every test database as it was
//! when dropped (`sqlite/`: the SQLite file and its write-ahead log; `postgres/`: a
//! `pg_dump`), the logs of the servers they ran (`logs/`, through [`keep_log`]), and every
//! secret the tests were shown (`secrets/`, through [`record_secrets`] and
//! [`record_secrets_shown`]).

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::sql::Dialect;

/// The default administrative URL of the test PostgreSQL server.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, deleted on drop.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    dialect: Dialect,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Directory(#[expect(dead_code, reason = "held to be deleted on drop")] tempfile::TempDir),
    PostgresDatabase { admin_url: String, name: String },
}

impl TestDatabase {
    /// A database of the backend `KEYWARD_TEST_DATABASE` names. Naming PostgreSQL asks for
    /// it: when it is not reachable the test fails, saying so, rather than run on SQLite
    /// under a name that says PostgreSQL.
    pub async fn from_env() -> Self {
        match std::env::var("KEYWARD_TEST_DATABASE").as_deref() {
            Ok("postgres") | Ok("postgresql") => match Self::connect_postgres().await {
                Ok(database) => database,
                Err(why) => panic!(
                    "KEYWARD_TEST_DATABASE=postgres, but PostgreSQL is not reachable ({why}); \
                     unset it to run these tests on SQLite"
                ),
            },
            Ok("sqlite") | Ok("") | Err(_) => Self::sqlite(),
            Ok(other) => panic!("KEYWARD_TEST_DATABASE must be sqlite or postgres, not {other}"),
        }
    }

    /// A temporary SQLite file.
    pub fn sqlite() -> Self {
        let dir =
            tempfile::tempdir().unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        let path: PathBuf = dir.path().join("keyward.db");
        Self {
            url: path.to_string_lossy().into_owned(),
            dialect: Dialect::Sqlite,
            cleanup: Cleanup::Directory(dir),
        }
    }

    /// A new database on the test PostgreSQL server; `None` when it is not reachable and
    /// not required.
    pub async fn postgres() -> Option<Self> {
        match Self::connect_postgres().await {
            Ok(database) => Some(database),
            Err(why) => {
                skip_or_fail("PostgreSQL", &why);
                None
            }
        }
    }

    /// A new database on the test PostgreSQL server, or why there is none.
    async fn connect_postgres() -> Result<Self, String> {
        let admin_url = postgres_admin_url();
        let admin = admin_pool(&admin_url)
            .await
            .map_err(|error| format!("{admin_url}: {error}"))?;
        let name = format!("keyward_test_{}", uuid_suffix());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        admin.close().await;
        let url = replace_database(&admin_url, &name);
        Ok(Self {
            url,
            dialect: Dialect::Postgres,
            cleanup: Cleanup::PostgresDatabase { admin_url, name },
        })
    }

    /// The database's URL (a SQLite path or a `postgres://` URL), as `--database` takes it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend it is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Runs `statement` on the database: for a test that needs a state the service never
    /// makes (a schema from a newer version, say).
    pub async fn execute(&self, statement: &'static str) {
        let pool = admin_pool(&crate::sql::database_url(&self.url))
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url));
        pool.execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        pool.close().await;
    }

    /// Everything the database holds, as bytes to search for leaked secrets: the SQLite
    /// file and its write-ahead log, or every row of every PostgreSQL table as JSON text.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match self.dialect {
            Dialect::Sqlite => {
                let mut bytes = std::fs::read(&self.url).unwrap_or_default();
                bytes.extend(std::fs::read(format!("{}-wal", self.url)).unwrap_or_default());
                assert!(
                    !bytes.is_empty(),
                    "the SQLite file {} is empty or missing",
                    self.url
                );
                bytes
            }
            Dialect::Postgres => {
                let pool = admin_pool(&self.url)
                    .await
                    .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url));
                let tables: Vec<String> = sqlx::query_scalar::<_, String>(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("listing tables: {e}"));
                let mut bytes = Vec::new();
                for table in tables {
                    let statement = format!("SELECT row_to_json(t)::text FROM \"{table}\" t");
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                        .fetch_all(&pool)
                        .await
                        .unwrap_or_else(|e| panic!("reading {table}: {e}"));
                    for row in rows {
                        bytes.extend(row.into_bytes());
                    }
                }
                pool.close().await;
                bytes
            }
        }
    }
}

impl TestDatabase {
    /// Leaves the database as it is now in the keep directory, if there is one: the SQLite
    /// file and its write-ahead log as they are on disk, or a `pg_dump`.
    fn keep(&self) {
        let folder = match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        };
        let Some(dir) = kept_under(folder) else {
            return;
        };
        let name = format!("{}-{}", std::process::id(), uuid_suffix());
        match self.dialect {
            Dialect::Sqlite => {
                for suffix in ["", "-wal"] {
                    let from = format!("{}{suffix}", self.url);
                    if std::path::Path::new(&from).exists() {
                        let to = dir.join(format!("{name}.db{suffix}"));
                        std::fs::copy(&from, &to)
                            .unwrap_or_else(|e| panic!("keeping {from} as {}: {e}", to.display()));
                    }
                }
            }
            Dialect::Postgres => {
                let to = dir.join(format!("{name}.sql"));
                let status = std::process::Command::new("pg_dump")
                    .arg("--no-owner")
                    .arg("--file")
                    .arg(&to)
                    .arg(&self.url)
                    .status()
                    .unwrap_or_else(|e| panic!("running pg_dump (KEYWARD_TEST_KEEP): {e}"));
                assert!(status.success(), "pg_dump of {} failed: {status}", self.url);
            }
        }
    }
}

/// The folder `KEYWARD_TEST_KEEP` names, with `sub` made below it; `None` when unset.
fn kept_under(sub: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("KEYWARD_TEST_KEEP")?).join(sub);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating {} (KEYWARD_TEST_KEEP): {e}", dir.display()));
    Some(dir)
}

/// Appends `secrets` to the list of secrets the tests were shown, when
/// `KEYWARD_TEST_KEEP` is set: the scan after the run looks for each of them.
pub fn record_secrets<'s>(secrets: impl IntoIterator<Item = &'s str>) {
    use std::io::Write;
    let Some(dir) = kept_under("secrets") else {
        return;
    };
    let lines: String = secrets
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}\n"))
        .collect();
    if lines.is_empty() {
        return;
    }
    // One file per process, appended to in one write per call: the tests of a binary run
    // on several threads.
    let path = dir.join(format!("{}.txt", std::process::id()));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(lines.as_bytes()))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Records every secret that `text` (an answer a test was given, the output of a command)
/// shows: API keys and client secrets (well-formed, checksum included) and access tokens.
pub fn record_secrets_shown(text: &str) {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let found: Vec<&str> = text
        .split(|c: char| !is_token_char(c))
        .map(|word| word.trim_end_matches(['.', '-']))
        .filter(|word| {
            keyward_core::secret::parse_secret(word).is_ok()
                || (word.starts_with("eyJ") && word.matches('.').count() == 2)
        })
        .collect();
    record_secrets(found);
}

/// Leaves `text`, the log of a server a test ran (what it wrote to standard error), in the
/// keep directory when `KEYWARD_TEST_KEEP` is set.
pub fn keep_log(name: &str, text: &str) {
    if let Some(dir) = kept_under("logs") {
        let path = dir.join(format!(
            "{name}-{}-{}.log",
            std::process::id(),
            uuid_suffix()
        ));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.keep();
        if let Cleanup::PostgresDatabase { admin_url, name } = &self.cleanup {
            let (admin_url, database) = (admin_url.clone(), name.clone());
            // Drop runs inside a test's runtime, which must not block: drop the database
            // from a thread with a runtime of its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let admin = admin_pool(&admin_url).await.ok()?;
                    let statement = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
                    admin.execute(sqlx::AssertSqlSafe(statement)).await.ok()?;
                    admin.close().await;
                    Some(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("warning: could not drop the test database {name}");
            }
        }
    }
}

/// How long a stretch of a secret the leak scans look for: shorter than any secret's random
/// part, long enough that no other text holds it by chance.
pub const LEAK_WINDOW: usize = 16;

/// The first of `secrets` that `haystack` holds any [`LEAK_WINDOW`] characters of, with
/// the stretch found: a whole secret, or a part of it cut anywhere. An access token is
/// looked for by its signature, the part no other text shares.
pub fn find_leak<'s>(haystack: &[u8], secrets: &'s [String]) -> Option<(&'s str, String)> {
    let mut windows = std::collections::HashMap::new();
    for secret in secrets {
        let secret_part = match secret.matches('.').count() {
            2 => secret.rsplit('.').next().unwrap_or(secret),
            _ => secret.as_str(),
        };
        for window in secret_part.as_bytes().windows(LEAK_WINDOW) {
            windows.entry(window).or_insert(secret.as_str());
        }
    }
    haystack.windows(LEAK_WINDOW).find_map(|window| {
        windows
            .get(window)
            .map(|secret| (*secret, String::from_utf8_lossy(window).into_owned()))
    })
}

/// Whether tests must fail, not skip, when a service they need is missing.
pub fn services_required() -> bool {
    std::env::var("KEYWARD_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Says that the running test is skipped for want of `service`, or panics when services
/// are required.
///
/// The line goes straight to standard error, past the test harness's capture (which keeps
/// a passing test's output to itself), so a skipped test that the harness counts as `ok`
/// still shows as `SKIPPED` in the run's output, named.
pub fn skip_or_fail(service: &str, why: &str) {
    if services_required() {
        panic!("{service} is required (KEYWARD_TEST_REQUIRE_SERVICES=1) but not reachable: {why}");
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let line = format!("SKIPPED {test}: needs {service}, which is not reachable: {why}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// The administrative URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

async fn admin_pool(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let options = AnyConnectOptions::from_str(url)?;
    AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect_with(options)
        .await
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

fn uuid_suffix() -> String {
    let mut bytes = [0u8; 8];
    keyward_core::secret::fill_random(&mut bytes);
    keyward_core::digest::to_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_in_a_url() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
