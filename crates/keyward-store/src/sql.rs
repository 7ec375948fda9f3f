//! The SQL store: one implementation for SQLite and PostgreSQL through sqlx's `Any` driver.
//!
//! Every statement is written once in the SQL both dialects accept. What differs per dialect
//! stays in [`Dialect`]: how to connect, the SQLite pragmas (WAL, `synchronous=FULL` so a
//! returned write survives a crash), how a write transaction begins, which migrations
//! folder applies, and the placeholders of the batched statements whose length varies.

mod rows;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::to_millis;
use keyward_core::credential::{Credential, Organization};
use keyward_core::digest::LookupDigest;
use keyward_core::ip_rule::IpRule;
use keyward_core::member::{Member, Session};
use keyward_core::scope::CustomRole;
use keyward_core::typeid::{CredentialId, IpRuleId, OrganizationId, UserId};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Executor, Row};
use time::OffsetDateTime;

use crate::{
    AuditQuery, CredentialQuery, CredentialUse, NewSecret, RevokedToken, SecretMatch,
    SigningKeyRecord, Store, StoreError, UsageCount,
};
use rows::{CredentialRow, audit_event_from_row, credential_from_row};
use writer::{Writer, job};

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

/// `SELECT` of every credential column (aliased `c`), in the order
/// [`credential_from_row`] reads them, followed by `$rest`; built at compile time.
macro_rules! select_credentials {
    ($rest:literal) => {
        concat!(
            "SELECT c.id, c.organization_id, c.environment, c.name, c.description, \
             c.permissions, c.role, c.ip_allowlist, c.rate_limit_override, c.not_before, c.expires_at, \
             c.metadata, c.owner_id, c.status, c.prefix, c.hint, c.created_at, c.created_by, c.updated_at, \
             c.revoked_at, c.last_used_at, c.last_used_ip, c.version ",
            $rest
        )
    };
}

/// `SELECT` of `$before` (which ends in a comma, or is empty) and every member column
/// (aliased `m`) in the order `rows::member_from_row` reads them, followed by `$rest`.
macro_rules! select_members {
    ($before:literal, $rest:literal) => {
        concat!(
            "SELECT ",
            $before,
            " m.id, m.organization_id, m.email, m.password_hash, m.created_at, \
             m.password_changed_at ",
            $rest
        )
    };
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
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
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

/// Rows a batched write puts in one statement, largest first: a few thousand bound
/// parameters at most, well under both dialects' limits, and one round trip where a row
/// each cost one (about 50 µs each to SQLite's worker thread). Only these sizes are used,
/// so each batched statement is parsed once per connection and then found in its cache of
/// prepared statements; any other size would be a new text, parsed again at every flush.
const BATCH_SIZES: [usize; 4] = [200, 50, 10, 1];

/// `rows` cut into batches of [`BATCH_SIZES`], largest first.
fn batches<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = BATCH_SIZES.into_iter().find(|&size| size <= rows.len())?;
        let (batch, rest) = rows.split_at(size);
        rows = rest;
        Some(batch)
    })
}

/// `rows` tuples of `columns` placeholders: `(?, ?), (?, ?)` for SQLite, whose anonymous
/// parameters are bound by position (sqlx looks a named one up by a scan of all the
/// statement's names, for each of them), and `($1, $2), ($3, $4)` for PostgreSQL.
fn values_list(dialect: Dialect, rows: usize, columns: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|row| {
            let places: Vec<String> = (1..=columns)
                .map(|column| match dialect {
                    Dialect::Sqlite => "?".to_owned(),
                    Dialect::Postgres => format!("${}", row * columns + column),
                })
                .collect();
            format!("({})", places.join(", "))
        })
        .collect();
    tuples.join(", ")
}

/// `rows` with those of the same key merged into the first of them, in order of first
/// appearance: a batched statement may not touch the same row twice.
fn merged<'a, T: Clone, K: std::hash::Hash + Eq>(
    rows: &'a [T],
    key: impl Fn(&'a T) -> K,
    merge: impl Fn(&mut T, &T),
) -> Vec<T> {
    let mut merged: Vec<T> = Vec::with_capacity(rows.len());
    let mut seen = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        match seen.get(&key(row)) {
            Some(&i) => merge(&mut merged[i], row),
            None => {
                seen.insert(key(row), merged.len());
                merged.push(row.clone());
            }
        }
    }
    merged
}

