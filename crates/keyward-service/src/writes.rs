//! What every write of the service shares: version-checked writes retried when another
//! write came first, and the details of an audit event.

use keyward_store::{Conflict as StoreConflict, StoreError};
use serde_json::{Map, Value};

use crate::error::ServiceError;

/// How often a version-checked change is retried when another write came in between.
pub(crate) const WRITE_ATTEMPTS: usize = 5;

/// An audit event's details: the object of `value`.
pub(crate) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `Ok(true)` when a version-checked write went through, `Ok(false)` when another write
/// came first.
pub(crate) fn written(result: Result<(), StoreError>) -> Result<bool, ServiceError> {
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(StoreConflict::Version)) => Ok(false),
        Err(error) => Err(error.into()),
    }
}
