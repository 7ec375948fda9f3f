//! The HTTP handlers, one module per resource, and the response shapes they share.
//!
//! Handler doc comments are the OpenAPI descriptions.

pub mod audit;
pub mod authorize;
pub mod health;
pub mod ip_rules;
pub mod keys;
pub mod leaks;
pub mod oauth;
pub mod roles;
pub mod usage;
pub mod verify;
pub mod webhooks;

use crate::error::ApiError;

/// Most items in one page of a listing.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Items in a page when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// Checks a requested page size.
pub fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE_SIZE) {
        n @ 1..=MAX_PAGE_SIZE => Ok(n),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Cuts a page fetched with one extra item: the extra one only tells that more exist,
/// and the cursor is the last item shown.
pub fn split_page<T>(
    mut items: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        let cursor = items.last().map(id);
        (items, cursor)
    } else {
        (items, None)
    }
}
