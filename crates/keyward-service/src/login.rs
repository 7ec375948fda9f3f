//! The bounds on dashboard logins: failed ones counted per source address, and how many
//! password checks run at once.

use keyward_engine::throttle::{Throttle, ThrottleConfig};
use tokio::sync::Semaphore;

/// What stands before a password check: the per-address failure count and a bound on
/// checks running at once.
#[derive(Debug)]
pub struct LoginThrottle {
    pub(crate) throttle: Throttle,
    pub(crate) checks: Semaphore,
}

impl LoginThrottle {
    /// Password checks that may run at once.
    pub const PARALLEL: usize = 4;

    /// A throttle of failed logins with this configuration.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            throttle: Throttle::new(config),
            checks: Semaphore::new(Self::PARALLEL),
        }
    }
}
