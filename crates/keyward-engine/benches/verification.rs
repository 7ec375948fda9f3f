//! The in-process verification decision — what the tower layer runs per request — over a
//! million cached credentials: parse and checksum, lookup digest, cache, salted hash in
//! constant time, decision, usage record.
//!
//! `cargo bench -p keyward-engine --bench verification` (release build; about a minute to
//! warm the cache; `KEYWARD_BENCH_CREDENTIALS=1000` for a small cache). Target: ≤ 1 µs
//! median.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::SystemClock;
use keyward_core::credential::{Credential, CredentialSettings, Environment, Organization, Status};
use keyward_core::digest::LookupDigest;
use keyward_core::ip_rule::IpRule;
use keyward_core::member::{Invitation, Member, MemberRole, Session};
use keyward_core::rate_limit::RateLimit;
use keyward_core::scope::{CustomRole, Scope, ScopeCatalogue};
use keyward_core::secret::{KeyPrefix, PlainSecret, SecretKind};
use keyward_core::typeid::{CredentialId, IpRuleId, MessageId, OrganizationId, UserId, WebhookId};
use keyward_core::webhook::Webhook;
use keyward_engine::tokens::StoredKeys;
use keyward_engine::{Client, Demand, EngineConfig, Purpose, RateLimits, Verifier};
use keyward_store::{
    AttemptResult, AuditQuery, AuditStore, BlockedRule, CredentialQuery, CredentialStore,
    CredentialUse, DeliveryRecord, DueDelivery, MemberStore, NewSecret, NoticeStore, OAuthStore,
    OrganizationStore, RevokedToken, RoleStore, RuleMatch, RuleStore, SecretMatch,
    SigningKeyRecord, Store, StoreError, UsageCount, UsageStore, WebhookStore,
};
use time::OffsetDateTime;

