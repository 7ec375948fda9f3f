//! Configuration, layered: built-in defaults, then the TOML file, then `KEYWARD_*`
//! environment variables, then command-line flags (clap merges the last two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderName;
use keyward_core::credential::parse_ip_network;
use keyward_core::ip_rule::RulePolicy;
use keyward_core::rate_limit::RateLimit;
use keyward_core::scope::ScopeCatalogue;
use keyward_core::secret::KeyPrefix;
use keyward_core::webhook::TargetPolicy;
use keyward_engine::throttle::ThrottleConfig;
use keyward_engine::tokens::{SigningAlgorithm, TokenRules};
use keyward_engine::{EngineConfig, RateLimits};
use keyward_gate::GateConfig;
use keyward_server::ServerConfig;
use keyward_server::listen::ConnectionLimits;
use keyward_server::original::{AuthorizeConfig, RouteScopes, RouteScopesConfig, Unmatched};
use keyward_service::ServiceConfig;
use keyward_service::leaks::{LeakAction, LeakConfig, SigningKeys};
use keyward_service::signing::SigningConfig;
use keyward_service::webhooks::WebhookConfig;
use serde::{Deserialize, Serialize};

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "keyward.db";
/// The default master key file, in the working directory.
pub const DEFAULT_MASTER_KEY_FILE: &str = "keyward-master.key";
/// The longest `[usage] retention_days`: a hundred years.
const MAX_RETENTION_DAYS: u64 = 36_500;

/// The settings a TOML file may hold; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Where `/metrics` is served: on an address of its own, or (unset) beside the API.
    pub metrics_listen: Option<SocketAddr>,
    /// SQLite path or `postgres://…` URL.
    pub database_url: Option<String>,
    /// Prefix of issued secrets.
    pub key_prefix: Option<String>,
    /// Accept `?api_key=`.
    pub allow_query_api_key: Option<bool>,
    /// Largest request body, in bytes.
    pub body_limit_bytes: Option<usize>,
    /// Longest request, in seconds.
    pub request_timeout_seconds: Option<u64>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges).
    pub trusted_proxies: Option<Vec<String>>,
    /// How long a checked credential stays cached, in milliseconds: the longest another
    /// node's change goes unseen.
    pub cache_ttl_ms: Option<u64>,
    /// Bounds on organization IP rules.
    pub ip_rules: Option<IpRulesConfig>,
    /// Brute-force protection.
    pub brute_force: Option<BruteForceConfig>,
    /// Leak reports.
    pub leaks: Option<LeaksFileConfig>,
    /// Webhook delivery.
    pub webhooks: Option<WebhooksFileConfig>,
    /// The resources of your API that scopes name.
    pub scopes: Option<ScopesFileConfig>,
    /// `/v1/authorize` settings.
    pub authorize: Option<AuthorizeFileConfig>,
    /// OAuth client credentials.
    pub oauth: Option<OAuthFileConfig>,
    /// Default per-credential rate limits.
    pub rate_limits: Option<RateLimitsFileConfig>,
    /// Usage counting: how often it is written, how long it is kept.
    pub usage: Option<UsageFileConfig>,
    /// Bounds on connections: slow and idle clients, and how many are open.
    pub connections: Option<ConnectionsFileConfig>,
}

/// `[connections]`: how long a request's head may take, and how many connections are open.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFileConfig {
    /// Milliseconds a connection has to send a request's head, counted from when it is
    /// accepted or its previous response was sent (100 to 300,000): idle connections close
    /// after the same time.
    pub header_timeout_ms: Option<u64>,
    /// Most connections open at once (1 to 1,000,000); further clients wait to be accepted.
    pub max_connections: Option<usize>,
    /// Most header fields of a request (8 to 1,000).
    pub max_headers: Option<usize>,
    /// Most bytes of a request's header names and values (1,024 to 1,048,576).
    pub max_header_bytes: Option<usize>,
    /// Longest request target (256 to 65,536 bytes).
    pub max_uri_bytes: Option<usize>,
}

/// `[connections] name`'s value if it is in `range`, or `default` when unset.
fn within(
    name: &str,
    value: Option<usize>,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
) -> anyhow::Result<usize> {
    match value {
        Some(n) if range.contains(&n) => Ok(n),
        Some(_) => bail!(
            "connections.{name} must be {} to {}",
            range.start(),
            range.end()
        ),
        None => Ok(default),
    }
}

/// `[usage]`: how often counts and last uses are written, and how long counts are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageFileConfig {
    /// Milliseconds between writes of recorded usage (100 to 5,000): what a node killed
    /// without warning may lose.
    pub flush_interval_ms: Option<u64>,
    /// Days per-minute counts are kept before they are pruned (1 to 36,500).
    pub retention_days: Option<u64>,
}

