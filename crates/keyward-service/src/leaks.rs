//! Leak reports: what a report of secrets found in public does
//! ([`Credentials::report_exposed`](crate::credentials::Credentials::report_exposed)), and
//! the deployment's settings for it.

use std::net::IpAddr;

use keyward_engine::throttle::ThrottleConfig;
use time::Duration;

/// What a leak report does to a live key it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeakAction {
    /// Revoke it (the default): a key in public is a key anyone may use.
    #[default]
    Revoke,
    /// Disable it, reversibly.
    Disable,
    /// Only record the report (`key.exposed` in the audit log).
    Flag,
}

/// How leak reports are handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakConfig {
    /// What a report does to a live key.
    pub action: LeakAction,
    /// How many reports an address may send: each report counts as a failure would.
    pub reports: ThrottleConfig,
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            action: LeakAction::Revoke,
            reports: ThrottleConfig {
                threshold: 10,
                window: Duration::minutes(1),
                block: Duration::minutes(1),
                max_block: Duration::hours(1),
            },
        }
    }
}

/// A report of secrets found in public, by anyone.
#[derive(Debug, Clone, Copy)]
pub struct LeakReport<'r> {
    /// The secrets, as found.
    pub secrets: &'r [String],
    /// Where they were found (a URL, say), for the audit log.
    pub source: &'r str,
    /// The reporter's address.
    pub reporter_ip: Option<IpAddr>,
}

/// Most secrets one report may name.
pub const MAX_REPORTED: usize = 100;
/// Longest source of a report, in characters (a URL, a description of a place): one line.
pub const SOURCE_MAX_CHARS: usize = 1_000;
