//! The verification path shared by every way of use: `/v1/keys/verify`, `/v1/authorize`,
//! the tower layer, and the management API's own authentication.
//!
//! A check parses the presented secret first (a typo or a made-up key never reaches the
//! store), then finds it in a bounded in-memory cache keyed by its lookup digest — with
//! negative entries for unknown digests — or in the store, confirms the salted hash in
//! constant time, and runs `keyward_core::verify::decide` with the organization's IP rules.
//!
//! Every change to an organization's credentials, IP rules or roles moves its change
//! counter in the store. A cached credential is used while the counter has not moved past
//! the value it was read with, and the counter (with the rules and roles) is re-read every
//! `cache_ttl` (800 ms by default), which bounds how long another node's revoke, disable or
//! change can go unseen here — without re-reading every credential in use. On this node
//! every such change removes the credential's entries at once. Nothing is written to the database per request: uses
//! are recorded in memory and flushed in batches (see [`crate::usage`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::clock::{Clock, from_millis};
use keyward_core::credential::{Credential, Environment};
use keyward_core::digest::LookupDigest;
use keyward_core::ip_rule::{IpRule, evaluate};
use keyward_core::rate_limit::RateDecision;
use keyward_core::scope::{Scope, ScopeSet, builtin_role};
use keyward_core::secret::{SecretKind, parse_secret};
use keyward_core::typeid::{CredentialId, OrganizationId};
use keyward_core::verify::{Outcome, Requirements, decide};
use keyward_store::{Store, StoreError};
use time::{Duration, OffsetDateTime};

use crate::cache::TtlCache;
use crate::metrics::VerificationMetrics;
use crate::oauth::keys::KeyRing;
use axum::http::HeaderValue;

use crate::oauth::token::{AccessTokenClaims, looks_like_jwt};
use crate::state::ServerConfig;
use crate::throttle::Throttle;
use crate::usage::{Activity, Request, UsageRecorder};

/// Who a valid credential is: what the API behind Keyward learns about its caller.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The credential.
    pub credential: Credential,
    /// Its permissions together with its role's scopes.
    pub scopes: ScopeSet,
    /// The scopes as one space-separated text, formatted once per cache fill.
    scopes_text: String,
    /// The identity as header values (key id, organization, environment, scopes, owner),
    /// made once per cache fill: an answer clones them without allocating.
    header_values: IdentityHeaderValues,
    /// The access token's claims, when the credential was presented as one.
    pub token: Option<AccessTokenClaims>,
}

/// An identity's header values; `None` for a value a header cannot carry.
#[derive(Debug, Clone)]
pub struct IdentityHeaderValues {
    /// The credential id.
    pub key_id: Option<HeaderValue>,
    /// The organization id.
    pub organization: Option<HeaderValue>,
    /// `live` or `test`.
    pub environment: HeaderValue,
    /// The scopes, space-separated.
    pub scopes: Option<HeaderValue>,
    /// The end customer's id, when the credential has one.
    pub owner: Option<HeaderValue>,
}

impl Identity {
    /// An identity of `credential` holding `scopes`.
    pub fn new(credential: Credential, scopes: ScopeSet) -> Self {
        let scopes_text = scopes.to_strings().join(" ");
        let value = |text: &str| HeaderValue::from_str(text).ok();
        let header_values = IdentityHeaderValues {
            key_id: value(credential.id.as_str()),
            organization: value(credential.organization_id.as_str()),
            environment: HeaderValue::from_static(credential.environment.as_str()),
            scopes: value(&scopes_text),
            owner: credential.settings.owner_id.as_deref().and_then(value),
        };
        Self {
            credential,
            scopes,
            scopes_text,
            header_values,
            token: None,
        }
    }

    /// The identity as header values.
    pub fn header_values(&self) -> &IdentityHeaderValues {
        &self.header_values
    }

    /// The scopes, space-separated (as in `X-Keyward-Scopes`).
    pub fn scopes_text(&self) -> &str {
        &self.scopes_text
    }
}