/// Sorts sqlx errors into the store's few kinds; database text never goes further than
/// this error's own log line.
fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            constraint: "unique",
        },
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Conflict {
            constraint: "foreign_key",
        },
        sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => {
            StoreError::Unavailable(error)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(error),
        _ => StoreError::Internal(error.to_string()),
    }
}

/// SQLite's busy and locked codes, and PostgreSQL's connection, shutdown and
/// serialization classes: failures that a later retry can get past.
fn is_busy(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("5" | "6" | "517" | "261" | "57P01" | "57P02" | "57P03" | "40001" | "40P01")
    ) || code.is_some_and(|c| c.starts_with("08"))
}

async fn insert_event(conn: &mut AnyConnection, event: &AuditEvent) -> Result<(), StoreError> {
    let details = serde_json::Value::Object(event.details.clone()).to_string();
    sqlx::query(
        "INSERT INTO audit_events (id, organization_id, occurred_at, action, actor, source_ip, target_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event.id.as_str())
    .bind(event.organization_id.as_str())
    .bind(to_millis(event.occurred_at))
    .bind(event.action.as_str())
    .bind(event.actor.as_str())
    .bind(event.source_ip.map(|ip| ip.to_string()))
    .bind(event.target_id.as_deref())
    .bind(details)
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

async fn insert_secrets(
    conn: &mut AnyConnection,
    credential_id: &CredentialId,
    secrets: &[NewSecret],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for secret in secrets {
        sqlx::query(
            "INSERT INTO credential_secrets (lookup_digest, credential_id, kind, salt, salted_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(secret.digests.lookup.as_bytes().to_vec())
        .bind(credential_id.as_str())
        .bind(secret.kind.storage_name())
        .bind(secret.digests.salted.salt.to_vec())
        .bind(secret.digests.salted.hash.to_vec())
        .bind(to_millis(now))
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    }
    Ok(())
}

/// Binds the columns a credential's changes touch, as `$1`…`$15` in the order of the
/// `UPDATE` and `INSERT` statements that use it.
fn bind_mutable_columns<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    row: CredentialRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(row.name)
        .bind(row.description)
        .bind(row.permissions)
        .bind(row.role)
        .bind(row.ip_allowlist)
        .bind(row.rate_limit_override)
        .bind(row.not_before)
        .bind(row.expires_at)
        .bind(row.metadata)
        .bind(row.owner_id)
        .bind(row.status)
        .bind(row.prefix)
        .bind(row.hint)
        .bind(row.updated_at)
        .bind(row.revoked_at)
}

/// Moves the organization's change counter: nodes that cached its credentials, rules or
/// roles re-read them (see `Store::organization_change_seq`).
async fn bump_change_seq(conn: &mut AnyConnection, org: &OrganizationId) -> Result<(), StoreError> {
    sqlx::query("UPDATE organizations SET change_seq = change_seq + 1 WHERE id = $1")
        .bind(org.as_str())
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    Ok(())
}

/// The rules as a change to them was judged: each rule's id and version, sorted, so the
/// comparison does not depend on the order a caller kept them in.
fn rule_versions(rules: &[IpRule]) -> Vec<(String, i64)> {
    let mut versions: Vec<(String, i64)> = rules
        .iter()
        .map(|rule| (rule.id.as_str().to_owned(), rule.version))
        .collect();
    versions.sort_unstable();
    versions
}

/// Locks the organization for a change to its rules and checks they are still `seen`:
/// moves its change counter first (on PostgreSQL that holds the organization's row until
/// the transaction ends, so rule changes are applied one at a time and each reads what
/// the one before it committed), then compares the rules' ids and versions with those the
/// change was judged against. Another rule change since: [`StoreError::Conflict`]
/// (`"version"`); a change to a credential or a role is not one.
async fn lock_unchanged_rules(
    conn: &mut AnyConnection,
    org: &OrganizationId,
    seen: &[(String, i64)],
) -> Result<(), StoreError> {
    bump_change_seq(conn, org).await?;
    let rows = sqlx::query("SELECT id, version FROM ip_rules WHERE organization_id = $1")
        .bind(org.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?;
    let mut now = rows
        .iter()
        .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(map_error)?;
    // Sorted in Rust as `seen` is: a database's collation plays no part.
    now.sort_unstable();
    if now != seen {
        return Err(StoreError::Conflict {
            constraint: "version",
        });
    }
    Ok(())
}

/// Writes every mutable column of a credential if its version is still the one read.
async fn write_credential(
    conn: &mut AnyConnection,
    credential: &Credential,
) -> Result<(), StoreError> {
    let result = bind_mutable_columns(
        sqlx::query(
            "UPDATE credentials SET name = $1, description = $2, permissions = $3, role = $4, \
             ip_allowlist = $5, rate_limit_override = $6, not_before = $7, expires_at = $8, metadata = $9, \
             owner_id = $10, status = $11, prefix = $12, hint = $13, updated_at = $14, revoked_at = $15, \
             version = version + 1 \
             WHERE id = $16 AND organization_id = $17 AND version = $18",
        ),
        CredentialRow::from(credential),
    )
    .bind(credential.id.as_str())
    .bind(credential.organization_id.as_str())
    .bind(credential.version)
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    if result.rows_affected() == 1 {
        return bump_change_seq(conn, &credential.organization_id).await;
    }
    let exists = sqlx::query("SELECT 1 FROM credentials WHERE id = $1 AND organization_id = $2")
        .bind(credential.id.as_str())
        .bind(credential.organization_id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_error)?;
    Err(if exists.is_some() {
        StoreError::Conflict {
            constraint: "version",
        }
    } else {
        StoreError::NotFound
    })
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

    async fn insert_organization(
        &self,
        org: &Organization,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((org.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (org, event) = &*data;
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id.as_str())
                    .bind(org.name.as_str())
                    .bind(to_millis(org.created_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn organization(&self, id: &OrganizationId) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(|row| rows::organization_from_row(&row)).transpose()
    }

    async fn organization_change_seq(&self, org: &OrganizationId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT change_seq FROM organizations WHERE id = $1")
            .bind(org.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(|row| row.try_get::<i64, _>(0).map_err(map_error))
            .transpose()
            .map(|seq| seq.unwrap_or(0))
    }

    async fn organization_count(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM organizations")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        let count: i64 = row.try_get(0).map_err(map_error)?;
        Ok(count.max(0) as u64)
    }

    async fn claim_bootstrap(&self, at: OffsetDateTime) -> Result<bool, StoreError> {
        let write = job(to_millis(at), |conn, at| {
            Box::pin(async move {
                sqlx::query("INSERT INTO bootstrap_claim (id, claimed_at) VALUES (1, $1)")
                    .bind(*at)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                Ok(())
            })
        });
        match self.writer.write(write).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict {
                constraint: "unique",
            }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn insert_credential(
        &self,
        credential: &Credential,
        secrets: &[NewSecret],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (credential.clone(), secrets.to_vec(), event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (credential, secrets, event) = &*data;
                bind_mutable_columns(
                    sqlx::query(
                        "INSERT INTO credentials (name, description, permissions, role, ip_allowlist, \
                         rate_limit_override, not_before, expires_at, metadata, owner_id, status, prefix, hint, \
                         updated_at, revoked_at, id, organization_id, environment, created_at, created_by, version) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
                    ),
                    CredentialRow::from(credential),
                )
                .bind(credential.id.as_str())
                .bind(credential.organization_id.as_str())
                .bind(credential.environment.as_str())
                .bind(to_millis(credential.created_at))
                .bind(credential.created_by.as_str())
        .bind(credential.version)
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
                insert_secrets(conn, &credential.id, secrets, credential.created_at).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn credential(
        &self,
        org: &OrganizationId,
        id: &CredentialId,
    ) -> Result<Option<Credential>, StoreError> {
        let row = sqlx::query(select_credentials!(
            "FROM credentials c WHERE c.id = $1 AND c.organization_id = $2"
        ))
        .bind(id.as_str())
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|row| credential_from_row(&row)).transpose()
    }

    async fn credential_by_secret(
        &self,
        lookup: &LookupDigest,
    ) -> Result<Option<SecretMatch>, StoreError> {
        let row = sqlx::query(select_credentials!(
            ", s.kind, s.salt, s.salted_hash, s.expires_at, o.change_seq \
             FROM credential_secrets s JOIN credentials c ON c.id = s.credential_id \
             JOIN organizations o ON o.id = c.organization_id \
             WHERE s.lookup_digest = $1"
        ))
        .bind(lookup.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|row| rows::secret_match_from_row(&row)).transpose()
    }

    async fn list_credentials(
        &self,
        org: &OrganizationId,
        query: &CredentialQuery,
    ) -> Result<Vec<Credential>, StoreError> {
        let rows = sqlx::query(select_credentials!(
            "FROM credentials c WHERE c.organization_id = $1 \
             AND ($2 IS NULL OR c.environment = $2) \
             AND ($3 IS NULL OR c.owner_id = $3) \
             AND ($4 IS NULL OR c.id < $4) \
             AND ($5 IS NULL \
                  OR ($5 = 'expired' AND c.status = 'active' AND c.expires_at IS NOT NULL AND c.expires_at <= $6) \
                  OR ($5 = 'active' AND c.status = 'active' AND (c.expires_at IS NULL OR c.expires_at > $6)) \
                  OR ($5 IN ('disabled', 'revoked') AND c.status = $5)) \
             ORDER BY c.id DESC LIMIT $7"
        ))
        .bind(org.as_str())
        .bind(query.environment.map(|e| e.as_str()))
        .bind(query.owner_id.as_deref())
        .bind(query.before.as_ref().map(|id| id.as_str()))
        .bind(query.status.map(|s| s.as_str()))
        .bind(to_millis(query.now))
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn update_credential(
        &self,
        credential: &Credential,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((credential.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (credential, event) = &*data;
                write_credential(conn, credential).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn rotate_credential(
        &self,
        credential: &Credential,
        new_secrets: &[NewSecret],
        old_until: Option<OffsetDateTime>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (
            credential.clone(),
            new_secrets.to_vec(),
            old_until,
            event.clone(),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (credential, new_secrets, old_until, event) = &*data;
                write_credential(conn, credential).await?;
                match old_until {
                    None => {
                        sqlx::query("DELETE FROM credential_secrets WHERE credential_id = $1")
                            .bind(credential.id.as_str())
                            .execute(&mut *conn)
                            .await
                            .map_err(map_error)?;
                    }
                    Some(until) => {
                        sqlx::query(
                            "UPDATE credential_secrets SET expires_at = $2 \
                             WHERE credential_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                        )
                        .bind(credential.id.as_str())
                        .bind(to_millis(*until))
                        .execute(&mut *conn)
                        .await
                        .map_err(map_error)?;
                    }
                }
                insert_secrets(conn, &credential.id, new_secrets, credential.updated_at).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn record_credential_uses(&self, uses: &[CredentialUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // The newest use of each credential.
        let newest = merged(
            uses,
            |u| u.credential_id.as_str(),
            |kept, u| {
                if u.at > kept.at {
                    *kept = u.clone();
                }
            },
        );
        let write = job((self.dialect, newest), |conn, data| {
            Box::pin(async move {
                let (dialect, uses) = &*data;
                for batch in batches(uses) {
                    let sql = format!(
                        "WITH used (id, at, ip) AS (VALUES {}) \
                         UPDATE credentials SET last_used_at = used.at, last_used_ip = used.ip \
                         FROM used WHERE credentials.id = used.id \
                         AND (credentials.last_used_at IS NULL OR credentials.last_used_at < used.at)",
                        values_list(*dialect, batch.len(), 3)
                    );
                    // Only placeholders are put in: every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for u in batch {
                        query = query
                            .bind(u.credential_id.as_str())
                            .bind(to_millis(u.at))
                            .bind(u.ip.map(|ip| ip.to_string()));
                    }
                    query.execute(&mut *conn).await.map_err(map_error)?;
                }
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn ip_rules(&self, org: &OrganizationId) -> Result<Vec<IpRule>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, organization_id, ip_network, kind, description, created_at, created_by, last_matched_at, version \
             FROM ip_rules WHERE organization_id = $1 ORDER BY id",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(rows::ip_rule_from_row).collect()
    }

    async fn insert_ip_rule(
        &self,
        rule: &IpRule,
        max_rules: usize,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (
            rule.clone(),
            i64::try_from(max_rules).unwrap_or(i64::MAX),
            rule_versions(seen),
            event.clone(),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (rule, max_rules, seen, event) = &*data;
                // The organization's row stays locked, serialising concurrent inserts on
                // PostgreSQL: the count cannot be raced past the limit.
                lock_unchanged_rules(conn, &rule.organization_id, seen).await?;
                let inserted = sqlx::query(
                    "INSERT INTO ip_rules (id, organization_id, ip_network, kind, description, created_at, created_by, last_matched_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, NULL \
                     WHERE (SELECT COUNT(*) FROM ip_rules WHERE organization_id = $2) < $8",
                )
                .bind(rule.id.as_str())
                .bind(rule.organization_id.as_str())
                .bind(rule.network.to_string())
                .bind(rule.kind.as_str())
                .bind(rule.description.as_deref())
                .bind(to_millis(rule.created_at))
                .bind(rule.created_by.as_str())
                .bind(*max_rules)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if inserted.rows_affected() == 0 {
                    return Err(StoreError::Conflict {
                        constraint: "ip_rule_limit",
                    });
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn update_ip_rule(
        &self,
        rule: &IpRule,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (rule.clone(), rule_versions(seen), event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (rule, seen, event) = &*data;
                lock_unchanged_rules(conn, &rule.organization_id, seen).await?;
                let updated = sqlx::query(
                    "UPDATE ip_rules SET ip_network = $1, kind = $2, description = $3, version = version + 1 \
                     WHERE id = $4 AND organization_id = $5 AND version = $6",
                )
                .bind(rule.network.to_string())
                .bind(rule.kind.as_str())
                .bind(rule.description.as_deref())
                .bind(rule.id.as_str())
                .bind(rule.organization_id.as_str())
                .bind(rule.version)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if updated.rows_affected() == 0 {
                    let exists = sqlx::query(
                        "SELECT 1 FROM ip_rules WHERE id = $1 AND organization_id = $2",
                    )
                    .bind(rule.id.as_str())
                    .bind(rule.organization_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_error)?;
                    return Err(if exists.is_some() {
                        StoreError::Conflict {
                            constraint: "version",
                        }
                    } else {
                        StoreError::NotFound
                    });
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn delete_ip_rule(
        &self,
        org: &OrganizationId,
        id: &IpRuleId,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (org.clone(), id.clone(), rule_versions(seen), event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (org, id, seen, event) = &*data;
                lock_unchanged_rules(conn, org, seen).await?;
                let deleted =
                    sqlx::query("DELETE FROM ip_rules WHERE id = $1 AND organization_id = $2")
                        .bind(id.as_str())
                        .bind(org.as_str())
                        .execute(&mut *conn)
                        .await
                        .map_err(map_error)?;
                if deleted.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn record_rule_matches(
        &self,
        matches: &[(IpRuleId, OffsetDateTime)],
    ) -> Result<(), StoreError> {
        if matches.is_empty() {
            return Ok(());
        }
        // In id order: two nodes flushing at once then lock the same rows in the same
        // order, and neither can hold a row the other waits for while it waits in turn.
        let mut matches = matches.to_vec();
        matches.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let write = job(matches, |conn, matches| {
            Box::pin(async move {
                for (id, at) in matches.iter() {
                    sqlx::query(
                        "UPDATE ip_rules SET last_matched_at = $1 \
                         WHERE id = $2 AND (last_matched_at IS NULL OR last_matched_at < $1)",
                    )
                    .bind(to_millis(*at))
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                }
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn roles(&self, org: &OrganizationId) -> Result<Vec<CustomRole>, StoreError> {
        let rows = sqlx::query(
            "SELECT organization_id, name, description, scopes, created_at, created_by \
             FROM roles WHERE organization_id = $1",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        // Sorted here, not by ORDER BY: PostgreSQL's collation and SQLite's byte order differ.
        let mut roles: Vec<CustomRole> = rows
            .iter()
            .map(rows::role_from_row)
            .collect::<Result<_, _>>()?;
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    async fn insert_role(&self, role: &CustomRole, event: &AuditEvent) -> Result<(), StoreError> {
        let write = job((role.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (role, event) = &*data;
                sqlx::query(
                    "INSERT INTO roles (organization_id, name, description, scopes, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(role.organization_id.as_str())
                .bind(role.name.as_str())
                .bind(role.description.as_deref())
                .bind(rows::json_text(&role.scopes.to_strings()))
                .bind(to_millis(role.created_at))
                .bind(role.created_by.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                bump_change_seq(conn, &role.organization_id).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        // One row per credential, minute and outcome.
        let merged = merged(
            counts,
            |c| (c.credential_id.as_str(), c.minute, c.outcome.as_str()),
            |row, c| {
                row.count += c.count;
                row.via_query += c.via_query;
            },
        );
        let write = job((self.dialect, merged), |conn, data| {
            Box::pin(async move {
                let (dialect, counts) = &*data;
                for batch in batches(counts) {
                    let sql = format!(
                        "INSERT INTO usage_counts (credential_id, minute, outcome, count, via_query) \
                         VALUES {} \
                         ON CONFLICT (credential_id, minute, outcome) DO UPDATE SET \
                         count = usage_counts.count + excluded.count, \
                         via_query = usage_counts.via_query + excluded.via_query",
                        values_list(*dialect, batch.len(), 5)
                    );
                    // Only placeholders are put in: every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for c in batch {
                        query = query
                            .bind(c.credential_id.as_str())
                            .bind(c.minute)
                            .bind(c.outcome.as_str())
                            .bind(c.count)
                            .bind(c.via_query);
                    }
                    query.execute(&mut *conn).await.map_err(map_error)?;
                }
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn usage(
        &self,
        credential: &CredentialId,
        from: i64,
        to: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        let bucket = bucket_minutes.max(1);
        let rows = sqlx::query(
            "SELECT (minute / $1) * $1 AS bucket, outcome, CAST(SUM(count) AS BIGINT), CAST(SUM(via_query) AS BIGINT) \
             FROM usage_counts WHERE credential_id = $2 AND minute >= $3 AND minute < $4 \
             GROUP BY bucket, outcome ORDER BY bucket, outcome",
        )
        .bind(bucket)
        .bind(credential.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                Ok(UsageCount {
                    credential_id: credential.clone(),
                    minute: row.try_get(0).map_err(map_error)?,
                    outcome: row.try_get(1).map_err(map_error)?,
                    count: row.try_get(2).map_err(map_error)?,
                    via_query: row.try_get(3).map_err(map_error)?,
                })
            })
            .collect()
    }

    async fn prune_usage(&self, before: i64) -> Result<(), StoreError> {
        let write = job(before, |conn, before| {
            Box::pin(async move {
                sqlx::query("DELETE FROM usage_counts WHERE minute < $1")
                    .bind(*before)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, generation, algorithm, public_jwk, sealed_private_key, created_at, \
             activates_at, retired_at, published_until FROM signing_keys ORDER BY generation",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(rows::signing_key_from_row).collect()
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let write = job(key.clone(), |conn, key| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, generation, algorithm, public_jwk, \
                     sealed_private_key, created_at, activates_at, retired_at, published_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(key.kid.as_str())
                .bind(key.generation)
                .bind(key.algorithm.as_str())
                .bind(key.public_jwk.as_str())
                .bind(key.sealed_private_key.as_deref())
                .bind(to_millis(key.created_at))
                .bind(to_millis(key.activates_at))
                .bind(key.retired_at.map(to_millis))
                .bind(key.published_until.map(to_millis))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn retire_signing_keys(
        &self,
        below: i64,
        at: OffsetDateTime,
        published_until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let write = job(
            (below, to_millis(at), to_millis(published_until)),
            |conn, data| {
                Box::pin(async move {
                    let (below, at, until) = *data;
                    sqlx::query(
                        "UPDATE signing_keys SET sealed_private_key = NULL, retired_at = $1, \
                         published_until = $2 WHERE generation < $3 AND retired_at IS NULL",
                    )
                    .bind(at)
                    .bind(until)
                    .bind(below)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                    Ok(())
                })
            },
        );
        self.writer.write(write).await
    }

    async fn prune_oauth(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        let write = job(to_millis(now), |conn, now| {
            Box::pin(async move {
                sqlx::query("DELETE FROM signing_keys WHERE published_until < $1")
                    .bind(*now)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                    .bind(*now)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn revoke_token(
        &self,
        token: &RevokedToken,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((token.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (token, event) = &*data;
                let inserted = sqlx::query(
                    "INSERT INTO revoked_tokens (jti, organization_id, credential_id, expires_at, \
                     revoked_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(token.jti.as_str())
                .bind(token.organization_id.as_str())
                .bind(token.credential_id.as_str())
                .bind(to_millis(token.expires_at))
                .bind(to_millis(token.revoked_at))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if inserted.rows_affected() == 0 {
                    return Ok(());
                }
                bump_change_seq(conn, &token.organization_id).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.is_some())
    }

    async fn insert_member(&self, member: &Member, event: &AuditEvent) -> Result<(), StoreError> {
        let write = job((member.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (member, event) = &*data;
                sqlx::query(
                    "INSERT INTO members (id, organization_id, email, password_hash, created_at, \
                     password_changed_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(member.id.as_str())
                .bind(member.organization_id.as_str())
                .bind(member.email.as_str())
                .bind(member.password_hash.as_str())
                .bind(to_millis(member.created_at))
                .bind(to_millis(member.password_changed_at))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query(select_members!("", "FROM members m WHERE m.email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(|row| rows::member_from_row(&row, 0)).transpose()
    }

    async fn set_member_password(
        &self,
        id: &UserId,
        password_hash: &str,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (id.clone(), password_hash.to_owned(), at, event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (id, hash, at, event) = &*data;
                let changed = sqlx::query(
                    "UPDATE members SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
                )
                .bind(hash.as_str())
                .bind(to_millis(*at))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if changed.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                sqlx::query("DELETE FROM member_sessions WHERE user_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let write = job(session.clone(), |conn, session| {
            Box::pin(async move {
                sqlx::query("DELETE FROM member_sessions WHERE user_id = $1 AND expires_at <= $2")
                    .bind(session.user_id.as_str())
                    .bind(to_millis(session.created_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                sqlx::query(
                    "INSERT INTO member_sessions (digest, user_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(session.digest.as_bytes().to_vec())
                .bind(session.user_id.as_str())
                .bind(to_millis(session.created_at))
                .bind(to_millis(session.expires_at))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn session(
        &self,
        digest: &LookupDigest,
    ) -> Result<Option<(Session, Member)>, StoreError> {
        let row = sqlx::query(select_members!(
            "s.digest, s.user_id, s.created_at, s.expires_at,",
            "FROM member_sessions s JOIN members m ON m.id = s.user_id WHERE s.digest = $1"
        ))
        .bind(digest.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|row| {
            Ok((
                rows::session_from_row(&row)?,
                rows::member_from_row(&row, 4)?,
            ))
        })
        .transpose()
    }

    async fn delete_session(&self, digest: &LookupDigest) -> Result<(), StoreError> {
        let write = job(*digest, |conn, digest| {
            Box::pin(async move {
                sqlx::query("DELETE FROM member_sessions WHERE digest = $1")
                    .bind(digest.as_bytes().to_vec())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let write = job(event.clone(), |conn, event| {
            Box::pin(async move { insert_event(conn, &event).await })
        });
        self.writer.write(write).await
    }

    async fn list_audit_events(
        &self,
        org: &OrganizationId,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, organization_id, occurred_at, action, actor, source_ip, target_id, details \
             FROM audit_events WHERE organization_id = $1 \
             AND ($2 IS NULL OR action = $2) \
             AND ($3 IS NULL OR target_id = $3) \
             AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5",
        )
        .bind(org.as_str())
        .bind(query.action.as_deref())
        .bind(query.target_id.as_deref())
        .bind(query.before.as_ref().map(|id| id.as_str()))
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(audit_event_from_row).collect()
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

    #[test]
    fn batches_take_every_row_in_order_in_the_fixed_sizes() {
        for n in [0, 1, 9, 10, 199, 200, 201, 450, 1_337] {
            let rows: Vec<usize> = (0..n).collect();
            let cut: Vec<&[usize]> = batches(&rows).collect();
            assert!(
                cut.iter().all(|batch| BATCH_SIZES.contains(&batch.len())),
                "{n}"
            );
            assert_eq!(cut.concat(), rows, "{n}");
        }
        let sizes: Vec<usize> = batches(&[0; 461]).map(<[_]>::len).collect();
        assert_eq!(sizes, [200, 200, 50, 10, 1]);
    }

    #[test]
    fn placeholders_are_positional_in_sqlite_and_numbered_in_postgres() {
        assert_eq!(values_list(Dialect::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(values_list(Dialect::Postgres, 2, 2), "($1, $2), ($3, $4)");
    }
}
