//! sqlx's errors sorted into the store's few kinds; database text goes no further than the
//! error's own log line.

use crate::error::{Conflict, StoreError};

/// Sorts sqlx errors into the store's few kinds; database text never goes further than
/// this error's own log line.
pub(super) fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(Conflict::Unique)
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict(Conflict::ForeignKey)
        }
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