/// `[rate_limits]`: the default limit of each environment's credentials.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFileConfig {
    /// Requests per second of a `live` credential.
    pub live_per_second: Option<u32>,
    /// Requests at once of a `live` credential.
    pub live_burst: Option<u32>,
    /// Requests per second of a `test` credential.
    pub test_per_second: Option<u32>,
    /// Requests at once of a `test` credential.
    pub test_burst: Option<u32>,
    /// Management API requests per second of one organization, all its keys together.
    pub management_per_second: Option<u32>,
    /// Management API requests at once of one organization.
    pub management_burst: Option<u32>,
}

/// `[oauth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthFileConfig {
    /// The `iss` of tokens and metadata: the deployment's public URL.
    pub issuer: Option<String>,
    /// The `aud` of tokens.
    pub audience: Option<String>,
    /// Access token lifetime, in seconds.
    pub token_lifetime_seconds: Option<u64>,
    /// `ES256`, `EdDSA` or `RS256`.
    pub algorithm: Option<String>,
    /// Days between scheduled signing-key rotations.
    pub rotation_days: Option<u64>,
    /// Seconds a new key is published before it signs.
    pub publish_lead_seconds: Option<u64>,
    /// Seconds clients may cache the JWKS.
    pub jwks_max_age_seconds: Option<u64>,
    /// Tolerated clock skew on `exp`, in seconds.
    pub leeway_seconds: Option<u64>,
    /// Seconds between re-reads of the signing keys.
    pub key_refresh_seconds: Option<u64>,
    /// The file holding the master key that seals signing keys (created if missing).
    pub master_key_file: Option<PathBuf>,
}

/// `[ip_rules]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRulesConfig {
    /// Most rules per organization.
    pub max_rules: Option<usize>,
    /// Shortest accepted IPv4 prefix.
    pub ipv4_min_prefix: Option<u8>,
    /// Shortest accepted IPv6 prefix.
    pub ipv6_min_prefix: Option<u8>,
}

/// `[brute_force]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForceConfig {
    /// Failures within the window that block an address.
    pub threshold: Option<u32>,
    /// The window, in seconds.
    pub window_seconds: Option<i64>,
    /// The first block, in seconds; each further one doubles.
    pub block_seconds: Option<i64>,
    /// The longest block, in seconds.
    pub max_block_seconds: Option<i64>,
}

/// `[leaks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaksFileConfig {
    /// `revoke` (default), `disable` or `flag`: what a report does to a live key.
    pub action: Option<String>,
    /// Reports an address may send a minute.
    pub reports_per_minute: Option<u32>,
    /// GitHub's secret scanning public keys, as GitHub publishes them (JSON): with it,
    /// `POST /v1/leaks/github` takes GitHub's signed reports.
    pub github_keys_file: Option<PathBuf>,
}

/// `[scopes]`: the resources of the API Keyward guards, each with `read`, `write` and
/// `delete`, and any further actions; Keyward's own resources are added to them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopesFileConfig {
    /// Resource names, e.g. `["orders", "customers"]`.
    pub resources: Vec<String>,
    /// Further actions by resource, e.g. `{ orders = ["refund"] }`.
    #[serde(default)]
    pub actions: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[webhooks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFileConfig {
    /// Allow targets on loopback, private and other internal addresses (default false).
    pub allow_private_targets: Option<bool>,
    /// Allow `http://` targets (default false: `https://` only).
    pub allow_http: Option<bool>,
    /// Seconds between attempts, one per retry (default 5, 300, 1800, 7200, 18000,
    /// 36000, 36000).
    pub retry_schedule_seconds: Option<Vec<u64>>,
    /// Seconds an attempt may take (default 15).
    pub timeout_seconds: Option<u64>,
    /// Attempts in flight to one endpoint at once, per node (default 4).
    pub max_in_flight_per_endpoint: Option<usize>,
    /// Seconds the previous secret still signs after a rotation (default 86400).
    pub secret_overlap_seconds: Option<u64>,
    /// Days of failing attempts after which an endpoint is disabled (default 5).
    pub disable_after_days: Option<u64>,
    /// Seconds between two `ip_rule.blocked` of one rule, at least (default 3600).
    pub blocked_interval_seconds: Option<u64>,
    /// Seconds between the scans for expiring keys and blocked requests (default 60).
    pub scan_interval_seconds: Option<u64>,
    /// Milliseconds between looks for due messages when none are in hand (default 1000).
    pub poll_interval_ms: Option<u64>,
    /// Days delivered and failed messages are kept (default 30).
    pub retention_days: Option<u64>,
}

/// `[authorize]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeFileConfig {
    /// The header the proxy names the original URI in.
    pub uri_header: Option<String>,
    /// The header the proxy names the original method in.
    pub method_header: Option<String>,
    /// `deny` (default) or `allow`: what a request no route matches gets.
    pub unmatched: Option<String>,
    /// `[[authorize.routes]]`: scopes required per method and path.
    #[serde(default)]
    pub routes: Vec<RouteScopesConfig>,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings given by flags or environment variables; they win over the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// SQLite file path or postgres:// URL [default: keyward.db]
    #[arg(
        long = "database",
        env = "KEYWARD_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// A file holding the database URL (for URLs with a password)
    #[arg(long, env = "KEYWARD_DATABASE_URL_FILE", global = true)]
    pub database_url_file: Option<PathBuf>,
    /// Prefix of issued secrets: 2–8 lowercase letters or digits [default: kw]
    #[arg(long, env = "KEYWARD_KEY_PREFIX", global = true)]
    pub key_prefix: Option<String>,
    /// Accept API keys in the `api_key` query parameter (a server setting: given to
    /// `serve` and `config check` as [`ServerOverrides`]).
    #[arg(skip)]
    pub allow_query_api_key: Option<bool>,
    /// Log format [default: text]
    #[arg(long, env = "KEYWARD_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Proxies whose X-Forwarded-For is believed (a server setting, as above).
    #[arg(skip)]
    pub trusted_proxies: Option<Vec<String>>,
}

