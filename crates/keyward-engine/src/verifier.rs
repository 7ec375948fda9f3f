//! The check shared by every way of use: an API asking whether a key its client presented
//! is good, a proxy asking before it forwards, an API checking its own requests
//! in-process, an OAuth client authenticating, and the management API's callers.
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
//! every such change removes the credential's entries at once. Nothing is written to the
//! database per request: uses are recorded in memory and flushed in batches (see
//! [`crate::usage`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::clock::{Clock, from_millis, to_millis};
use keyward_core::credential::{Credential, Environment};
use keyward_core::digest::LookupDigest;
use keyward_core::ip_rule::{IpRule, RuleDecision, evaluate};
use keyward_core::rate_limit::{Pace, RateDecision};
use keyward_core::scope::{Scope, ScopeIndex, ScopeSet};
use keyward_core::secret::{SecretKind, parse_secret};
use keyward_core::typeid::{CredentialId, OrganizationId};
use keyward_core::verify::{Outcome, Requirements, Subject, decide};
use keyward_store::{Store, StoreError};
use time::Duration;

use crate::cache::TtlCache;
use crate::ceiling::OrganizationCeiling;
use crate::config::EngineConfig;
use crate::identity::Identity;
use crate::metrics::{Count, VerificationMetrics};
use crate::policy::{OrgSlot, Policies, Policy};
use crate::throttle::Throttle;
use crate::tokens::{AccessTokenClaims, KeySource, TokenRejection, looks_like_jwt, verify};
use crate::usage::{Activity, Counted, Request, UsageRecorder};

/// What a check demands beyond a live credential.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand<'a> {
    /// Scopes the credential must all hold.
    pub scopes: &'a [Scope],
    /// The environment it must belong to.
    pub environment: Option<Environment>,
    /// The organization it must belong to: another organization's key is `NOT_FOUND`.
    pub organization: Option<&'a OrganizationId>,
    /// Why the credential is checked: a use (the default), a management request, a
    /// verification endpoint's caller, or an inspection.
    pub purpose: Purpose,
}

/// Why a credential is checked, which decides what the check applies and counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Purpose {
    /// A request made with the credential: every rule applies, the request counts against
    /// its rate limit and is recorded.
    #[default]
    Use,
    /// A management request made with the credential: as [`Purpose::Use`], and the
    /// management requests of its organization together are held under the organization's
    /// ceiling, so one tenant cannot starve the others however many keys it makes.
    Management,
    /// A verifier: a caller asking about other credentials (key verification, token
    /// introspection), on behalf of many requests: every rule applies and the use is recorded, but
    /// it is not counted against the caller's rate limit (the verified key's is).
    Verification,
    /// A question about the credential, not a use of it (token introspection): the
    /// allowlist and IP rules are not applied, and nothing is counted or recorded.
    Inspection,
}

/// A check that passed: who the caller is, from where, and the rate limit the request was
/// counted against (`None` for an inspection).
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The credential and its scopes.
    pub identity: Arc<Identity>,
    /// The state of the credential's rate limit after this request.
    pub rate: Option<RateDecision>,
    /// The client's address, as the check saw it.
    pub ip: Option<IpAddr>,
    /// When the presented secret or token stops being accepted, if it does: a rotated-out
    /// secret's grace end, a token's expiry (milliseconds since the epoch). The credential's
    /// own expiry is in its settings.
    pub expires_at: Option<i64>,
    /// How usage counted the request, when it counted it `VALID` (a use or a management
    /// request): for [`Verifier::recount`] if the request is refused after all.
    pub counted: Option<Counted>,
}

/// Where the presented credential came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client {
    /// The client's address, if known.
    pub ip: Option<IpAddr>,
    /// Whether failures count against that address (brute-force protection); off for a
    /// check with no client of its own (a token asked about).
    pub throttled: bool,
    /// Whether the credential came in a URL's query string (marked in usage).
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
    /// The organization's management requests together reached its ceiling; it may try
    /// again after this long.
    Ceiling(Duration),
    /// The store could not answer; the check fails closed.
    Store(StoreError),
}

