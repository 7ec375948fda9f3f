//! What the verification path records, written in batches: last uses, rule matches and
//! per-minute counts.

use async_trait::async_trait;
use keyward_core::clock::to_millis;
use keyward_core::typeid::{CredentialId, OrganizationId};
use sqlx::Row;

use super::errors::map_error;
use super::writer::job;
use super::{Dialect, SqlStore};
use crate::error::StoreError;
use crate::records::{CredentialUse, RuleMatch, UsageCount};
use crate::traits::UsageStore;

/// Rows a batched write puts in one statement, largest first: a few thousand bound
/// parameters at most, well under both dialects' limits, and one round trip where a row
/// each cost one. Only these sizes are used,
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

#[async_trait]
impl UsageStore for SqlStore {
    async fn record_old_secret_uses(&self, uses: &[CredentialUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // Rare (a client behind on a rotation): one statement each.
        let write = job(uses.to_vec(), |conn, uses| {
            Box::pin(async move {
                for u in uses.iter() {
                    sqlx::query(
                        "UPDATE credentials SET old_secret_used_at = $2, old_secret_used_ip = $3 \
                         WHERE id = $1 AND (old_secret_used_at IS NULL OR old_secret_used_at < $2)",
                    )
                    .bind(u.credential_id.as_str())
                    .bind(to_millis(u.at))
                    .bind(u.ip.map(|ip| ip.to_string()))
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                }
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn old_secret_use(
        &self,
        id: &CredentialId,
    ) -> Result<Option<(time::OffsetDateTime, Option<std::net::IpAddr>)>, StoreError> {
        let row = sqlx::query(
            "SELECT old_secret_used_at, old_secret_used_ip FROM credentials WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let at: Option<i64> = row.try_get(0).map_err(map_error)?;
        let ip: Option<String> = row.try_get(1).map_err(map_error)?;
        Ok(at.map(|at| {
            (
                keyward_core::clock::from_millis(at),
                ip.and_then(|ip| ip.parse().ok()),
            )
        }))
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

    async fn record_rule_matches(&self, matches: &[RuleMatch]) -> Result<(), StoreError> {
        if matches.is_empty() {
            return Ok(());
        }
        // In id order: two nodes flushing at once then lock the same rows in the same
        // order, and neither can hold a row the other waits for while it waits in turn.
        let mut matches = matches.to_vec();
        matches.sort_unstable_by(|a, b| a.rule.as_str().cmp(b.rule.as_str()));
        let write = job(matches, |conn, matches| {
            Box::pin(async move {
                for found in matches.iter() {
                    sqlx::query(
                        "UPDATE ip_rules SET \
                         last_matched_at = CASE WHEN last_matched_at IS NULL OR last_matched_at < $1 \
                           THEN $1 ELSE last_matched_at END, \
                         last_blocked_at = CASE WHEN $3 IS NOT NULL \
                           AND (last_blocked_at IS NULL OR last_blocked_at < $3) \
                           THEN $3 ELSE last_blocked_at END \
                         WHERE id = $2",
                    )
                    .bind(to_millis(found.matched_at))
                    .bind(found.rule.as_str())
                    .bind(found.blocked_at.map(to_millis))
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                }
                Ok(())
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

    async fn organization_usage(
        &self,
        org: &OrganizationId,
        from: i64,
        to: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        let bucket = bucket_minutes.max(1);
        let rows = sqlx::query(
            "SELECT (u.minute / $1) * $1 AS bucket, u.outcome, CAST(SUM(u.count) AS BIGINT), \
             CAST(SUM(u.via_query) AS BIGINT), u.credential_id \
             FROM usage_counts u JOIN credentials c ON c.id = u.credential_id \
             WHERE c.organization_id = $2 AND u.minute >= $3 AND u.minute < $4 \
             GROUP BY bucket, u.outcome, u.credential_id ORDER BY bucket, u.outcome",
        )
        .bind(bucket)
        .bind(org.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                let credential: String = row.try_get(4).map_err(map_error)?;
                Ok(UsageCount {
                    credential_id: CredentialId::parse(&credential).map_err(|_| {
                        StoreError::Internal("a usage count's credential id".into())
                    })?,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