/// How many credentials are cached: `KEYWARD_BENCH_CREDENTIALS`, a million by default.
fn credentials() -> usize {
    std::env::var("KEYWARD_BENCH_CREDENTIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

/// The allocator of the `keyward` binary, so the benchmark measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

/// The reads a verification makes, from memory; the benchmark makes no other call.
struct MemoryStore {
    secrets: HashMap<LookupDigest, SecretMatch>,
}

fn unused<T>() -> Result<T, StoreError> {
    Err(StoreError::Internal("not part of this benchmark".into()))
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl OrganizationStore for MemoryStore {
    async fn insert_organization(
        &self,
        _: &Organization,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn organization(&self, _: &OrganizationId) -> Result<Option<Organization>, StoreError> {
        unused()
    }
    async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        unused()
    }

    async fn organization_count(&self) -> Result<u64, StoreError> {
        unused()
    }

    async fn organization_change_seq(&self, _: &OrganizationId) -> Result<i64, StoreError> {
        Ok(0)
    }

    async fn claim_bootstrap(&self, _: OffsetDateTime) -> Result<bool, StoreError> {
        unused()
    }
}

#[async_trait]
impl CredentialStore for MemoryStore {
    async fn insert_credential(
        &self,
        _: &Credential,
        _: &[NewSecret],
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn credential(
        &self,
        _: &OrganizationId,
        _: &CredentialId,
    ) -> Result<Option<Credential>, StoreError> {
        unused()
    }

    async fn credential_by_secret(
        &self,
        lookup: &LookupDigest,
    ) -> Result<Option<SecretMatch>, StoreError> {
        Ok(self.secrets.get(lookup).cloned())
    }

    async fn list_credentials(
        &self,
        _: &OrganizationId,
        _: &CredentialQuery,
    ) -> Result<Vec<Credential>, StoreError> {
        unused()
    }

    async fn update_credential(&self, _: &Credential, _: &AuditEvent) -> Result<(), StoreError> {
        unused()
    }

    async fn previous_secrets_until(
        &self,
        _: &CredentialId,
        _: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        unused()
    }

    async fn rotate_credential(
        &self,
        _: &Credential,
        _: &[NewSecret],
        _: Option<OffsetDateTime>,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }
}

#[async_trait]
impl RuleStore for MemoryStore {
    async fn ip_rules(&self, _: &OrganizationId) -> Result<Vec<IpRule>, StoreError> {
        Ok(Vec::new())
    }

    async fn insert_ip_rule(
        &self,
        _: &IpRule,
        _: usize,
        _: &[IpRule],
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn update_ip_rule(
        &self,
        _: &IpRule,
        _: &[IpRule],
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn delete_ip_rule(
        &self,
        _: &OrganizationId,
        _: &IpRuleId,
        _: &[IpRule],
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }
}

#[async_trait]
impl RoleStore for MemoryStore {
    async fn roles(&self, _: &OrganizationId) -> Result<Vec<CustomRole>, StoreError> {
        Ok(Vec::new())
    }

    async fn insert_role(&self, _: &CustomRole, _: &AuditEvent) -> Result<(), StoreError> {
        unused()
    }
}

#[async_trait]
impl UsageStore for MemoryStore {
    async fn record_credential_uses(&self, _: &[CredentialUse]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn record_rule_matches(&self, _: &[RuleMatch]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn record_old_secret_uses(&self, _: &[CredentialUse]) -> Result<(), StoreError> {
        unused()
    }

    async fn old_secret_use(
        &self,
        _: &CredentialId,
    ) -> Result<Option<(OffsetDateTime, Option<std::net::IpAddr>)>, StoreError> {
        unused()
    }

    async fn record_usage(&self, _: &[UsageCount]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn usage(
        &self,
        _: &CredentialId,
        _: i64,
        _: i64,
        _: i64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        unused()
    }

    async fn organization_usage(
        &self,
        _: &OrganizationId,
        _: i64,
        _: i64,
        _: i64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        unused()
    }

    async fn prune_usage(&self, _: i64) -> Result<(), StoreError> {
        unused()
    }
}

#[async_trait]
impl OAuthStore for MemoryStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        unused()
    }

    async fn insert_signing_key(&self, _: &SigningKeyRecord) -> Result<(), StoreError> {
        unused()
    }

    async fn retire_signing_keys(
        &self,
        _: i64,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn prune_oauth(&self, _: OffsetDateTime) -> Result<(), StoreError> {
        unused()
    }

    async fn revoke_token(&self, _: &RevokedToken, _: &AuditEvent) -> Result<(), StoreError> {
        unused()
    }

    async fn token_revoked(&self, _: &str) -> Result<bool, StoreError> {
        unused()
    }
}

#[async_trait]
impl MemberStore for MemoryStore {
    async fn insert_member(&self, _: &Member, _: &AuditEvent) -> Result<(), StoreError> {
        unused()
    }

    async fn member_by_email(&self, _: &str) -> Result<Option<Member>, StoreError> {
        unused()
    }

    async fn set_member_password(
        &self,
        _: &UserId,
        _: &str,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn insert_session(&self, _: &Session) -> Result<(), StoreError> {
        unused()
    }

    async fn session(&self, _: &LookupDigest) -> Result<Option<(Session, Member)>, StoreError> {
        unused()
    }

    async fn delete_session(&self, _: &LookupDigest) -> Result<(), StoreError> {
        unused()
    }

    async fn members(&self, _: &OrganizationId) -> Result<Vec<Member>, StoreError> {
        unused()
    }

    async fn member_totp(&self, _: &UserId) -> Result<Option<(String, Option<i64>)>, StoreError> {
        unused()
    }

    async fn set_member_totp(
        &self,
        _: &UserId,
        _: Option<&str>,
        _: &[LookupDigest],
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn use_totp_step(&self, _: &UserId, _: i64) -> Result<bool, StoreError> {
        unused()
    }

    async fn use_recovery_code(
        &self,
        _: &UserId,
        _: &LookupDigest,
        _: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        unused()
    }

    async fn recovery_codes_left(&self, _: &UserId) -> Result<i64, StoreError> {
        unused()
    }

    async fn member(&self, _: &OrganizationId, _: &UserId) -> Result<Option<Member>, StoreError> {
        unused()
    }

    async fn set_member_role(
        &self,
        _: &OrganizationId,
        _: &UserId,
        _: MemberRole,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn delete_member(
        &self,
        _: &OrganizationId,
        _: &UserId,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn insert_invitation(&self, _: &Invitation, _: &AuditEvent) -> Result<(), StoreError> {
        unused()
    }

    async fn invitations(&self, _: &OrganizationId) -> Result<Vec<Invitation>, StoreError> {
        unused()
    }

    async fn invitation(&self, _: &LookupDigest) -> Result<Option<Invitation>, StoreError> {
        unused()
    }

    async fn delete_invitation(
        &self,
        _: &OrganizationId,
        _: &LookupDigest,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn accept_invitation(
        &self,
        _: &LookupDigest,
        _: OffsetDateTime,
        _: &Member,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn insert_audit_event(&self, _: &AuditEvent) -> Result<(), StoreError> {
        unused()
    }

    async fn list_audit_events(
        &self,
        _: &OrganizationId,
        _: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        unused()
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    keys: Vec<String>,
    required: Vec<Scope>,
}

fn fixture() -> Fixture {
    let org = OrganizationId::generate();
    let now = OffsetDateTime::now_utc();
    let catalogue = ScopeCatalogue::default();
    let count = credentials();
    let mut secrets = HashMap::with_capacity(count);
    let mut keys = Vec::with_capacity(count);
    for i in 0..count {
        let key =
            PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
        let digests = key.digests();
        let credential = Credential {
            id: CredentialId::generate(),
            organization_id: org.clone(),
            environment: Environment::Live,
            settings: CredentialSettings {
                name: format!("bench {i}"),
                permissions: catalogue
                    .parse_set(&["dns:*", "domains:read"])
                    .unwrap_or_default(),
                ..Default::default()
            },
            status: Status::Active,
            prefix: key.display_prefix().to_owned(),
            hint: key.hint().to_owned(),
            created_at: now,
            created_by: "bench".into(),
            updated_at: now,
            revoked_at: None,
            last_used_at: None,
            last_used_ip: None,
            version: 1,
            token_cutoff: None,
            exposed_at: None,
        };
        let found = SecretMatch {
            credential,
            kind: SecretKind::ApiKey(Environment::Live),
            salted: digests.salted,
            expires_at: None,
            org_change_seq: 0,
        };
        secrets.insert(digests.lookup, found);
        keys.push(key.expose().to_owned());
    }
    let config = EngineConfig {
        cache_capacity: 2 * count as u64,
        cache_ttl: std::time::Duration::from_secs(3600),
        credential_cache_ttl: std::time::Duration::from_secs(3600),
        // Every check passes its limit, as in a deployment sized for its traffic: the
        // benchmark times the accepted path, limiter and usage counting included.
        rate_limits: RateLimits {
            live: RateLimit {
                per_second: 1_000_000,
                burst: 1_000_000,
            },
            ..RateLimits::default()
        },
        ..EngineConfig::default()
    };
    let store = Arc::new(MemoryStore { secrets });
    let published = Arc::new(StoredKeys::new(
        store.clone(),
        config.tokens.key_refresh_interval,
    ));
    let verifier = Verifier::new(store, Arc::new(SystemClock), config, published);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let required = vec![Scope::exact("dns", "write")];
    let demand = Demand {
        scopes: &required,
        ..Demand::default()
    };
    for key in &keys {
        let checked = runtime.block_on(verifier.check(key, &demand, Client::default()));
        assert!(checked.is_ok(), "warming the cache");
    }
    Fixture {
        runtime,
        verifier,
        keys,
        required,
    }
}

/// The fixture, built once for both benchmarks (a million credentials take a minute).
fn shared_fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(fixture)
}

/// Runs a check to completion on this thread: a check of a cached key never waits, so one
/// poll finishes it, as inside a request's task, and no executor's cost is timed (the
/// runtime takes over should a check wait after all).
fn run<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => runtime.block_on(future),
    }
}

/// Times checks of cached keys for `purpose`, keys taken in a scattered order.
fn check_cached_keys(bencher: divan::Bencher, purpose: Purpose) {
    let fixture = shared_fixture();
    // Inside the runtime's context, so a first poll may reach its timers or spawn.
    let _runtime = fixture.runtime.enter();
    let demand = Demand {
        scopes: &fixture.required,
        purpose,
        ..Demand::default()
    };
    let client = Client {
        ip: Some(
            "192.0.2.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        ),
        throttled: true,
        via_query: false,
    };
    let mut i: usize = 0;
    // The key is copied out untimed, as a request's key sits in a buffer just read.
    bencher
        .with_inputs(|| {
            i = (i + 7_919) % fixture.keys.len();
            fixture.keys[i].clone()
        })
        .bench_local_refs(|key| {
            let checked = run(
                &fixture.runtime,
                fixture.verifier.check(key, &demand, client),
            );
            // Only the accepted path is timed: a refusal would be a different benchmark.
            assert!(checked.is_ok(), "every check passes");
        });
}

/// One check of a cached key as verify, authorize and the tower layer make it: with the
/// key's rate limit (GCRA) and its usage counted.
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn check_a_cached_key(bencher: divan::Bencher) {
    check_cached_keys(bencher, Purpose::Use);
}

/// The same check with rate limiting and usage accounting off (issue #6's baseline): the
/// path introspection takes, which neither limits nor counts.
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn check_a_cached_key_uncounted(bencher: divan::Bencher) {
    check_cached_keys(bencher, Purpose::Inspection);
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_webhook(
        &self,
        _: &Webhook,
        _: usize,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn webhook(
        &self,
        _: &OrganizationId,
        _: &WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        unused()
    }

    async fn webhooks(&self, _: &OrganizationId) -> Result<Vec<Webhook>, StoreError> {
        unused()
    }

    async fn update_webhook(&self, _: &Webhook, _: &AuditEvent) -> Result<(), StoreError> {
        unused()
    }

    async fn delete_webhook(
        &self,
        _: &OrganizationId,
        _: &WebhookId,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn enqueue_message(
        &self,
        _: &Webhook,
        _: &MessageId,
        _: &str,
        _: &str,
        _: OffsetDateTime,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn deliveries(
        &self,
        _: &OrganizationId,
        _: &WebhookId,
        _: Option<&MessageId>,
        _: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        unused()
    }

    async fn claim_deliveries(
        &self,
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: &str,
        _: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        unused()
    }

    async fn finish_deliveries(
        &self,
        _: &[AttemptResult],
    ) -> Result<Vec<(WebhookId, Option<OffsetDateTime>)>, StoreError> {
        unused()
    }

    async fn prune_deliveries(&self, _: OffsetDateTime) -> Result<(), StoreError> {
        unused()
    }
}

#[async_trait]
impl NoticeStore for MemoryStore {
    async fn expiry_candidates(
        &self,
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: u32,
    ) -> Result<Vec<Credential>, StoreError> {
        unused()
    }

    async fn record_expiry_notice(
        &self,
        _: &CredentialId,
        _: &str,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }

    async fn blocked_rules(&self, _: OffsetDateTime) -> Result<Vec<BlockedRule>, StoreError> {
        unused()
    }

    async fn record_block_notice(
        &self,
        _: &BlockedRule,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> Result<(), StoreError> {
        unused()
    }
}