/// A secret found by its digest: the identity behind it and what confirms it.
/// Held by value in the cache, so a check reads it without another pointer hop.
/// The activity cell, the organization and the limit sit here rather than behind the
/// identity, so reading each depends on the entry only, not on another read before it.
#[derive(Debug, Clone)]
struct Found {
    identity: Arc<Identity>,
    /// The credential's rate limit, worked out once.
    pace: Pace,
    /// Where this node notes the credential's uses and keeps its rate limit state.
    activity: Arc<Activity>,
    /// The credential's organization: its rules as this node last read them.
    org: Arc<OrgSlot>,
    /// The organization's change counter when this was read.
    org_seq: i64,
    /// When this secret stops being accepted (milliseconds since the epoch): the end of a
    /// rotated-out key's grace period, an access token's expiry.
    expires_at: Option<i64>,
    /// Whether this secret itself was revoked (an access token's `jti`).
    revoked: bool,
}

/// How often old usage counts are pruned and the caches' bookkeeping is tidied.
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
    /// The secrets table: a secret stored as this kind.
    Secret(SecretKind),
    /// The token's own signature.
    Token,
}

/// Which source confirms `presented` for a check wanting `wanted`; `None` for a bad shape
/// or checksum, or a secret of the wrong kind (`MALFORMED`).
fn source_of(presented: &str, wanted: Wanted) -> Option<Source> {
    match (wanted, parse_secret(presented)) {
        (Wanted::Bearer, _) if looks_like_jwt(presented) => Some(Source::Token),
        (Wanted::Bearer, Ok(kind @ SecretKind::ApiKey(_)))
        | (Wanted::ClientSecret, Ok(kind @ SecretKind::ClientSecret)) => Some(Source::Secret(kind)),
        _ => None,
    }
}

/// One check's question: what it accepts, demands and from whom.
#[derive(Clone, Copy)]
struct Check<'d, 'a> {
    wanted: Wanted,
    demand: &'d Demand<'a>,
    client: Client,
    /// The client address failures count against, when they do.
    counted_ip: Option<IpAddr>,
    /// The demanded scopes as bits of the verifier's scope index, if they all have one.
    scope_bits: Option<u128>,
}

