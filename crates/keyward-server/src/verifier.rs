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
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::clock::{Clock, from_millis, to_millis};
use keyward_core::credential::{Credential, Environment};
use keyward_core::digest::LookupDigest;
use keyward_core::ip_rule::{IpRule, evaluate};
use keyward_core::rate_limit::{Pace, RateDecision};
use keyward_core::scope::{Scope, ScopeIndex, ScopeSet, builtin_role};
use keyward_core::secret::{SecretKind, parse_secret};
use keyward_core::typeid::{CredentialId, OrganizationId};
use keyward_core::verify::{Gate, Outcome, Requirements, Subject, decide};
use keyward_store::{Store, StoreError};
use time::Duration;

use crate::cache::{TtlCache, alive};
use crate::gate::AnswerHeaders;
use crate::metrics::{Count, VerificationMetrics};
use crate::oauth::keys::KeyRing;

use crate::oauth::token::{AccessTokenClaims, looks_like_jwt};
use crate::state::ServerConfig;
use crate::throttle::Throttle;
use crate::usage::{Activity, Request, UsageRecorder};

/// Who a valid credential is: what the API behind Keyward learns about its caller.
///
/// `repr(C)` keeps the [`Gate`] first, on the cache line of the reference counts that a
/// check touches anyway: a check of a cached credential reads the gate and nothing else of
/// the record.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Identity {
    gate: Gate,
    /// The credential.
    pub credential: Credential,
    /// Its permissions together with its role's scopes.
    pub scopes: ScopeSet,
    /// The scopes as one space-separated text, formatted once per cache fill.
    scopes_text: String,
    /// The headers of an answer admitting it, made once per cache fill.
    answer_headers: AnswerHeaders,
    /// Its members of a valid `/v1/keys/verify` answer, made by the first such answer.
    verify_members: OnceLock<Box<str>>,
    /// The access token's claims, when the credential was presented as one.
    pub token: Option<AccessTokenClaims>,
}

impl Identity {
    /// An identity of `credential` holding `scopes`, checked through `gate`.
    fn new(credential: Credential, scopes: ScopeSet, gate: Gate) -> Self {
        let scopes_text = scopes.to_strings().join(" ");
        let answer_headers = AnswerHeaders::of(&credential, &scopes_text);
        Self {
            gate,
            credential,
            scopes,
            scopes_text,
            answer_headers,
            verify_members: OnceLock::new(),
            token: None,
        }
    }

    /// The headers of an answer admitting it.
    pub fn answer_headers(&self) -> &AnswerHeaders {
        &self.answer_headers
    }