/// What a check demands beyond a live credential.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand<'a> {
    /// Scopes the credential must all hold.
    pub scopes: &'a [Scope],
    /// The environment it must belong to.
    pub environment: Option<Environment>,
    /// The organization it must belong to: another organization's key is `NOT_FOUND`.
    pub organization: Option<&'a OrganizationId>,
    /// Why the credential is checked: a use (the default), a verification endpoint's
    /// caller, or an inspection.
    pub purpose: Purpose,
}

/// Why a credential is checked, which decides what the check applies and counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Purpose {
    /// A request made with the credential: every rule applies, the request counts against
    /// its rate limit and is recorded.
    #[default]
    Use,
    /// The caller of a verification endpoint (`/v1/keys/verify`, introspection), which
    /// asks on behalf of many requests: every rule applies and the use is recorded, but
    /// it is not counted against the caller's rate limit (the verified key's is).
    Verification,
    /// A question about the credential, not a use of it (token introspection): the
    /// allowlist and IP rules are not applied, and nothing is counted or recorded.
    Inspection,
}

/// A check that passed: who the caller is, and the rate limit the request was counted
/// against (`None` for an inspection).
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The credential and its scopes.
    pub identity: Arc<Identity>,
    /// The state of the credential's rate limit after this request.
    pub rate: Option<RateDecision>,
}

/// Where the presented credential came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client {
    /// The client's address, if known.
    pub ip: Option<IpAddr>,
    /// Whether failures count against that address (brute-force protection). Off when the
    /// address was only reported by a caller, as in `/v1/keys/verify` without `client_ip`.
    pub throttled: bool,
    /// Whether the credential came in the `api_key` query parameter (marked in usage).
    pub via_query: bool,
}

/// Why a check did not pass.
#[derive(Debug)]
pub enum Denial {
    /// The decision was negative.
    Outcome(Outcome),
    /// The client's address failed too often; it may try again after this long.
    Throttled(Duration),
    /// The credential's rate limit refused the request.
    RateLimited(RateDecision),
    /// The store could not answer; the check fails closed.
    Store(StoreError),
}

/// A secret found by its digest: the identity behind it and what confirms it.
/// Held by value in the cache, so a check reads it without another pointer hop.
#[derive(Debug, Clone)]
struct Found {
    identity: Arc<Identity>,
    /// The organization's change counter when this was read.
    org_seq: i64,
    expires_at: Option<OffsetDateTime>,
    /// Whether this secret itself was revoked (an access token's `jti`).
    revoked: bool,
    /// Where this node notes the credential's uses.
    activity: Arc<Activity>,
}

/// An organization's rules and custom roles, as checks need them.
#[derive(Debug, Default)]
struct Policy {
    /// The organization's change counter, read before the rules and roles.
    seq: i64,
    rules: Vec<IpRule>,
    roles: HashMap<String, ScopeSet>,
}

/// How often old usage counts are pruned.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How many shards `Verifier::secret_generations` has.
const SECRET_SHARDS: usize = 64;

fn shard_of(digest: &LookupDigest) -> usize {
    usize::from(digest.as_bytes()[0]) % SECRET_SHARDS
}

/// Which kind of secret a check accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// An API key or an access token (`X-Api-Key`, `Authorization: Bearer`).
    Bearer,
    /// A client secret (the token endpoint's client authentication).
    ClientSecret,
}

/// Where a presented secret is confirmed.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The secrets table, rows of this kind.
    Secret(&'static str),
    /// The token's own signature.
    Token,
}