/// Settings only the server uses, given by flags or environment variables to `serve` (and
/// `config check`, to show them); other commands neither show nor read them.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServerOverrides {
    /// Accept API keys in the `api_key` query parameter
    #[arg(long, env = "KEYWARD_ALLOW_QUERY_API_KEY")]
    pub allow_query_api_key: Option<bool>,
    /// Proxies whose X-Forwarded-For is believed, comma-separated addresses or CIDR ranges
    #[arg(long, env = "KEYWARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
}

impl Overrides {
    /// These overrides with the server's.
    pub fn with_server(self, server: ServerOverrides) -> Self {
        Self {
            allow_query_api_key: server.allow_query_api_key,
            trusted_proxies: server.trusted_proxies,
            ..self
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// SQLite path or PostgreSQL URL.
    pub database_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// The server's settings.
    pub server: ServerConfig,
    /// Where the master key is kept (`KEYWARD_MASTER_KEY` wins over it).
    pub master_key_file: PathBuf,
    /// Whether the OAuth issuer (and audience) were left to default to the listening
    /// address, so `serve` sets them from the address it actually bound.
    pub issuer_from_listen: bool,
}

impl Config {
    /// Merges defaults, the file at `path` (if any), and the overrides.
    pub fn load(
        path: Option<&Path>,
        overrides: &Overrides,
        listen: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading the configuration file {}", path.display())
                })?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("reading the configuration file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let database_url = match (&overrides.database_url, &overrides.database_url_file) {
            (Some(url), _) => url.clone(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the database URL from {}", file.display()))?
                .trim()
                .to_owned(),
            (None, None) => file
                .database_url
                .clone()
                .unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
        };
        let prefix_text = overrides
            .key_prefix
            .clone()
            .or(file.key_prefix)
            .unwrap_or_else(|| "kw".to_owned());
        let Ok(key_prefix) = KeyPrefix::new(&prefix_text) else {
            bail!("key_prefix `{prefix_text}` must be 2 to 8 lowercase letters or digits");
        };
        let defaults = ServerConfig::default();
        let (engine_defaults, service_defaults) = (&defaults.engine, &defaults.service);
        let catalogue = match file.scopes {
            Some(scopes) => ScopeCatalogue::for_api(
                scopes.resources,
                scopes.actions.into_iter().flat_map(|(resource, actions)| {
                    actions.into_iter().map(move |a| (resource.clone(), a))
                }),
            )
            .map_err(|e| anyhow::anyhow!("scopes: {e}"))?,
            None => engine_defaults.catalogue.clone(),
        };
        let trusted_proxies = overrides
            .trusted_proxies
            .clone()
            .or(file.trusted_proxies)
            .unwrap_or_default()
            .iter()
            .map(|text| {
                parse_ip_network(text.trim())
                    .with_context(|| format!("trusted proxy `{text}` is not an address or range"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rules = file.ip_rules.unwrap_or_default();
        let default_rules = &service_defaults.rule_policy;
        let rule_policy = RulePolicy {
            max_rules: rules.max_rules.unwrap_or(default_rules.max_rules),
            ipv4_prefixes: rules
                .ipv4_min_prefix
                .unwrap_or(*default_rules.ipv4_prefixes.start())..=32,
            ipv6_prefixes: rules
                .ipv6_min_prefix
                .unwrap_or(*default_rules.ipv6_prefixes.start())..=128,
        };
        if *rule_policy.ipv4_prefixes.start() > 32 || *rule_policy.ipv6_prefixes.start() > 128 {
            bail!("ip_rules: a minimum prefix is longer than the address");
        }
        let brute = file.brute_force.unwrap_or_default();
        let seconds = time::Duration::seconds;
        let default_throttle = &engine_defaults.throttle;
        let throttle = ThrottleConfig {
            threshold: brute.threshold.unwrap_or(default_throttle.threshold).max(1),
            window: brute
                .window_seconds
                .map(seconds)
                .unwrap_or(default_throttle.window),
            block: brute
                .block_seconds
                .map(seconds)
                .unwrap_or(default_throttle.block),
            max_block: brute
                .max_block_seconds
                .map(seconds)
                .unwrap_or(default_throttle.max_block),
        };
        let leaks_file = file.leaks.unwrap_or_default();
        let default_leaks = LeakConfig::default();
        let leaks = LeakConfig {
            action: match leaks_file.action.as_deref() {
                None | Some("revoke") => LeakAction::Revoke,
                Some("disable") => LeakAction::Disable,
                Some("flag") => LeakAction::Flag,
                Some(other) => bail!("leaks.action must be revoke, disable or flag, not {other}"),
            },
            reports: ThrottleConfig {
                threshold: match leaks_file.reports_per_minute {
                    None => default_leaks.reports.threshold,
                    Some(n @ 1..) => n,
                    Some(0) => bail!("leaks.reports_per_minute must be at least 1"),
                },
                ..default_leaks.reports
            },
            github_keys: match &leaks_file.github_keys_file {
                None => None,
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("leaks.github_keys_file {}", path.display()))?;
                    let keys = SigningKeys::from_json(&text).map_err(|why| {
                        anyhow::anyhow!("leaks.github_keys_file {}: {why}", path.display())
                    })?;
                    Some(std::sync::Arc::new(keys))
                }
            },
        };
        let webhooks = webhook_config(file.webhooks.unwrap_or_default())?;
        let authorize_file = file.authorize.unwrap_or_default();
        let header = |name: &Option<String>, default: &HeaderName| -> anyhow::Result<HeaderName> {
            match name {
                Some(text) => HeaderName::try_from(text.to_ascii_lowercase())
                    .with_context(|| format!("authorize: `{text}` is not a header name")),
                None => Ok(default.clone()),
            }
        };
        let authorize = AuthorizeConfig {
            uri_header: header(&authorize_file.uri_header, &defaults.authorize.uri_header)?,
            method_header: header(
                &authorize_file.method_header,
                &defaults.authorize.method_header,
            )?,
            routes: authorize_file
                .routes
                .iter()
                .map(|route| RouteScopes::from_config(route, &catalogue))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| anyhow::anyhow!("authorize.routes: {e}"))?,
            unmatched: match authorize_file.unmatched.as_deref() {
                None | Some("deny") => Unmatched::Deny,
                Some("allow") => Unmatched::Allow,
                Some(other) => bail!("authorize.unmatched must be deny or allow, not `{other}`"),
            },
        };
        let listen = match listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse()?,
        };
        let oauth_file = file.oauth.unwrap_or_default();
        let issuer_from_listen = oauth_file.issuer.is_none() && oauth_file.audience.is_none();
        let issuer = oauth_file
            .issuer
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        let seconds = |value: Option<u64>, default: Duration| {
            value.map(Duration::from_secs).unwrap_or(default)
        };
        let rules_defaults = &engine_defaults.tokens;
        let tokens = TokenRules {
            audience: oauth_file.audience.unwrap_or_else(|| issuer.clone()),
            issuer,
            leeway: seconds(oauth_file.leeway_seconds, rules_defaults.leeway),
            key_refresh_interval: seconds(
                oauth_file.key_refresh_seconds,
                rules_defaults.key_refresh_interval,
            ),
        };
        let signing_defaults = &service_defaults.signing;
        let signing = SigningConfig {
            token_lifetime: seconds(
                oauth_file.token_lifetime_seconds,
                signing_defaults.token_lifetime,
            ),
            algorithm: match oauth_file.algorithm.as_deref() {
                None => signing_defaults.algorithm,
                Some(name) => SigningAlgorithm::parse(name).with_context(|| {
                    format!("oauth.algorithm must be ES256, EdDSA or RS256, not `{name}`")
                })?,
            },
            rotation_interval: seconds(
                oauth_file.rotation_days.map(|d| d * 86_400),
                signing_defaults.rotation_interval,
            ),
            publish_lead: seconds(
                oauth_file.publish_lead_seconds,
                signing_defaults.publish_lead,
            ),
            master_key: signing_defaults.master_key.clone(),
        };
        let jwks_max_age = seconds(oauth_file.jwks_max_age_seconds, defaults.jwks_max_age);
        if signing.publish_lead < jwks_max_age + tokens.key_refresh_interval {
            bail!(
                "oauth.publish_lead_seconds must be at least jwks_max_age_seconds + key_refresh_seconds, so every cache knows a key before it signs"
            );
        }
        let limits_file = file.rate_limits.unwrap_or_default();
        let limit = |per_second: Option<u32>, burst: Option<u32>, default: RateLimit| {
            let limit = RateLimit {
                per_second: per_second.unwrap_or(default.per_second),
                burst: burst.unwrap_or(default.burst),
            };
            if limit.per_second == 0 || limit.burst == 0 {
                bail!("rate_limits: rates and bursts must be at least 1");
            }
            Ok(limit)
        };
        let default_limits = &engine_defaults.rate_limits;
        let rate_limits = RateLimits {
            live: limit(
                limits_file.live_per_second,
                limits_file.live_burst,
                default_limits.live,
            )?,
            test: limit(
                limits_file.test_per_second,
                limits_file.test_burst,
                default_limits.test,
            )?,
            management: limit(
                limits_file.management_per_second,
                limits_file.management_burst,
                default_limits.management,
            )?,
        };
        let usage_file = file.usage.unwrap_or_default();
        let usage_flush_interval = usage_file
            .flush_interval_ms
            .map(Duration::from_millis)
            .unwrap_or(engine_defaults.usage_flush_interval);
        if !(Duration::from_millis(100)..=Duration::from_secs(5)).contains(&usage_flush_interval) {
            bail!("usage.flush_interval_ms must be 100 to 5000: last uses are visible within 5 s");
        }
        let usage_retention = match usage_file.retention_days {
            Some(days @ 1..=MAX_RETENTION_DAYS) => Duration::from_secs(days * 86_400),
            Some(_) => bail!("usage.retention_days must be 1 to {MAX_RETENTION_DAYS}"),
            None => engine_defaults.usage_retention,
        };
        let connections_file = file.connections.unwrap_or_default();
        let connection_defaults = &defaults.connections;
        let connections = ConnectionLimits {
            header_timeout: match connections_file.header_timeout_ms {
                Some(ms @ 100..=300_000) => Duration::from_millis(ms),
                Some(_) => bail!("connections.header_timeout_ms must be 100 to 300000"),
                None => connection_defaults.header_timeout,
            },
            max_connections: within(
                "max_connections",
                connections_file.max_connections,
                1..=1_000_000,
                connection_defaults.max_connections,
            )?,
            max_headers: within(
                "max_headers",
                connections_file.max_headers,
                8..=1_000,
                connection_defaults.max_headers,
            )?,
            max_header_bytes: within(
                "max_header_bytes",
                connections_file.max_header_bytes,
                1_024..=1_048_576,
                connection_defaults.max_header_bytes,
            )?,
            max_uri_bytes: within(
                "max_uri_bytes",
                connections_file.max_uri_bytes,
                256..=65_536,
                connection_defaults.max_uri_bytes,
            )?,
        };
        let master_key_file = oauth_file
            .master_key_file
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MASTER_KEY_FILE));
        Ok(Self {
            master_key_file,
            issuer_from_listen,
            listen,
            database_url,
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            server: ServerConfig {
                engine: EngineConfig {
                    cache_ttl: file
                        .cache_ttl_ms
                        .map(Duration::from_millis)
                        .unwrap_or(engine_defaults.cache_ttl),
                    throttle,
                    usage_flush_interval,
                    usage_retention,
                    rate_limits,
                    tokens,
                    catalogue,
                    ..defaults.engine.clone()
                },
                service: ServiceConfig {
                    key_prefix,
                    rule_policy,
                    signing,
                    leaks,
                    webhooks,
                    ..defaults.service.clone()
                },
                gate: GateConfig {
                    allow_query_api_key: overrides
                        .allow_query_api_key
                        .or(file.allow_query_api_key)
                        .unwrap_or(false),
                    trusted_proxies,
                },
                connections,
                metrics_listen: file.metrics_listen,
                body_limit_bytes: file.body_limit_bytes.unwrap_or(defaults.body_limit_bytes),
                request_timeout: file
                    .request_timeout_seconds
                    .map(Duration::from_secs)
                    .unwrap_or(defaults.request_timeout),
                authorize,
                jwks_max_age,
            },
        })
    }

    /// The configuration as `keyward config check` prints it, secrets redacted.
    pub fn redacted(&self) -> serde_json::Value {
        let (server, engine, service, gate) = (
            &self.server,
            &self.server.engine,
            &self.server.service,
            &self.server.gate,
        );
        let (rules, signing, limits) = (&engine.tokens, &service.signing, &engine.rate_limits);
        serde_json::json!({
            "listen": self.listen.to_string(),
            "metrics_listen": server.metrics_listen.map(|a| a.to_string()),
            "database_url": redact_url(&self.database_url),
            "key_prefix": service.key_prefix.as_str(),
            "allow_query_api_key": gate.allow_query_api_key,
            "body_limit_bytes": server.body_limit_bytes,
            "request_timeout_seconds": server.request_timeout.as_secs(),
            "log_format": self.log_format,
            "trusted_proxies": gate.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "cache_ttl_ms": engine.cache_ttl.as_millis() as u64,
            "scopes": engine
                .catalogue
                .resources()
                .map(|(resource, actions)| (resource.to_owned(), serde_json::json!(actions)))
                .collect::<serde_json::Map<_, _>>(),
            "ip_rules": {
                "max_rules": service.rule_policy.max_rules,
                "ipv4_min_prefix": service.rule_policy.ipv4_prefixes.start(),
                "ipv6_min_prefix": service.rule_policy.ipv6_prefixes.start(),
            },
            "brute_force": {
                "threshold": engine.throttle.threshold,
                "window_seconds": engine.throttle.window.whole_seconds(),
                "block_seconds": engine.throttle.block.whole_seconds(),
                "max_block_seconds": engine.throttle.max_block.whole_seconds(),
            },
            "leaks": {
                "action": match service.leaks.action {
                    LeakAction::Revoke => "revoke",
                    LeakAction::Disable => "disable",
                    LeakAction::Flag => "flag",
                },
                "reports_per_minute": service.leaks.reports.threshold,
                "github_keys": service.leaks.github_keys.is_some(),
            },
            "webhooks": {
                "allow_private_targets": service.webhooks.targets.allow_private,
                "allow_http": service.webhooks.targets.allow_http,
                "retry_schedule_seconds": service.webhooks.retry_schedule.iter().map(Duration::as_secs).collect::<Vec<_>>(),
                "timeout_seconds": service.webhooks.timeout.as_secs(),
                "max_in_flight_per_endpoint": service.webhooks.max_in_flight_per_endpoint,
                "secret_overlap_seconds": service.webhooks.secret_overlap.as_secs(),
                "disable_after_days": service.webhooks.disable_after.as_secs() / 86_400,
                "blocked_interval_seconds": service.webhooks.blocked_interval.as_secs(),
                "scan_interval_seconds": service.webhooks.scan_interval.as_secs(),
                "poll_interval_ms": service.webhooks.poll_interval.as_millis() as u64,
                "retention_days": service.webhooks.retention.as_secs() / 86_400,
            },
            "authorize": {
                "uri_header": server.authorize.uri_header.as_str(),
                "method_header": server.authorize.method_header.as_str(),
                "unmatched": match server.authorize.unmatched { Unmatched::Deny => "deny", Unmatched::Allow => "allow" },
                "routes": server.authorize.routes.iter().map(|r| serde_json::json!({
                    "method": r.method.as_ref().map(ToString::to_string),
                    "path": r.path,
                    "scopes": r.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            },
            "rate_limits": {
                "live_per_second": limits.live.per_second,
                "live_burst": limits.live.burst,
                "test_per_second": limits.test.per_second,
                "test_burst": limits.test.burst,
                "management_per_second": limits.management.per_second,
                "management_burst": limits.management.burst,
            },
            "connections": {
                "header_timeout_ms": server.connections.header_timeout.as_millis() as u64,
                "max_connections": server.connections.max_connections,
                "max_headers": server.connections.max_headers,
                "max_header_bytes": server.connections.max_header_bytes,
                "max_uri_bytes": server.connections.max_uri_bytes,
            },
            "usage": {
                "flush_interval_ms": engine.usage_flush_interval.as_millis() as u64,
                "retention_days": engine.usage_retention.as_secs() / 86_400,
            },
            "oauth": {
                "issuer": rules.issuer,
                "audience": rules.audience,
                "token_lifetime_seconds": signing.token_lifetime.as_secs(),
                "algorithm": signing.algorithm.name(),
                "rotation_days": signing.rotation_interval.as_secs() / 86_400,
                "publish_lead_seconds": signing.publish_lead.as_secs(),
                "jwks_max_age_seconds": server.jwks_max_age.as_secs(),
                "leeway_seconds": rules.leeway.as_secs(),
                "key_refresh_seconds": rules.key_refresh_interval.as_secs(),
                "master_key_file": self.master_key_file.display().to_string(),
            },
        })
    }
}

/// Hides the password of a database URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

/// `[webhooks]` over the defaults; a zero where it would stop delivery is refused.
fn webhook_config(file: WebhooksFileConfig) -> anyhow::Result<WebhookConfig> {
    let defaults = WebhookConfig::default();
    let positive = |name: &str, value: Option<u64>, default: Duration, unit: Duration| match value {
        None => Ok(default),
        Some(0) => bail!("webhooks.{name} must be at least 1"),
        Some(n) => Ok(unit.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))),
    };
    let second = Duration::from_secs(1);
    let day = Duration::from_secs(86_400);
    Ok(WebhookConfig {
        targets: TargetPolicy {
            allow_private: file.allow_private_targets.unwrap_or(false),
            allow_http: file.allow_http.unwrap_or(false),
        },
        retry_schedule: match file.retry_schedule_seconds {
            None => defaults.retry_schedule,
            Some(waits) if waits.len() > 20 => {
                bail!("webhooks.retry_schedule_seconds: at most 20 retries")
            }
            Some(waits) => waits.into_iter().map(Duration::from_secs).collect(),
        },
        timeout: positive(
            "timeout_seconds",
            file.timeout_seconds,
            defaults.timeout,
            second,
        )?,
        max_in_flight_per_endpoint: match file.max_in_flight_per_endpoint {
            None => defaults.max_in_flight_per_endpoint,
            Some(0) => bail!("webhooks.max_in_flight_per_endpoint must be at least 1"),
            Some(n) => n,
        },
        secret_overlap: file
            .secret_overlap_seconds
            .map_or(defaults.secret_overlap, Duration::from_secs),
        disable_after: positive(
            "disable_after_days",
            file.disable_after_days,
            defaults.disable_after,
            day,
        )?,
        blocked_interval: positive(
            "blocked_interval_seconds",
            file.blocked_interval_seconds,
            defaults.blocked_interval,
            second,
        )?,
        scan_interval: positive(
            "scan_interval_seconds",
            file.scan_interval_seconds,
            defaults.scan_interval,
            second,
        )?,
        poll_interval: positive(
            "poll_interval_ms",
            file.poll_interval_ms,
            defaults.poll_interval,
            Duration::from_millis(1),
        )?,
        retention: positive(
            "retention_days",
            file.retention_days,
            defaults.retention,
            day,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration a file holding `text` gives.
    fn load(text: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), &Overrides::default(), None)
    }

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://k:s3cret@db:5432/k"),
            "postgres://k:[redacted]@db:5432/k"
        );
        assert_eq!(redact_url("postgres://k@db/k"), "postgres://k@db/k");
        assert_eq!(redact_url("keyward.db"), "keyward.db");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(
            &path,
            "database_url = \"from-file.db\"\nkey_prefix = \"edns\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), &Overrides::default(), None).unwrap();
        assert_eq!(config.database_url, "from-file.db");
        assert_eq!(config.server.service.key_prefix.as_str(), "edns");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        let overrides = Overrides {
            database_url: Some("flag.db".into()),
            ..Default::default()
        };
        let config = Config::load(
            Some(&path),
            &overrides,
            Some("127.0.0.1:9".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(config.database_url, "flag.db");
        assert_eq!(config.listen.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn the_example_file_lists_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keyward.example.toml");
        let example = Config::load(Some(&path), &Overrides::default(), None).unwrap();
        let defaults = Config::load(None, &Overrides::default(), None).unwrap();
        assert_eq!(example.redacted(), defaults.redacted());
    }

    #[test]
    fn webhook_settings_are_read_and_a_zero_that_would_stop_delivery_is_refused() {
        let config = load(
            "[webhooks]\nallow_private_targets = true\nretry_schedule_seconds = [1, 2]\n\
             timeout_seconds = 3\npoll_interval_ms = 50\n",
        )
        .unwrap();
        let webhooks = &config.server.service.webhooks;
        assert!(webhooks.targets.allow_private && !webhooks.targets.allow_http);
        assert_eq!(
            webhooks.retry_schedule,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(webhooks.timeout, Duration::from_secs(3));
        assert_eq!(webhooks.poll_interval, Duration::from_millis(50));
        for refused in [
            "[webhooks]\ntimeout_seconds = 0\n",
            "[webhooks]\nmax_in_flight_per_endpoint = 0\n",
            "[webhooks]\nscan_interval_seconds = 0\n",
            "[webhooks]\nallow_privat_targets = true\n",
        ] {
            assert!(load(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_scope_catalogue_is_the_apis_own_resources_and_keywards() {
        let config = load(
            "[scopes]\nresources = [\"orders\", \"customers\"]\nactions = { orders = [\"refund\"] }\n\
             [authorize]\nroutes = [{ path = \"/orders/**\", scopes = [\"orders:read\"] }]\n",
        )
        .unwrap();
        let catalogue = &config.server.engine.catalogue;
        for scope in [
            "orders:refund",
            "customers:write",
            "keys:read",
            "webhooks:*",
        ] {
            assert!(catalogue.parse(scope).is_ok(), "{scope}");
        }
        assert!(catalogue.parse("dns:read").is_err());
        assert_eq!(
            config.redacted()["scopes"]["orders"],
            serde_json::json!(["read", "write", "delete", "refund"])
        );
        for (refused, says) in [
            ("[scopes]\nresources = [\"Orders\"]\n", "Orders"),
            ("[scopes]\nresources = [\"keys\"]\n", "Keyward's own"),
            ("[scopes]\nresources = []\n", "at least one"),
            (
                "[scopes]\nresources = [\"orders\"]\nactions = { invoices = [\"send\"] }\n",
                "invoices",
            ),
            // Routes are checked against the catalogue the file names.
            (
                "[scopes]\nresources = [\"orders\"]\n\
                 [authorize]\nroutes = [{ path = \"/dns/**\", scopes = [\"dns:read\"] }]\n",
                "dns:read",
            ),
        ] {
            let error = format!("{:#}", load(refused).unwrap_err());
            assert!(error.contains(says), "{refused}: {error}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_prefixes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, "databse_url = \"typo.db\"\n").unwrap();
        assert!(Config::load(Some(&path), &Overrides::default(), None).is_err());
        let overrides = Overrides {
            key_prefix: Some("BAD".into()),
            ..Default::default()
        };
        assert!(Config::load(None, &overrides, None).is_err());
    }

    #[test]
    fn usage_settings_are_read_and_bounded() {
        let config = load("[usage]\nflush_interval_ms = 250\nretention_days = 7\n").unwrap();
        assert_eq!(
            config.server.engine.usage_flush_interval,
            Duration::from_millis(250)
        );
        assert_eq!(
            config.server.engine.usage_retention,
            Duration::from_secs(7 * 86_400)
        );
        for (text, interval, days) in [
            ("flush_interval_ms = 100\nretention_days = 1", 100, 1),
            (
                "flush_interval_ms = 5000\nretention_days = 36500",
                5_000,
                36_500,
            ),
        ] {
            let config = load(&format!("[usage]\n{text}\n")).unwrap();
            assert_eq!(
                config.server.engine.usage_flush_interval,
                Duration::from_millis(interval)
            );
            assert_eq!(
                config.server.engine.usage_retention,
                Duration::from_secs(days * 86_400)
            );
        }
        for bad in [
            "[usage]\nflush_interval_ms = 99\n",
            "[usage]\nflush_interval_ms = 5001\n",
            "[usage]\nretention_days = 0\n",
            "[usage]\nretention_days = 36501\n",
            "[usage]\nretention_days = 18446744073709551615\n",
            "[usage]\nretention_hours = 1\n",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_bounds_are_read_and_bounded() {
        let defaults = load("").unwrap().server.connections;
        assert_eq!(defaults.header_timeout, Duration::from_secs(5));
        assert_eq!(defaults.max_connections, 1_000);
        let config = load("[connections]\nheader_timeout_ms = 250\nmax_connections = 3\n").unwrap();
        assert_eq!(
            config.server.connections.header_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(config.server.connections.max_connections, 3);
        for bad in [
            "[connections]\nheader_timeout_ms = 99\n",
            "[connections]\nheader_timeout_ms = 300001\n",
            "[connections]\nmax_connections = 0\n",
            "[connections]\nmax_connections = 1000001\n",
            "[connections]\nmax_headers = 7\n",
            "[connections]\nmax_header_bytes = 2000000\n",
            "[connections]\nmax_uri_bytes = 100\n",
            "[connections]\nidle_timeout_ms = 1000\n",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
    }
}