    /// Where its members of a valid `/v1/keys/verify` answer are kept once made.
    pub fn verify_members(&self) -> &OnceLock<Box<str>> {
        &self.verify_members
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
/// The activity cell, the organization and the limit sit here rather than behind the
/// identity, so a check starts reading all three as soon as it has the entry, not one
/// after another.
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

/// An organization as checks see it: its rules and roles as this node last read them,
/// shared by all its cached credentials, so a check finds them through the entry it
/// already holds, without hashing the organization id.
///
/// Whether the policy is fresh is mirrored in plain atomics that a check reads without a
/// locked instruction, as a sequence lock: `keep` moves `version` to odd before it writes
/// them and to even after, and a check trusts what it read only when it saw the same even
/// version before and after. The policy itself is loaded only for an organization with
/// rules.
#[derive(Debug)]
struct OrgSlot {
    id: OrganizationId,
    /// Swapped whole when re-read.
    policy: ArcSwap<Policy>,
    /// Moved by every change this node makes to the organization: a policy read under an
    /// older value is stale.
    generation: AtomicU64,
    /// Odd while `keep` writes the fields below.
    version: AtomicU64,
    /// The policy's change counter.
    seq: AtomicI64,
    /// When the policy's read began (milliseconds since the epoch; `i64::MIN` before the
    /// first read).
    read_at: AtomicI64,
    /// The slot's generation when the policy's read began.
    read_generation: AtomicU64,
    /// Whether the policy has IP rules.
    has_rules: AtomicBool,
    /// One `keep` at a time.
    keeping: std::sync::Mutex<()>,
}

/// An organization's rules and custom roles, as checks need them.
#[derive(Debug, Default)]
struct Policy {
    /// The organization's change counter, read before the rules and roles.
    seq: i64,
    rules: Vec<IpRule>,
    roles: HashMap<String, ScopeSet>,
}

/// What a check reads of a fresh policy without loading it.
#[derive(Debug, Clone, Copy)]
struct Fresh {
    seq: i64,
    has_rules: bool,
}

impl OrgSlot {
    fn new(id: OrganizationId) -> Self {
        Self {
            id,
            policy: ArcSwap::from_pointee(Policy::default()),
            generation: AtomicU64::new(0),
            version: AtomicU64::new(0),
            seq: AtomicI64::new(0),
            read_at: AtomicI64::new(i64::MIN),
            read_generation: AtomicU64::new(0),
            has_rules: AtomicBool::new(false),
            keeping: std::sync::Mutex::new(()),
        }
    }

    /// The policy's change counter and whether it has rules, if it may still be used at
    /// `now`: read less than `ttl` ago (all milliseconds) and since this node last changed
    /// the organization.
    fn fresh(&self, now: i64, ttl: i64) -> Option<Fresh> {
        let before = self.version.load(Ordering::Acquire);
        let read_at = self.read_at.load(Ordering::Relaxed);
        let read_generation = self.read_generation.load(Ordering::Relaxed);
        let fresh = Fresh {
            seq: self.seq.load(Ordering::Relaxed),
            has_rules: self.has_rules.load(Ordering::Relaxed),
        };
        std::sync::atomic::fence(Ordering::Acquire);
        let consistent = before.is_multiple_of(2) && self.version.load(Ordering::Relaxed) == before;
        (consistent
            && alive(read_at, now, ttl)
            && read_generation == self.generation.load(Ordering::Acquire))
        .then_some(fresh)
    }

    /// Keeps `policy`, read from `read_at` on under `generation`, unless this node changed
    /// the organization since (it would be stale on arrival) or a read begun later was
    /// kept already.
    fn keep(&self, policy: Arc<Policy>, read_at: i64, generation: u64) {
        let _keeping = self
            .keeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != generation
            || (self.read_generation.load(Ordering::Relaxed) == generation
                && self.read_at.load(Ordering::Relaxed) > read_at)
        {
            return;
        }
        let version = self.version.load(Ordering::Relaxed);
        self.version.store(version + 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.seq.store(policy.seq, Ordering::Relaxed);
        self.has_rules
            .store(!policy.rules.is_empty(), Ordering::Relaxed);
        self.read_generation.store(generation, Ordering::Relaxed);
        self.read_at.store(read_at, Ordering::Relaxed);
        self.policy.store(policy);
        self.version.store(version + 2, Ordering::Release);
    }
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
    /// The secrets table, rows of this kind.
    Secret(&'static str),
    /// The token's own signature.
    Token,
}

/// Which source confirms `presented` for a check wanting `wanted`; `None` for a bad shape
/// or checksum, or a secret of the wrong kind (`MALFORMED`).
fn source_of(presented: &str, wanted: Wanted) -> Option<Source> {
    match (wanted, parse_secret(presented)) {
        (Wanted::Bearer, _) if looks_like_jwt(presented) => Some(Source::Token),
        (Wanted::Bearer, Ok(SecretKind::ApiKey(_))) => Some(Source::Secret("api_key")),
        (Wanted::ClientSecret, Ok(SecretKind::ClientSecret)) => {
            Some(Source::Secret("client_secret"))
        }
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
    /// The organizations of cached credentials.
    orgs: DashMap<OrganizationId, Arc<OrgSlot>, RandomState>,
    /// The scope catalogue's bits, when it has few enough scopes.
    scope_index: Option<ScopeIndex>,
    /// `config.cache_ttl` in milliseconds.
    cache_ttl_millis: i64,
    throttle: Throttle,
    keys: Arc<KeyRing>,
    /// What the checks counted, for `/metrics`.
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
        let throttle = Throttle::new(config.throttle.clone());
        let scope_index = ScopeIndex::new(&config.catalogue);
        let cache_ttl_millis = i64::try_from(config.cache_ttl.as_millis()).unwrap_or(i64::MAX);
        Self {
            store,
            clock,
            config,
            secrets,
            unknown,
            generation: AtomicU64::new(0),
            secret_generations: std::array::from_fn(|_| AtomicU64::new(0)),
            digests_of: DashMap::default(),
            orgs: DashMap::default(),
            scope_index,
            cache_ttl_millis,
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
            Ok(_) => self.metrics.add(Count::Outcome(Outcome::Valid)),
            Err(Denial::Outcome(outcome)) => self.metrics.add(Count::Outcome(*outcome)),
            Err(Denial::RateLimited(_)) => {
                self.metrics.add(Count::RateLimited);
                self.metrics.add(Count::Outcome(Outcome::RateLimited));
            }
            Err(Denial::Throttled(_)) => self.metrics.add(Count::Outcome(Outcome::RateLimited)),
            Err(Denial::Store(_)) => self.metrics.add(Count::StoreError),
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
        let ttl = self.cache_ttl_millis;
        let decided = self.secrets.with(&digest, now, |found| {
            // Both lines a check needs next start on their way together, before anything
            // waits on either.
            found.activity.touch();
            std::hint::black_box(Arc::strong_count(&found.identity));
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
            gate: &identity.gate,
            credential: &identity.credential,
            scopes: &identity.scopes,
        };
        let rate = match decide(subject, found.expires_at, &requirements, now) {
            Outcome::Valid => match demand.purpose {
                Purpose::Inspection => None,
                Purpose::Verification => {
                    self.usage.record_use(&found.activity, request);
                    None
                }
                Purpose::Use => {
                    let rate = self.usage.admit(&found.activity, &found.pace, request);
                    if !rate.allowed {
                        return Err(Denial::RateLimited(rate));
                    }
                    if let Some(ip) = client.ip.filter(|_| !rules.is_empty())
                        && let Some(rule) = evaluate(rules, ip).rule()
                    {
                        self.usage.record_match(rule, from_millis(now));
                    }
                    Some(rate)
                }
            },
            outcome => {
                if counted {
                    self.usage.record_refusal(&found.activity, outcome, request);
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
        })
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
            let policy = self.policy_of(&found.org).await.map_err(Denial::Store)?;
            if found.org_seq >= policy.seq {
                return Ok((found, policy));
            }
        }
        let found = self
            .fill(digest, presented, source)
            .await
            .map_err(Denial::Store)?
            .ok_or(Denial::Outcome(Outcome::NotFound))?;
        let policy = self.policy_of(&found.org).await.map_err(Denial::Store)?;
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
        kind: &str,
    ) -> Result<Option<Found>, StoreError> {
        let Some(found) = self.store.credential_by_secret(digest).await? else {
            return Ok(None);
        };
        if found.kind != kind || !found.salted.matches(presented) {
            return Ok(None);
        }
        let org = self.org_slot(&found.credential.organization_id);
        let policy = self.policy_of(&org).await?;
        let scopes = self.scopes_with(&policy, &found.credential);
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
        let now = self.clock.now();
        let oauth = &self.config.oauth;
        let Some(claims) = self
            .keys
            .authentic_claims(&self.store, now, presented)
            .await?
        else {
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
        let org = self.org_slot(&org_id);
        let policy = self.policy_of(&org).await?;
        let held = self.scopes_with(&policy, &credential);
        let scopes: ScopeSet = claims
            .scope
            .split_whitespace()
            .filter_map(Scope::from_canonical)
            .filter(|scope| held.grants(scope))
            .collect();
        let leeway = i64::try_from(oauth.leeway.as_millis()).unwrap_or(i64::MAX);
        let expires_at = claims.exp.saturating_mul(1_000).saturating_add(leeway);
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

    /// The identity of a credential read from the store: its gate made once here, for
    /// every check of it while it is cached.
    fn identity(&self, credential: Credential, scopes: ScopeSet) -> Identity {
        let gate = Gate::new(&credential, &scopes, self.scope_index.as_ref());
        Identity::new(credential, scopes, gate)
    }

    /// The slot of an organization, made on first use.
    fn org_slot(&self, org: &OrganizationId) -> Arc<OrgSlot> {
        self.orgs
            .entry(org.clone())
            .or_insert_with(|| Arc::new(OrgSlot::new(org.clone())))
            .clone()
    }

    /// The organization's policy: what the slot holds while it is fresh, else read from
    /// the store (and kept in the slot).
    async fn policy_of(&self, slot: &OrgSlot) -> Result<Arc<Policy>, StoreError> {
        let now = self.clock.now_millis();
        if slot.fresh(now, self.cache_ttl_millis).is_some() {
            return Ok(slot.policy.load_full());
        }
        let generation = slot.generation.load(Ordering::Acquire);
        let seq = self.store.organization_change_seq(&slot.id).await?;
        let rules = self.store.ip_rules(&slot.id).await?;
        let roles = self
            .store
            .roles(&slot.id)
            .await?
            .into_iter()
            .map(|role| (role.name, role.scopes))
            .collect();
        let policy = Arc::new(Policy { seq, rules, roles });
        slot.keep(policy.clone(), now, generation);
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
        let policy = self
            .policy_of(&self.org_slot(&credential.organization_id))
            .await?;
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
        let policy = self.policy_of(&self.org_slot(org)).await?;
        Ok(policy.roles.get(name).cloned())
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
        if let Some(slot) = self.orgs.get(org) {
            slot.generation.fetch_add(1, Ordering::AcqRel);
        }
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
        self.orgs.retain(|_, slot| Arc::strong_count(slot) > 1);
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

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_780_000_000_000;
    const TTL: i64 = 800;

    fn policy(seq: i64) -> Arc<Policy> {
        Arc::new(Policy {
            seq,
            ..Policy::default()
        })
    }

    #[test]
    fn an_organization_slot_is_fresh_for_its_lifetime_and_until_a_local_change() {
        let slot = OrgSlot::new(OrganizationId::generate());
        assert!(slot.fresh(T0, TTL).is_none(), "never read");
        slot.keep(policy(7), T0, 0);
        assert_eq!(slot.fresh(T0 + 799, TTL).map(|f| f.seq), Some(7));
        assert!(slot.fresh(T0 + 800, TTL).is_none(), "read too long ago");
        slot.generation.fetch_add(1, Ordering::AcqRel);
        assert!(
            slot.fresh(T0 + 1, TTL).is_none(),
            "changed on this node since"
        );
    }

    #[test]
    fn a_policy_read_before_a_local_change_is_not_kept() {
        let slot = OrgSlot::new(OrganizationId::generate());
        slot.keep(policy(1), T0, 0);
        // A re-read begins under generation 0, a change lands, then the read ends.
        slot.generation.fetch_add(1, Ordering::AcqRel);
        slot.keep(policy(2), T0 + 1, 0);
        assert!(slot.fresh(T0 + 2, TTL).is_none());
        assert_eq!(slot.policy.load().seq, 1, "the stale read was dropped");
        slot.keep(policy(3), T0 + 3, 1);
        assert_eq!(slot.fresh(T0 + 4, TTL).map(|f| f.seq), Some(3));
    }

    #[test]
    fn checks_during_concurrent_re_reads_only_see_whole_policies() {
        let slot = OrgSlot::new(OrganizationId::generate());
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for seq in 0..20_000 {
                    // Every policy read has rules exactly when its counter is odd.
                    let rules = (seq % 2 == 1).then(|| IpRule {
                        id: keyward_core::typeid::IpRuleId::generate(),
                        organization_id: slot.id.clone(),
                        network: "192.0.2.0/25".parse().unwrap(),
                        kind: keyward_core::ip_rule::RuleKind::Deny,
                        description: None,
                        created_at: time::OffsetDateTime::UNIX_EPOCH,
                        created_by: "test".into(),
                        last_matched_at: None,
                        version: 1,
                    });
                    let policy = Policy {
                        seq,
                        rules: rules.into_iter().collect(),
                        roles: HashMap::new(),
                    };
                    slot.keep(Arc::new(policy), T0, 0);
                }
            });
            scope.spawn(|| {
                for _ in 0..20_000 {
                    if let Some(fresh) = slot.fresh(T0, TTL) {
                        assert_eq!(fresh.has_rules, fresh.seq % 2 == 1, "{fresh:?}");
                    }
                }
            });
        });
    }
}