/// The verification service.
pub struct Verifier {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: Arc<ServerConfig>,
    /// Credentials by the digest of one of their secrets; kept up to
    /// `credential_cache_ttl`, checked against the organization's change counter on use.
    secrets: TtlCache<LookupDigest, Found>,
    /// Digests the store does not know, for `cache_ttl`.
    unknown: TtlCache<LookupDigest, ()>,
    /// Counts the changes forgotten on this node; a cache fill that saw it move while it
    /// read the store does not keep what it read.
    generation: AtomicU64,
    /// The same for single forgotten secrets, per shard of digests: revoking one token
    /// (which any OAuth client may do) disturbs only fills of that shard.
    secret_generations: [AtomicU64; SECRET_SHARDS],
    /// The cached digests of each credential, so a change can drop them at once.
    digests_of: DashMap<CredentialId, Vec<LookupDigest>, RandomState>,
    policies: TtlCache<OrganizationId, Arc<Policy>>,
    throttle: Throttle,
    keys: Arc<KeyRing>,
    metrics: VerificationMetrics,
    /// When usage was last written in full.
    flushed: std::sync::Mutex<Instant>,
    /// Uses and rule matches waiting to be written.
    pub usage: UsageRecorder,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("cached", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier over `store`, with empty caches.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: Arc<ServerConfig>,
        keys: Arc<KeyRing>,
    ) -> Self {
        let capacity = usize::try_from(config.cache_capacity).unwrap_or(usize::MAX);
        let secrets = TtlCache::new(config.credential_cache_ttl, capacity);
        let unknown = TtlCache::new(config.cache_ttl, capacity);
        let policies = TtlCache::new(config.cache_ttl, 100_000);
        let throttle = Throttle::new(config.throttle.clone());
        Self {
            store,
            clock,
            config,
            secrets,
            unknown,
            generation: AtomicU64::new(0),
            secret_generations: std::array::from_fn(|_| AtomicU64::new(0)),
            digests_of: DashMap::default(),
            policies,
            throttle,
            keys,
            metrics: VerificationMetrics::new(),
            flushed: std::sync::Mutex::new(Instant::now()),
            usage: UsageRecorder::default(),
        }
    }

    /// Checks a presented API key or access token for `demand`, from `client`.
    pub async fn check(
        &self,
        presented: &str,
        demand: &Demand<'_>,
        client: Client,
    ) -> Result<Admitted, Denial> {
        self.check_as(presented, Wanted::Bearer, demand, client)
            .await
    }

    /// Authenticates an OAuth client: `client_secret` must be a live client secret of the
    /// organization `client_id`, usable from `client`. Every failure counts against the
    /// client's address.
    pub async fn check_client(
        &self,
        client_id: &str,
        client_secret: &str,
        client: Client,
    ) -> Result<Admitted, Denial> {
        let Ok(organization) = OrganizationId::parse(client_id) else {
            if let Some(ip) = client.ip.filter(|_| client.throttled) {
                self.throttle.record_failure(ip, self.clock.now());
            }
            return Err(Denial::Outcome(Outcome::NotFound));
        };
        let demand = Demand {
            organization: Some(&organization),
            ..Demand::default()
        };
        self.check_as(client_secret, Wanted::ClientSecret, &demand, client)
            .await
    }

    /// Runs a check and counts its outcome in the metrics.
    async fn check_as(
        &self,
        presented: &str,
        wanted: Wanted,
        demand: &Demand<'_>,
        client: Client,
    ) -> Result<Admitted, Denial> {
        let result = self.run_check(presented, wanted, demand, client).await;
        match &result {
            Ok(_) => self.metrics.verification(Outcome::Valid),
            Err(Denial::Outcome(outcome)) => self.metrics.verification(*outcome),
            Err(Denial::RateLimited(_)) => {
                self.metrics.rate_limited.increment(1);
                self.metrics.verification(Outcome::RateLimited);
            }
            Err(Denial::Throttled(_)) => self.metrics.verification(Outcome::RateLimited),
            Err(Denial::Store(_)) => self.metrics.store_error.increment(1),
        }
        result
    }