/// The verification engine: its caches, usage recording and limits.
pub struct Verifier {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: Arc<EngineConfig>,
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
    /// The organizations of cached credentials.
    policies: Policies,
    /// The scope catalogue's bits, when it has few enough scopes.
    scope_index: Option<ScopeIndex>,
    throttle: Throttle,
    ceiling: OrganizationCeiling,
    keys: Arc<dyn KeySource>,
    /// What the checks counted.
    pub metrics: VerificationMetrics,
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
    /// A verifier over `store`, with empty caches, checking access tokens against the
    /// keys `keys` publishes.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        keys: Arc<dyn KeySource>,
    ) -> Self {
        let capacity = usize::try_from(config.cache_capacity).unwrap_or(usize::MAX);
        let secrets = TtlCache::new(config.credential_cache_ttl, capacity);
        let unknown = TtlCache::new(config.cache_ttl, capacity);
        let throttle = Throttle::new(config.throttle.clone());
        let ceiling = OrganizationCeiling::new(config.rate_limits.management);
        let scope_index = ScopeIndex::new(&config.catalogue);
        let cache_ttl_millis = i64::try_from(config.cache_ttl.as_millis()).unwrap_or(i64::MAX);
        let policies = Policies::new(
            store.clone(),
            clock.clone(),
            config.catalogue.clone(),
            cache_ttl_millis,
        );
        Self {
            store,
            clock,
            config: Arc::new(config),
            secrets,
            unknown,
            generation: AtomicU64::new(0),
            secret_generations: std::array::from_fn(|_| AtomicU64::new(0)),
            digests_of: DashMap::default(),
            policies,
            scope_index,
            throttle,
            ceiling,
            keys,
            metrics: VerificationMetrics::default(),
            flushed: std::sync::Mutex::new(Instant::now()),
            usage: UsageRecorder::default(),
        }
    }

    /// The settings the engine was made with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Checks a presented API key or access token for `demand`, from `client`.
    pub async fn check(
        &self,
        presented: &str,
        demand: &Demand<'_>,
        client: Client,
    ) -> Result<Admitted, Denial> {
        let admitted = self
            .check_as(presented, Wanted::Bearer, demand, client)
            .await?;
        if demand.purpose == Purpose::Management {
            self.count_management(&admitted.identity.credential.organization_id)?;
        }
        Ok(admitted)
    }

    /// Counts one management request of `org` against the organization's ceiling, whoever
    /// makes it (a credential, or a member signed in to the dashboard): the state of the
    /// ceiling after it, or the wait it asks.
    pub fn count_management(&self, org: &OrganizationId) -> Result<RateDecision, Denial> {
        let ceiling = self.ceiling.check(org, self.clock.now());
        if ceiling.allowed {
            Ok(ceiling)
        } else {
            Err(Denial::Ceiling(ceiling.retry_after))
        }
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
            Ok(_) => self.metrics.add(Count::Outcome(Outcome::Valid)),
            Err(Denial::Outcome(outcome)) => self.metrics.add(Count::Outcome(*outcome)),
            Err(Denial::RateLimited(_)) => {
                self.metrics.add(Count::RateLimited);
                self.metrics.add(Count::Outcome(Outcome::RateLimited));
            }
            Err(Denial::Throttled(_)) => self.metrics.add(Count::Outcome(Outcome::RateLimited)),
            Err(Denial::Store(_)) => self.metrics.add(Count::StoreError),
            // Only a management request meets the ceiling, after this check was counted.
            Err(Denial::Ceiling(_)) => {}
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
        let now = self.clock.now_millis();
        let counted_ip = client.ip.filter(|_| client.throttled);
        if let Some(ip) = counted_ip
            && let Some(wait) = self.throttle.blocked_at(ip, now)
        {
            return Err(Denial::Throttled(wait));
        }
        let check = Check {
            wanted,
            demand,
            client,
            counted_ip,
            scope_bits: match (&self.scope_index, demand.scopes) {
                (_, []) => Some(0),
                (Some(index), scopes) => index.required(scopes),
                (None, _) => None,
            },
        };
        let Some(source) = source_of(presented, wanted) else {
            return Err(self.failed(&check, Outcome::Malformed, now));
        };
        let digest = LookupDigest::of(presented);
        // A cached credential stays good while its organization's change counter has not
        // moved past the one it was read with; the counter itself is re-read every
        // `cache_ttl`, which bounds how long another node's change goes unseen. Its salted
        // hash was confirmed when it was cached: the same lookup digest is the same secret.
        // Then the check is decided in place, without copying the entry out or waiting.
        let ttl = self.policies.ttl_millis;
        let decided = self.secrets.with(&digest, now, |found| {
            let org = &found.org;
            // An organization not read lately: the entry goes to `find`, which reads it.
            let Some(fresh) = org
                .fresh(now, ttl)
                .filter(|fresh| found.org_seq >= fresh.seq)
            else {
                return Err(found.clone());
            };
            Ok(if fresh.has_rules {
                self.conclude(found, &org.policy.load().rules, &check, now)
            } else {
                self.conclude(found, &[], &check, now)
            })
        });
        let cached = match decided {
            Some(Ok(result)) => {
                self.metrics.add(Count::CacheHit);
                return result;
            }
            Some(Err(stale)) => {
                self.metrics.add(Count::CacheHit);
                Some(stale)
            }
            None => {
                self.metrics.add(Count::CacheMiss);
                if self.unknown.with(&digest, now, |()| ()).is_some() {
                    return Err(self.failed(&check, Outcome::NotFound, now));
                }
                None
            }
        };
        // Boxed: the store's path is the rare one, and inline its state would make every
        // check's future (fast path included) a couple of kilobytes to build and move.
        let found = Box::pin(self.find(cached, digest, presented, source));
        let (found, policy) = match found.await {
            Ok(found) => found,
            Err(Denial::Outcome(outcome)) => return Err(self.failed(&check, outcome, now)),
            Err(other) => return Err(other),
        };
        // The time again: finding the credential waited on the store, and a rate limit
        // checked with a time from before that wait would see other requests' later
        // arrivals as already spent (a slow read would look like a burst).
        self.conclude(&found, &policy.rules, &check, self.clock.now_millis())
    }

    /// A check that failed before its credential was decided on: the failure counts
    /// against the client's address.
    fn failed(&self, check: &Check<'_, '_>, outcome: Outcome, now: i64) -> Denial {
        if let Some(ip) = check.counted_ip {
            self.throttle.record_failure(ip, from_millis(now));
        }
        Denial::Outcome(outcome)
    }

    /// Decides a check of a found credential with its organization's IP rules at `now`,
    /// and records it: its rate limit, its usage, the rule that matched.
    fn conclude(
        &self,
        found: &Found,
        rules: &[IpRule],
        check: &Check<'_, '_>,
        now: i64,
    ) -> Result<Admitted, Denial> {
        let Check {
            wanted,
            demand,
            client,
            counted_ip,
            scope_bits,
        } = *check;
        let identity = &found.identity;
        if demand
            .organization
            .is_some_and(|org| *org != identity.credential.organization_id)
        {
            return Err(self.failed(check, Outcome::NotFound, now));
        }
        let request = Request {
            at_millis: now,
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
        let requirements = Requirements {
            scopes: demand.scopes,
            scope_bits,
            environment: demand.environment,
            client_ip: client.ip,
            org_rules: rules,
            any_address: demand.purpose == Purpose::Inspection,
        };
        let subject = Subject {
            profile: identity.profile(),
            credential: &identity.credential,
            scopes: &identity.scopes,
        };
        let (rate, counted) = match decide(subject, found.expires_at, &requirements, now) {
            Outcome::Valid => match demand.purpose {
                Purpose::Inspection => (None, None),
                Purpose::Verification => {
                    self.usage.record_use(&found.activity, request);
                    (None, None)
                }
                Purpose::Use | Purpose::Management => {
                    let rate = self.usage.admit(&found.activity, &found.pace, request);
                    if !rate.allowed {
                        return Err(Denial::RateLimited(rate));
                    }
                    if let Some(ip) = client.ip.filter(|_| !rules.is_empty())
                        && let Some(rule) = evaluate(rules, ip).rule()
                    {
                        self.usage.record_match(rule, from_millis(now));
                    }
                    let counted = (demand.purpose == Purpose::Management)
                        .then(|| self.usage.counted(&found.activity, request));
                    (Some(rate), counted)
                }
            },
            outcome => {
                if counted {
                    self.usage.record_refusal(&found.activity, outcome, request);
                    // A secret a rotation replaced, still presented: the credential's page
                    // says from where, so its owner can find the client left behind.
                    if outcome == Outcome::Expired && found.expires_at.is_some_and(|end| end <= now)
                    {
                        self.usage.record_old_secret(
                            &identity.credential.id,
                            from_millis(now),
                            client.ip,
                        );
                    }
                }
                if outcome == Outcome::IpDenied {
                    self.note_block(rules, client.ip, now);
                }
                // Every failed client authentication counts, so a revoked, disabled or
                // expired secret cannot be told from a made-up one by the throttle.
                if wanted == Wanted::ClientSecret
                    && let Some(ip) = counted_ip
                {
                    self.throttle.record_failure(ip, from_millis(now));
                }
                return Err(Denial::Outcome(outcome));
            }
        };
        Ok(Admitted {
            identity: identity.clone(),
            rate,
            ip: client.ip,
            expires_at: found.expires_at,
            counted,
        })
    }

    /// Counts a management request admitted as `VALID` with the outcome it really had
    /// (`INSUFFICIENT_SCOPE` when the operation needs a scope the credential lacks), so a
    /// credential's usage shows its refusals. Call it at most once per admission.
    pub fn recount(&self, counted: &Counted, outcome: Outcome) {
        self.usage.recount(counted, outcome);
    }

    /// Finds a secret the cache could not answer for, with its organization's policy:
    /// the `cached` entry if the organization, read again, has not changed since it was
    /// read, or else the store's; `NOT_FOUND` for an unknown or unconfirmed one.
    async fn find(
        &self,
        cached: Option<Found>,
        digest: LookupDigest,
        presented: &str,
        source: Source,
    ) -> Result<(Found, Arc<Policy>), Denial> {
        if let Some(found) = cached {
            let policy = self.policies.of(&found.org).await.map_err(Denial::Store)?;
            if found.org_seq >= policy.seq {
                return Ok((found, policy));
            }
        }
        let found = self
            .fill(digest, presented, source)
            .await
            .map_err(Denial::Store)?
            .ok_or(Denial::Outcome(Outcome::NotFound))?;
        let policy = self.policies.of(&found.org).await.map_err(Denial::Store)?;
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
        // Index first, then the entry, kept only if nothing was forgotten since the read
        // began, checked under the shard's lock that a forget's removal takes too: a forget
        // either stops the insert, or finds the digest in the index and removes the entry.
        // The index entry stays locked until the entry is in, so `maintain`, which drops
        // index entries whose digest is not cached, cannot drop this one in between (a
        // later forget would then miss the entry). Both take the index's lock first.
        let now = self.clock.now_millis();
        let unchanged = || {
            self.generation.load(Ordering::Acquire) == generation
                && shard.load(Ordering::Acquire) == secret_generation
        };
        match &loaded {
            Some(found) => {
                let mut digests = self
                    .digests_of
                    .entry(found.identity.credential.id.clone())
                    .or_default();
                if !digests.contains(&digest) {
                    digests.push(digest);
                }
                self.secrets
                    .insert_if(digest, found.clone(), now, unchanged);
                drop(digests);
            }
            None => self.unknown.insert_if(digest, (), now, unchanged),
        }
        Ok(loaded)
    }

    async fn load(
        &self,
        digest: &LookupDigest,
        presented: &str,
        kind: SecretKind,
    ) -> Result<Option<Found>, StoreError> {
        let Some(found) = self.store.credential_by_secret(digest).await? else {
            return Ok(None);
        };
        if found.kind != kind || !found.salted.matches(presented) {
            return Ok(None);
        }
        let org = self.policies.slot(&found.credential.organization_id);
        let policy = self.policies.of(&org).await?;
        let scopes = self.policies.scopes_with(&policy, &found.credential);
        Ok(Some(Found {
            pace: self.config.rate_limits.of(&found.credential).pace(),
            activity: self.usage.cell(&found.credential.id),
            identity: Arc::new(self.identity(found.credential, scopes)),
            org,
            expires_at: found.expires_at.map(to_millis),
            revoked: false,
            org_seq: found.org_change_seq,
        }))
    }

    /// Checks an access token's signature and claims, then reads its credential, whether
    /// its `jti` was revoked, and narrows its scopes to what the credential still holds.
    async fn load_token(&self, presented: &str) -> Result<Option<Found>, StoreError> {
        let Some(claims) = self.authentic_claims(presented).await? else {
            return Ok(None);
        };
        let (Ok(org_id), Ok(id)) = (
            OrganizationId::parse(&claims.client_id),
            CredentialId::parse(&claims.sub),
        ) else {
            return Ok(None);
        };
        // The counter first: a change after this read moves it past what is cached.
        let org_seq = self.store.organization_change_seq(&org_id).await?;
        let Some(credential) = self.store.credential(&org_id, &id).await? else {
            return Ok(None);
        };
        let revoked = self.store.token_revoked(&claims.jti).await?;
        let org = self.policies.slot(&org_id);
        let policy = self.policies.of(&org).await?;
        let held = self.policies.scopes_with(&policy, &credential);
        let scopes: ScopeSet = claims
            .scope
            .split_whitespace()
            .filter_map(Scope::from_canonical)
            .filter(|scope| held.grants(scope))
            .collect();
        let leeway = i64::try_from(self.config.tokens.leeway.as_millis()).unwrap_or(i64::MAX);
        let mut expires_at = claims.exp.saturating_mul(1_000).saturating_add(leeway);
        // A rotation or a disable since the token was minted ends it (no leeway: the
        // cutoff is this deployment's own clock, not the client's).
        if let Some(end) = credential
            .token_cutoff
            .and_then(|cutoff| cutoff.end_of(claims.generation()))
        {
            expires_at = expires_at.min(to_millis(end));
        }
        let activity = self.usage.cell(&credential.id);
        let pace = self.config.rate_limits.of(&credential).pace();
        let mut identity = self.identity(credential, scopes);
        identity.token = Some(claims);
        Ok(Some(Found {
            identity: Arc::new(identity),
            pace,
            activity,
            org,
            expires_at: Some(expires_at),
            revoked,
            org_seq,
        }))
    }

    /// The identity of a credential read from the store: its profile made once here, for
    /// every check of it while it is cached.
    fn identity(&self, credential: Credential, scopes: ScopeSet) -> Identity {
        Identity::new(credential, scopes, self.scope_index.as_ref())
    }

    /// The claims of `presented` if it is an access token signed by one of the published
    /// keys, expired or not (the caller decides what expiry means); the keys are re-read
    /// once for a `kid` not known yet. `None` for anything else.
    pub async fn authentic_claims(
        &self,
        presented: &str,
    ) -> Result<Option<AccessTokenClaims>, StoreError> {
        let now = self.clock.now();
        let rules = &self.config.tokens;
        let keys = self.keys.public_keys(now).await?;
        let verified = match verify(presented, &keys, rules) {
            Err(TokenRejection::UnknownKey) => {
                let keys = self.keys.refresh_public_keys(now).await?;
                verify(presented, &keys, rules)
            }
            other => other,
        };
        Ok(match verified {
            Ok(claims) => Some(claims),
            Err(TokenRejection::Expired(claims)) => Some(*claims),
            Err(_) => None,
        })
    }

    /// The scopes a credential holds: its permissions and its role's (built-in or custom).
    pub async fn effective_scopes(&self, credential: &Credential) -> Result<ScopeSet, StoreError> {
        self.policies.effective_scopes(credential).await
    }

    /// The scopes of a role of the organization, built-in or custom; `None` for no such
    /// role.
    pub async fn role_scopes(
        &self,
        org: &OrganizationId,
        name: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        self.policies.role_scopes(org, name).await
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
        self.policies.forget(org);
    }

    /// Drops bookkeeping that no cache entry needs any more: reverse-index entries of
    /// credentials no longer cached, organizations none of them belongs to, and throttle
    /// states long past.
    pub fn maintain(&self) {
        let now = self.clock.now_millis();
        self.digests_of.retain(|_, digests| {
            digests.retain(|digest| self.secrets.with(digest, now, |_| ()).is_some());
            !digests.is_empty()
        });
        self.policies.retain_used();
        self.throttle.prune(self.clock.now());
        self.usage.prune();
    }

    /// Notes which organization rule refused a request from `ip`, if one did (a credential's
    /// own allowlist may have): announced, at most once per rule and interval, from what the
    /// next flush writes. Out of line, off the path of accepted requests.
    #[cold]
    #[inline(never)]
    fn note_block(&self, rules: &[IpRule], ip: Option<std::net::IpAddr>, now: i64) {
        if let Some(ip) = ip.filter(|_| !rules.is_empty())
            && let RuleDecision::Denied(Some(rule)) = evaluate(rules, ip)
        {
            self.usage.record_block(&rule, from_millis(now));
        }
    }

    /// Writes the recorded uses, counts and rule matches now.
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
        self.usage.flush(&*self.store).await?;
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

    /// Flushes recorded usage every `config.usage_flush_interval` until
    /// [`UsageFlusher::stop`]; every minute, also drops what the caches no longer need and
    /// old usage counts. That walk visits every cached credential, so it runs on a
    /// blocking thread: on a runtime worker, a million of them would hold up that worker's
    /// requests. Dropping the returned handle leaves the task running.
    pub fn spawn_usage_flusher(self: &Arc<Self>) -> UsageFlusher {
        let verifier = self.clone();
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(verifier.config.usage_flush_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut pruned = Instant::now();
            loop {
                // Stopped only between flushes: one cut short would lose what it had taken.
                tokio::select! {
                    _ = interval.tick() => {}
                    () = stopped.notified() => return,
                }
                if let Err(error) = verifier.flush_usage().await {
                    tracing::warn!(%error, "could not write usage; will retry");
                }
                if pruned.elapsed() >= PRUNE_INTERVAL {
                    pruned = Instant::now();
                    let maintained = verifier.clone();
                    if tokio::task::spawn_blocking(move || maintained.maintain())
                        .await
                        .is_err()
                    {
                        tracing::error!("the cache maintenance panicked");
                    }
                    if let Err(error) = verifier.prune_usage().await {
                        tracing::warn!(%error, "could not prune usage counts; will retry");
                    }
                }
            }
        });
        UsageFlusher { stop, task }
    }
}

/// The background task writing usage, from [`Verifier::spawn_usage_flusher`].
#[derive(Debug)]
pub struct UsageFlusher {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl UsageFlusher {
    /// Stops the task once any flush under way has finished, and waits for it: what that
    /// flush took is written, and everything else is left for a last
    /// [`Verifier::flush_usage`].
    pub async fn stop(self) {
        self.stop.notify_one();
        if self.task.await.is_err() {
            tracing::error!("the usage flusher panicked");
        }
    }
}
