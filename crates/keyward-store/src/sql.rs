//! The SQL store: one implementation for SQLite and PostgreSQL through sqlx's `Any` driver.
//!
//! Every statement is written once in the SQL both dialects accept. What differs per dialect
//! stays in [`Dialect`]: how to connect, the SQLite pragmas (WAL, `synchronous=FULL` so a
//! returned write survives a crash), how a write transaction begins, which migrations
//! folder applies, and the placeholders of the batched statements whose length varies.
//!
//! # Layout
//! One module per aggregate, each implementing its trait: `organizations` (organizations,
//! IP rules and roles), `credentials` (credentials and their secrets), `usage`, `oauth`
//! (signing keys and revoked tokens), `members` (members and sessions), `audit`, and
//! `webhooks` (endpoints, the outbox, and the notices of the scheduled scans).
//! `rows` reads rows into domain values; `writer` runs write transactions (group commits
//! on SQLite).

mod audit;
mod credentials;
mod errors;
mod members;
mod oauth;
mod organizations;
mod rows;
mod usage;
mod webhooks;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use keyward_core::typeid::OrganizationId;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Executor};

use crate::error::StoreError;
use crate::traits::Store;
use errors::map_error;
use writer::Writer;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which SQL database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An embedded SQLite file (WAL).
    Sqlite,
    /// A PostgreSQL server shared by several Keyward nodes.
    Postgres,
}

impl Dialect {
    fn migrator(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// SQLite must take the write lock at `BEGIN`: a deferred transaction that reads and
    /// then writes can deadlock with another writer, which `busy_timeout` cannot resolve.
    fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }
}

/// Turns a `--database` value into a URL: `postgres://…` and `sqlite:…` stay as they are; a
/// plain path names a SQLite file, created if missing.
pub fn database_url(value: &str) -> String {
    if value.starts_with("postgres://")
        || value.starts_with("postgresql://")
        || value.starts_with("sqlite:")
    {
        value.to_owned()
    } else {
        format!("sqlite://{value}?mode=rwc")
    }
}

/// The store on a SQL database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// Reads.
    pool: AnyPool,
    /// Runs write transactions: group commits on one SQLite connection, or directly on
    /// PostgreSQL.
    writer: Writer,
    dialect: Dialect,
}

impl SqlStore {
    /// Connects to `url` (see [`database_url`]) without migrating.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let url = database_url(url);
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        let options =
            AnyConnectOptions::from_str(&url).map_err(|e| StoreError::Internal(e.to_string()))?;
        match dialect {
            Dialect::Sqlite => {
                // One connection first: a file that is not a SQLite database, or cannot be
                // opened, is reported at once, where the pools would retry it until their
                // timeout.
                probe_sqlite(&options).await?;
                // Readers in parallel; writers one at a time, queued in the pool: SQLite
                // allows one writer, and waiting in sqlx's queue is fair and prompt where
                // SQLite's busy handler sleeps and retries.
                let pool = sqlite_pool(&options, 8).await?;
                let writer = Writer::queued(sqlite_pool(&options, 1).await?, dialect.begin_write());
                Ok(Self {
                    pool,
                    writer,
                    dialect,
                })
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(3))
                    .connect_with(options)
                    .await
                    .map_err(map_error)?;
                Ok(Self {
                    writer: Writer::direct(pool.clone(), dialect.begin_write()),
                    pool,
                    dialect,
                })
            }
        }
    }

    /// Applies the dialect's pending migrations. On PostgreSQL sqlx holds an advisory lock
    /// meanwhile, so nodes starting together migrate once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.dialect
            .migrator()
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::VersionMissing(version) => {
                    StoreError::Internal(format!(
                        "its schema is newer than this version of Keyward (it has migration \
                         {version}, unknown here): run the version that upgraded it, or a \
                         newer one"
                    ))
                }
                other => StoreError::Internal(format!("migration failed: {other}")),
            })
    }

    /// Connects and migrates.
    ///
    /// Several processes may open one database at once. PostgreSQL migrations take an
    /// advisory lock; SQLite has none, so the processes opening one SQLite file take turns
    /// through an exclusive lock on a file beside it (`{file}-migrate.lock`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let _turn = match sqlite_file(&database_url(url)) {
            Some(path) => Some(lock_beside(&path).await?),
            None => None,
        };
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// The database this store talks to.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file of a `sqlite://` URL; none for PostgreSQL or an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(':')).then(|| path.into())
}

/// Waits for an exclusive lock on `{path}-migrate.lock`, held until the file is dropped.
async fn lock_beside(path: &std::path::Path) -> Result<std::fs::File, StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push("-migrate.lock");
    let lock_path = std::path::PathBuf::from(name);
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(|e| StoreError::Internal(format!("waiting for the migration lock: {e}")))?
    .map_err(|e: std::io::Error| StoreError::Internal(format!("taking the migration lock: {e}")))
}

/// Opens one connection to a SQLite database and reads its schema, so that a file that is
/// not a database fails now, with SQLite's own words.
async fn probe_sqlite(options: &AnyConnectOptions) -> Result<(), StoreError> {
    use sqlx::Connection;
    let unusable = |e: sqlx::Error| {
        let why = e
            .as_database_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned());
        StoreError::Internal(format!("not a usable SQLite database: {why}"))
    };
    let mut connection = AnyConnection::connect_with(options)
        .await
        .map_err(unusable)?;
    connection
        .execute("SELECT count(*) FROM sqlite_master")
        .await
        .map_err(unusable)?;
    connection.close().await.map_err(unusable)
}

/// A SQLite pool in WAL mode with `synchronous=FULL`: a committed write is on disk before
/// the commit returns.
async fn sqlite_pool(options: &AnyConnectOptions, connections: u32) -> Result<AnyPool, StoreError> {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await
        .map_err(map_error)
}

/// Moves the organization's change counter: nodes that cached its credentials, rules or
/// roles re-read them (see `Store::organization_change_seq`).
/// `text` with the wildcards of LIKE (`%`, `_`) and the escape character itself escaped by
/// `\`, for a pattern used with `ESCAPE '\'`: the text then matches only itself.
pub(super) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

pub(super) async fn bump_change_seq(
    conn: &mut AnyConnection,
    org: &OrganizationId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE organizations SET change_seq = change_seq + 1 WHERE id = $1")
        .bind(org.as_str())
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_a_sqlite_url_is_found() {
        assert_eq!(
            sqlite_file("sqlite://keyward.db?mode=rwc"),
            Some("keyward.db".into())
        );
        assert_eq!(sqlite_file("sqlite:///tmp/k.db"), Some("/tmp/k.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[test]
    fn plain_paths_become_sqlite_urls() {
        assert_eq!(database_url("keyward.db"), "sqlite://keyward.db?mode=rwc");
        assert_eq!(database_url("/tmp/k.db"), "sqlite:///tmp/k.db?mode=rwc");
        assert_eq!(
            database_url("postgres://localhost/test"),
            "postgres://localhost/test"
        );
        assert_eq!(database_url("sqlite::memory:"), "sqlite::memory:");
    }
}