    async fn run_check(
        &self,
        presented: &str,
        wanted: Wanted,
        demand: &Demand<'_>,
        client: Client,
    ) -> Result<Admitted, Denial> {
        let now = self.clock.now();
        let counted_ip = client.ip.filter(|_| client.throttled);
        if let Some(ip) = counted_ip
            && let Some(wait) = self.throttle.blocked(ip, now)
        {
            return Err(Denial::Throttled(wait));
        }
        let (found, policy) =
            match self
                .find(presented, wanted)
                .await
                .and_then(|(found, policy)| match demand.organization {
                    Some(org) if *org != found.identity.credential.organization_id => {
                        Err(Denial::Outcome(Outcome::NotFound))
                    }
                    _ => Ok((found, policy)),
                }) {
                Ok(pair) => pair,
                Err(Denial::Outcome(outcome)) => {
                    if let Some(ip) = counted_ip {
                        self.throttle.record_failure(ip, now);
                    }
                    return Err(Denial::Outcome(outcome));
                }
                Err(other) => return Err(other),
            };
        // The time again: finding the credential may have waited on the store, and a rate
        // limit checked with a time from before that wait would see other requests' later
        // arrivals as already spent (a slow read would look like a burst).
        let at_millis = self.clock.now_millis();
        let now = from_millis(at_millis);
        let request = Request {
            at_millis,
            ip: client.ip,
            via_query: client.via_query,
        };
        let counted = demand.purpose != Purpose::Inspection;
        if found.revoked {
            if counted {
                self.usage
                    .record_refusal(&found.activity, Outcome::Revoked, request);
            }
            return Err(Denial::Outcome(Outcome::Revoked));
        }
        let credential = &found.identity.credential;
        let requirements = Requirements {
            scopes: demand.scopes,
            environment: demand.environment,
            client_ip: client.ip,
            org_rules: &policy.rules,
            any_address: demand.purpose == Purpose::Inspection,
        };
        match decide(
            credential,
            found.expires_at,
            &found.identity.scopes,
            &requirements,
            now,
        ) {
            Outcome::Valid if demand.purpose == Purpose::Inspection => Ok(Admitted {
                identity: found.identity.clone(),
                rate: None,
            }),
            Outcome::Valid if demand.purpose == Purpose::Verification => {
                self.usage.record_use(&found.activity, request);
                Ok(Admitted {
                    identity: found.identity.clone(),
                    rate: None,
                })
            }
            Outcome::Valid => {
                let limit = self.config.rate_limits.of(credential);
                let rate = self.usage.admit(&found.activity, limit, request);
                if !rate.allowed {
                    return Err(Denial::RateLimited(rate));
                }
                if let Some(ip) = client.ip.filter(|_| !policy.rules.is_empty())
                    && let Some(rule) = evaluate(&policy.rules, ip).rule()
                {
                    self.usage.record_match(rule, now);
                }
                Ok(Admitted {
                    identity: found.identity.clone(),
                    rate: Some(rate),
                })
            }
            outcome => {
                if counted {
                    self.usage.record_refusal(&found.activity, outcome, request);
                }
                // Every failed client authentication counts, so a revoked, disabled or
                // expired secret cannot be told from a made-up one by the throttle.
                if wanted == Wanted::ClientSecret
                    && let Some(ip) = counted_ip
                {
                    self.throttle.record_failure(ip, now);
                }
                Err(Denial::Outcome(outcome))
            }
        }
    }

    /// Finds the secret `presented` and confirms it, with its organization's policy:
    /// `MALFORMED` for a bad shape or checksum (or a secret of the wrong kind), `NOT_FOUND`
    /// for an unknown or unconfirmed one.
    async fn find(&self, presented: &str, wanted: Wanted) -> Result<(Found, Arc<Policy>), Denial> {
        let source = match (wanted, parse_secret(presented)) {
            (Wanted::Bearer, _) if looks_like_jwt(presented) => Source::Token,
            (Wanted::Bearer, Ok(SecretKind::ApiKey(_))) => Source::Secret("api_key"),
            (Wanted::ClientSecret, Ok(SecretKind::ClientSecret)) => Source::Secret("client_secret"),
            _ => return Err(Denial::Outcome(Outcome::Malformed)),
        };
        let digest = LookupDigest::of(presented);
        let now = Instant::now();
        // A cached credential stays good while its organization's change counter has not
        // moved past the one it was read with; the counter itself is re-read every
        // `cache_ttl`, which bounds how long another node's change goes unseen. Its salted
        // hash was confirmed when it was cached: the same lookup digest is the same secret.
        let cached = self.secrets.get(&digest, now);
        let lookup = if cached.is_some() {
            &self.metrics.cache_hit
        } else {
            &self.metrics.cache_miss
        };
        lookup.increment(1);
        if let Some(found) = cached {
            let policy = self
                .policy(&found.identity.credential.organization_id)
                .await
                .map_err(Denial::Store)?;
            if found.org_seq >= policy.seq {
                return Ok((found, policy));
            }
        } else if self.unknown.get(&digest, now).is_some() {
            return Err(Denial::Outcome(Outcome::NotFound));
        }
        let found = self
            .fill(digest, presented, source)
            .await
            .map_err(Denial::Store)?
            .ok_or(Denial::Outcome(Outcome::NotFound))?;
        let policy = self
            .policy(&found.identity.credential.organization_id)
            .await
            .map_err(Denial::Store)?;
        Ok((found, policy))
    }

