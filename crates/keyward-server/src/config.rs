//! [`ServerConfig`]: the settings of a Keyward server, one part's settings each: the
//! verification engine's, the management service's, admission's, and the HTTP server's
//! own.

use std::time::Duration;

use keyward_engine::EngineConfig;
use keyward_gate::GateConfig;
use keyward_service::ServiceConfig;

use crate::listen::ConnectionLimits;
use crate::original::AuthorizeConfig;

/// The settings of a Keyward server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The verification engine's: the scope catalogue, caches, brute-force and rate limits,
    /// usage writing, and which access tokens are accepted (issuer, audience, leeway).
    pub engine: EngineConfig,
    /// The management service's: the key prefix, IP rule bounds, dashboard login limits,
    /// and how access tokens are signed.
    pub service: ServiceConfig,
    /// Admission's: where credentials may be presented, and which proxies are believed.
    pub gate: GateConfig,
    /// Bounds on connections: how long a request's head may take, how many are open.
    pub connections: ConnectionLimits,
    /// Where `/metrics` is served: on an address of its own, which the network can keep
    /// apart from the API's, or (`None`) beside the API.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Longest time a request may take, reading its body included.
    pub request_timeout: Duration,
    /// How `/v1/authorize` reads the original request and which scopes it requires.
    pub authorize: AuthorizeConfig,
    /// How long clients may cache the JWKS.
    pub jwks_max_age: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            service: ServiceConfig::default(),
            gate: GateConfig::default(),
            connections: ConnectionLimits::default(),
            metrics_listen: None,
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            authorize: AuthorizeConfig::default(),
            jwks_max_age: Duration::from_secs(300),
        }
    }
}