    /// Reads a digest from the store into the caches.
    /// Only a secret whose salted hash confirms `presented`, or an authentic token, is
    /// cached as found.
    async fn fill(
        &self,
        digest: LookupDigest,
        presented: &str,
        source: Source,
    ) -> Result<Option<Found>, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let shard = &self.secret_generations[shard_of(&digest)];
        let secret_generation = shard.load(Ordering::Acquire);
        let loaded = match source {
            Source::Secret(kind) => self.load(&digest, presented, kind).await?,
            Source::Token => self.load_token(presented).await?,
        };
        // Cache first, index second, then check that no change was forgotten meanwhile:
        // a fill that raced a change on this node never outlives it.
        let now = Instant::now();
        match &loaded {
            Some(found) => {
                self.secrets.insert(digest, found.clone(), now);
                let mut digests = self
                    .digests_of
                    .entry(found.identity.credential.id.clone())
                    .or_default();
                if !digests.contains(&digest) {
                    digests.push(digest);
                }
            }
            None => self.unknown.insert(digest, (), now),
        }
        if self.generation.load(Ordering::Acquire) != generation
            || shard.load(Ordering::Acquire) != secret_generation
        {
            self.secrets.remove(&digest);
            self.unknown.remove(&digest);
        }
        Ok(loaded)
    }

    async fn load(
        &self,
        digest: &LookupDigest,
        presented: &str,
        kind: &str,
    ) -> Result<Option<Found>, StoreError> {
        let Some(found) = self.store.credential_by_secret(digest).await? else {
            return Ok(None);
        };
        if found.kind != kind || !found.salted.matches(presented) {
            return Ok(None);
        }
        let policy = self.policy(&found.credential.organization_id).await?;
        let scopes = self.scopes_with(&policy, &found.credential);
        let activity = self.usage.cell(&found.credential.id);
        let identity = Arc::new(Identity::new(found.credential, scopes));
        Ok(Some(Found {
            identity,
            activity,
            expires_at: found.expires_at,
            revoked: false,
            org_seq: found.org_change_seq,
        }))
    }

    /// Checks an access token's signature and claims, then reads its credential, whether
    /// its `jti` was revoked, and narrows its scopes to what the credential still holds.
    async fn load_token(&self, presented: &str) -> Result<Option<Found>, StoreError> {
        let now = self.clock.now();
        let oauth = &self.config.oauth;
        let Some(claims) = self
            .keys
            .authentic_claims(&self.store, now, presented)
            .await?
        else {
            return Ok(None);
        };
        let (Ok(org), Ok(id)) = (
            OrganizationId::parse(&claims.client_id),
            CredentialId::parse(&claims.sub),
        ) else {
            return Ok(None);
        };
        // The counter first: a change after this read moves it past what is cached.
        let org_seq = self.store.organization_change_seq(&org).await?;
        let Some(credential) = self.store.credential(&org, &id).await? else {
            return Ok(None);
        };
        let revoked = self.store.token_revoked(&claims.jti).await?;
        let policy = self.policy(&org).await?;
        let held = self.scopes_with(&policy, &credential);
        let scopes: ScopeSet = claims
            .scope
            .split_whitespace()
            .filter_map(Scope::from_canonical)
            .filter(|scope| held.grants(scope))
            .collect();
        let leeway = Duration::try_from(oauth.leeway).unwrap_or(Duration::ZERO);
        let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp)
            .map(|exp| exp + leeway)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let activity = self.usage.cell(&credential.id);
        let mut identity = Identity::new(credential, scopes);
        identity.token = Some(claims);
        Ok(Some(Found {
            identity: Arc::new(identity),
            activity,
            expires_at: Some(expires_at),
            revoked,
            org_seq,
        }))
    }

    async fn policy(&self, org: &OrganizationId) -> Result<Arc<Policy>, StoreError> {
        if let Some(policy) = self.policies.get(org, Instant::now()) {
            return Ok(policy);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let seq = self.store.organization_change_seq(org).await?;
        let rules = self.store.ip_rules(org).await?;
        let roles = self
            .store
            .roles(org)
            .await?
            .into_iter()
            .map(|role| (role.name, role.scopes))
            .collect();
        let policy = Arc::new(Policy { seq, rules, roles });
        self.policies
            .insert(org.clone(), policy.clone(), Instant::now());
        if self.generation.load(Ordering::Acquire) != generation {
            self.policies.remove(org);
        }
        Ok(policy)
    }

    fn scopes_with(&self, policy: &Policy, credential: &Credential) -> ScopeSet {
        let settings = &credential.settings;
        let role = settings.role.as_deref().and_then(|name| {
            builtin_role(&self.config.catalogue, name).or_else(|| policy.roles.get(name).cloned())
        });
        match role {
            Some(role_scopes) => settings.permissions.union(&role_scopes),
            None => settings.permissions.clone(),
        }
    }

    /// The scopes a credential holds: its permissions and its role's (built-in or custom).
    pub async fn effective_scopes(&self, credential: &Credential) -> Result<ScopeSet, StoreError> {
        let policy = self.policy(&credential.organization_id).await?;
        Ok(self.scopes_with(&policy, credential))
    }

    /// The scopes of a role of the organization, built-in or custom.
    pub async fn role_scopes(
        &self,
        org: &OrganizationId,
        name: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        if let Some(scopes) = builtin_role(&self.config.catalogue, name) {
            return Ok(Some(scopes));
        }
        Ok(self.policy(org).await?.roles.get(name).cloned())
    }

    /// Drops what this node cached about a credential: the next check reads the store.
    pub fn forget_credential(&self, id: &CredentialId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some((_, digests)) = self.digests_of.remove(id) {
            for digest in digests {
                self.secrets.remove(&digest);
            }
        }
    }

    /// Drops what this node cached about one presented secret or token.
    pub fn forget_secret(&self, presented: &str) {
        let digest = LookupDigest::of(presented);
        self.secret_generations[shard_of(&digest)].fetch_add(1, Ordering::AcqRel);
        self.secrets.remove(&digest);
    }

    /// Drops what this node cached about an organization's rules and roles.
    pub fn forget_organization(&self, org: &OrganizationId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.policies.remove(org);
    }

    /// Drops bookkeeping that no cache entry needs any more: reverse-index entries of
    /// credentials no longer cached, and throttle states long past.
    pub fn maintain(&self) {
        let now = Instant::now();
        self.digests_of.retain(|_, digests| {
            digests.retain(|digest| self.secrets.get(digest, now).is_some());
            !digests.is_empty()
        });
        self.throttle.prune(self.clock.now());
        self.usage.prune();
    }

    /// Writes the recorded uses, counts and rule matches now.
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
        self.usage.flush(&self.store).await?;
        *self
            .flushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        Ok(())
    }

    /// How long ago usage was last written in full.
    pub fn flush_lag(&self) -> std::time::Duration {
        self.flushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }

    /// Deletes usage counts older than `usage_retention`.
    pub async fn prune_usage(&self) -> Result<(), StoreError> {
        let retention =
            i64::try_from(self.config.usage_retention.as_secs() / 60).unwrap_or(i64::MAX);
        let now_minute = self.clock.now().unix_timestamp().div_euclid(60);
        self.store
            .prune_usage(now_minute.saturating_sub(retention))
            .await
    }

    /// Flushes recorded usage every `config.usage_flush_interval` until the returned
    /// handle is aborted.
    pub fn spawn_usage_flusher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let verifier = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(verifier.config.usage_flush_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut pruned = Instant::now();
            loop {
                interval.tick().await;
                verifier.maintain();
                crate::metrics::upkeep();
                if let Err(error) = verifier.flush_usage().await {
                    tracing::warn!(%error, "could not write usage; will retry");
                }
                if pruned.elapsed() >= PRUNE_INTERVAL {
                    pruned = Instant::now();
                    if let Err(error) = verifier.prune_usage().await {
                        tracing::warn!(%error, "could not prune usage counts; will retry");
                    }
                }
            }
        })
    }
}
