//! The store conformance suite: every implementation of `Store` must pass it.
//!
//! Each test runs against a fresh database of every backend reachable here (`stores`),
//! deleted when the test ends.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use std::net::IpAddr;

use keyward_core::audit::Actor;
use keyward_core::clock::truncate_to_millis;
use keyward_core::credential::{
    Credential, CredentialSettings, DisplayStatus, Environment, Organization, Status, TokenCutoff,
    parse_ip_allowlist,
};
use keyward_core::digest::LookupDigest;
use keyward_core::ip_rule::{IpRule, RuleKind, RulePolicy};
use keyward_core::member::{Invitation, Member, MemberRole, Session, SessionToken};
use keyward_core::scope::{CustomRole, ScopeCatalogue};
use keyward_core::secret::{KeyPrefix, PlainSecret, SecretKind};
use keyward_core::typeid::{CredentialId, IpRuleId, OrganizationId, UserId};
use keyward_store::testing::TestDatabase;
use keyward_store::{
    AuditQuery, AuditStore, Conflict, CredentialQuery, CredentialStore, CredentialUse, MemberStore,
    NewSecret, OAuthStore, OrganizationStore, RevokedToken, RoleStore, RuleMatch, RuleStore,
    SigningKeyRecord, SqlStore, StoreError, UsageCount, UsageStore,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

/// A fresh, migrated store on every backend reachable here: SQLite always, PostgreSQL when
/// its server answers (see `keyward_store::testing`). Each database is deleted with its guard.
async fn stores() -> Vec<(SqlStore, TestDatabase)> {
    let mut stores = Vec::new();
    for database in [Some(TestDatabase::sqlite()), TestDatabase::postgres().await]
        .into_iter()
        .flatten()
    {
        let store = SqlStore::open(database.url()).await.unwrap();
        stores.push((store, database));
    }
    stores
}

fn now() -> OffsetDateTime {
    truncate_to_millis(OffsetDateTime::now_utc())
}

async fn organization(store: &SqlStore) -> Organization {
    let org = Organization {
        id: OrganizationId::generate(),
        name: "Acme".into(),
        created_at: now(),
    };
    let event = Actor::cli().event(
        &org.id,
        now(),
        "organization.created",
        Some(org.id.as_str()),
        Default::default(),
    );
    store.insert_organization(&org, &event).await.unwrap();
    org
}

struct Issued {
    credential: Credential,
    api_key: PlainSecret,
    client_secret: PlainSecret,
}

fn secrets_of(api_key: &PlainSecret, client_secret: &PlainSecret) -> Vec<NewSecret> {
    [api_key, client_secret]
        .iter()
        .map(|s| NewSecret {
            kind: s.kind(),
            digests: s.digests(),
        })
        .collect()
}

async fn credential(
    store: &SqlStore,
    org: &OrganizationId,
    env: Environment,
    settings: CredentialSettings,
) -> Issued {
    let api_key = PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(env));
    let client_secret = PlainSecret::generate(&KeyPrefix::default(), SecretKind::ClientSecret);
    let mut credential = unsaved_credential(org, env, &api_key);
    credential.settings = settings;
    let at = credential.created_at;
    let event = Actor::cli().event(
        org,
        at,
        "key.created",
        Some(credential.id.as_str()),
        Default::default(),
    );
    store
        .insert_credential(&credential, &secrets_of(&api_key, &client_secret), &event)
        .await
        .unwrap();
    Issued {
        credential,
        api_key,
        client_secret,
    }
}

fn named(name: &str) -> CredentialSettings {
    CredentialSettings {
        name: name.into(),
        ..Default::default()
    }
}

fn query(limit: u32) -> CredentialQuery {
    CredentialQuery {
        status: None,
        environment: None,
        owner_id: None,
        before: None,
        search: None,
        hide_revoked: false,
        unused: false,
        expiring_before: None,
        limit,
        now: now(),
    }
}

#[tokio::test]
async fn organizations_are_stored_and_counted() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        assert_eq!(store.organization_count().await.unwrap(), 0);
        let org = organization(&store).await;
        assert_eq!(
            store.organization(&org.id).await.unwrap(),
            Some(org.clone())
        );
        assert_eq!(store.organization_count().await.unwrap(), 1);
        assert_eq!(
            store
                .organization(&OrganizationId::generate())
                .await
                .unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn every_credential_field_round_trips() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let settings = CredentialSettings {
            name: "Production Monitoring".into(),
            description: Some("reads DNS".into()),
            permissions: ScopeCatalogue::default()
                .parse_set(&["dns:read", "domains:*", "read"])
                .unwrap(),
            role: Some("viewer".into()),
            ip_allowlist: parse_ip_allowlist(&["203.0.113.0/24", "2001:db8::/32"]).unwrap(),
            rate_limit_override: Some(25),
            not_before: Some(now() - Duration::hours(1)),
            expires_at: Some(now() + Duration::days(30)),
            metadata: json!({"plan": "pro", "nested": {"a": [1, 2]}})
                .as_object()
                .unwrap()
                .clone(),
            owner_id: Some("customer-42".into()),
        };
        let issued = credential(&store, &org.id, Environment::Test, settings).await;
        let read = store
            .credential(&org.id, &issued.credential.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, issued.credential);

        // A token cutoff, written by an update, reads back to the millisecond.
        let mut cut = read.clone();
        cut.token_cutoff = Some(TokenCutoff {
            set_at: now(),
            ends_at: now() + Duration::minutes(10),
        });
        let event = Actor::cli().event(&org.id, now(), "key.rotated", None, Default::default());
        store.update_credential(&cut, &event).await.unwrap();
        let read = store.credential(&org.id, &cut.id).await.unwrap().unwrap();
        assert_eq!(read.token_cutoff, cut.token_cutoff);
        assert_eq!(read.version, cut.version + 1);
    }
}

#[tokio::test]
async fn a_secret_finds_its_credential_and_only_by_its_digest() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let issued = credential(&store, &org.id, Environment::Live, named("k")).await;
        for secret in [&issued.api_key, &issued.client_secret] {
            let found = store
                .credential_by_secret(&LookupDigest::of(secret.expose()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.credential.id, issued.credential.id);
            assert_eq!(found.kind, secret.kind());
            assert!(found.salted.matches(secret.expose()));
            assert_eq!(found.expires_at, None);
        }
        assert!(
            store
                .credential_by_secret(&LookupDigest::of("kw_live_nothing"))
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn another_organizations_credential_reads_as_missing() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let mine = organization(&store).await;
        let theirs = organization(&store).await;
        let issued = credential(&store, &theirs.id, Environment::Live, named("theirs")).await;
        assert_eq!(
            store
                .credential(&mine.id, &issued.credential.id)
                .await
                .unwrap(),
            None
        );
        assert!(
            store
                .list_credentials(&mine.id, &query(10))
                .await
                .unwrap()
                .is_empty()
        );
        let mut changed = issued.credential.clone();
        changed.organization_id = mine.id.clone();
        let event = Actor::cli().event(&mine.id, now(), "key.updated", None, Default::default());
        assert!(matches!(
            store.update_credential(&changed, &event).await,
            Err(StoreError::NotFound)
        ));
    }
}

#[tokio::test]
async fn a_duplicate_secret_digest_is_a_conflict() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let issued = credential(&store, &org.id, Environment::Live, named("a")).await;
        let mut copy = issued.credential.clone();
        copy.id = CredentialId::generate();
        let event = Actor::cli().event(&org.id, now(), "key.created", None, Default::default());
        let result = store
            .insert_credential(
                &copy,
                &secrets_of(&issued.api_key, &issued.client_secret),
                &event,
            )
            .await;
        assert!(
            matches!(result, Err(StoreError::Conflict(Conflict::Unique))),
            "{result:?}"
        );
        assert_eq!(
            store.credential(&org.id, &copy.id).await.unwrap(),
            None,
            "the failed insert left nothing"
        );
    }
}

#[tokio::test]
async fn a_stale_update_is_refused_and_loses_nothing() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let issued = credential(&store, &org.id, Environment::Live, named("before")).await;
        let event = Actor::cli().event(&org.id, now(), "key.updated", None, Default::default());
        let mut first = issued.credential.clone();
        first.settings.name = "first".into();
        store.update_credential(&first, &event).await.unwrap();
        let mut second = issued.credential.clone();
        second.settings.name = "second".into();
        let result = store.update_credential(&second, &event).await;
        assert_version_conflict(result);
        let read = store
            .credential(&org.id, &issued.credential.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.settings.name, "first");
        assert_eq!(read.version, issued.credential.version + 1);
    }
}

#[tokio::test]
async fn listing_filters_and_pages_newest_first() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let mut ids = Vec::new();
        for i in 0..7 {
            let env = if i % 2 == 0 {
                Environment::Live
            } else {
                Environment::Test
            };
            let mut settings = named(&format!("k{i}"));
            settings.owner_id = Some(format!("owner-{}", i % 3));
            ids.push(
                credential(&store, &org.id, env, settings)
                    .await
                    .credential
                    .id,
            );
        }
        ids.reverse();
        let mut seen = Vec::new();
        let mut page = query(3);
        loop {
            let batch = store.list_credentials(&org.id, &page).await.unwrap();
            if batch.is_empty() {
                break;
            }
            page.before = batch.last().map(|c| c.id.clone());
            seen.extend(batch.into_iter().map(|c| c.id));
        }
        assert_eq!(seen, ids);

        let live = store
            .list_credentials(
                &org.id,
                &CredentialQuery {
                    environment: Some(Environment::Test),
                    ..query(10)
                },
            )
            .await
            .unwrap();
        assert_eq!(live.len(), 3);
        assert!(live.iter().all(|c| c.environment == Environment::Test));
        let owned = store
            .list_credentials(
                &org.id,
                &CredentialQuery {
                    owner_id: Some("owner-0".into()),
                    ..query(10)
                },
            )
            .await
            .unwrap();
        assert_eq!(owned.len(), 3);
    }
}

#[tokio::test]
async fn a_search_matches_ids_owners_and_parts_of_names_literally() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let mut names = Vec::new();
        for (name, owner) in [
            ("Billing sync", "cust-1"),
            ("Mobile app", "cust-2"),
            ("100% coverage_job", "cust-3"),
            ("École batch", "cust-4"),
        ] {
            let mut settings = named(name);
            settings.owner_id = Some(owner.into());
            let made = credential(&store, &org.id, Environment::Live, settings).await;
            names.push(made.credential);
        }
        let found = |text: &str| {
            let (store, org, text) = (store.clone(), org.id.clone(), text.to_owned());
            async move {
                let q = CredentialQuery {
                    search: Some(text),
                    ..query(10)
                };
                let mut names: Vec<String> = store
                    .list_credentials(&org, &q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.settings.name)
                    .collect();
                names.sort();
                names
            }
        };
        assert_eq!(found("BILLING").await, ["Billing sync"]);
        assert_eq!(found("app").await, ["Mobile app"]);
        assert_eq!(found("cust-2").await, ["Mobile app"]);
        assert_eq!(found(names[0].id.as_str()).await, ["Billing sync"]);
        // Wildcards of LIKE are plain characters here.
        assert_eq!(found("%").await, ["100% coverage_job"]);
        assert_eq!(found("e_j").await, ["100% coverage_job"]);
        assert!(found("cust-").await.is_empty(), "owner ids match whole");
        assert_eq!(found("École").await, ["École batch"]);
    }
}

#[tokio::test]
async fn status_filters_derive_expiry_from_the_time_given() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let mut soon = named("soon");
        soon.expires_at = Some(now() + Duration::hours(1));
        let expiring = credential(&store, &org.id, Environment::Live, soon)
            .await
            .credential;
        let forever = credential(&store, &org.id, Environment::Live, named("forever"))
            .await
            .credential;
        let mut revoked = credential(&store, &org.id, Environment::Live, named("gone"))
            .await
            .credential;
        revoked.status = Status::Revoked;
        revoked.revoked_at = Some(now());
        let event = Actor::cli().event(&org.id, now(), "key.revoked", None, Default::default());
        store.update_credential(&revoked, &event).await.unwrap();

        let ids = |status, at| {
            let store = store.clone();
            let org = org.id.clone();
            async move {
                let q = CredentialQuery {
                    status: Some(status),
                    now: at,
                    ..query(10)
                };
                store
                    .list_credentials(&org, &q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            ids(DisplayStatus::Active, now()).await,
            [forever.id.clone(), expiring.id.clone()]
        );
        assert_eq!(
            ids(DisplayStatus::Expired, now()).await,
            Vec::<CredentialId>::new()
        );
        let later = now() + Duration::hours(2);
        assert_eq!(
            ids(DisplayStatus::Active, later).await,
            vec![forever.id.clone()]
        );
        assert_eq!(
            ids(DisplayStatus::Expired, later).await,
            vec![expiring.id.clone()]
        );
        assert_eq!(
            ids(DisplayStatus::Revoked, later).await,
            [revoked.id.clone()]
        );
        assert_eq!(
            ids(DisplayStatus::Disabled, later).await,
            Vec::<CredentialId>::new()
        );
        // Archived: every credential but the revoked one.
        let unarchived: Vec<CredentialId> = store
            .list_credentials(
                &org.id,
                &CredentialQuery {
                    hide_revoked: true,
                    ..query(10)
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(unarchived, [forever.id.clone(), expiring.id.clone()]);
    }
}

#[tokio::test]
async fn rotation_replaces_secrets_at_once_or_after_a_grace_that_never_grows() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let issued = credential(&store, &org.id, Environment::Live, named("r")).await;
        let event = || Actor::cli().event(&org.id, now(), "key.rotated", None, Default::default());
        let find = |secret: &PlainSecret| {
            let store = store.clone();
            let digest = LookupDigest::of(secret.expose());
            async move { store.credential_by_secret(&digest).await.unwrap() }
        };

        // With a grace period the old secrets stay, ending at the given time.
        let grace_end = now() + Duration::hours(1);
        let key2 =
            PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
        let cs2 = PlainSecret::generate(&KeyPrefix::default(), SecretKind::ClientSecret);
        let mut c = issued.credential.clone();
        store
            .rotate_credential(&c, &secrets_of(&key2, &cs2), Some(grace_end), &event())
            .await
            .unwrap();
        assert_eq!(
            find(&issued.api_key).await.unwrap().expires_at,
            Some(grace_end)
        );
        assert_eq!(
            find(&issued.client_secret).await.unwrap().expires_at,
            Some(grace_end)
        );
        assert_eq!(find(&key2).await.unwrap().expires_at, None);

        // A second rotation with a longer grace does not extend the first one's old secrets.
        c.version += 1;
        let key3 =
            PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
        let cs3 = PlainSecret::generate(&KeyPrefix::default(), SecretKind::ClientSecret);
        store
            .rotate_credential(
                &c,
                &secrets_of(&key3, &cs3),
                Some(grace_end + Duration::hours(5)),
                &event(),
            )
            .await
            .unwrap();
        assert_eq!(
            find(&issued.api_key).await.unwrap().expires_at,
            Some(grace_end)
        );
        assert_eq!(
            find(&key2).await.unwrap().expires_at,
            Some(grace_end + Duration::hours(5))
        );

        // Without a grace period every old secret ends at once, at the rotation, and stays
        // to be told apart from an unknown one.
        c.version += 1;
        let key4 =
            PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
        let cs4 = PlainSecret::generate(&KeyPrefix::default(), SecretKind::ClientSecret);
        store
            .rotate_credential(&c, &secrets_of(&key4, &cs4), None, &event())
            .await
            .unwrap();
        for old in [&issued.api_key, &key2, &key3, &cs2] {
            let ended = find(old).await.unwrap().expires_at.unwrap();
            assert!(ended <= c.updated_at, "{ended} after {}", c.updated_at);
        }
        assert!(find(&key4).await.is_some() && find(&cs4).await.is_some());

        // A rotation from a stale read changes nothing.
        let key5 =
            PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
        let result = store
            .rotate_credential(&c, &secrets_of(&key5, &cs4), None, &event())
            .await;
        assert_version_conflict(result);
        assert!(find(&key4).await.is_some() && find(&key5).await.is_none());
    }
}

#[tokio::test]
async fn audit_events_append_and_list_per_organization() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let other = organization(&store).await;
        let issued = credential(&store, &org.id, Environment::Live, named("a")).await;
        let actor = Actor {
            id: issued.credential.id.to_string(),
            source_ip: Some("192.0.2.1".parse::<IpAddr>().unwrap()),
            via: None,
        };
        let details = json!({"reason": "test"}).as_object().unwrap().clone();
        let event = actor.event(
            &org.id,
            now(),
            "key.revoked",
            Some(issued.credential.id.as_str()),
            details,
        );
        store.insert_audit_event(&event).await.unwrap();

        let all = store
            .list_audit_events(
                &org.id,
                &AuditQuery {
                    action: None,
                    target_id: None,
                    before: None,
                    limit: 10,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["key.revoked", "key.created", "organization.created"]
        );
        assert_eq!(all[0], event);
        let revoked = store
            .list_audit_events(
                &org.id,
                &AuditQuery {
                    action: Some("key.revoked".into()),
                    target_id: None,
                    before: None,
                    limit: 10,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(revoked, vec![event.clone()]);
        let page2 = store
            .list_audit_events(
                &org.id,
                &AuditQuery {
                    action: None,
                    target_id: None,
                    before: Some(all[0].id.clone()),
                    limit: 1,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page2[0].action, "key.created");
        let others = store
            .list_audit_events(
                &other.id,
                &AuditQuery {
                    action: None,
                    target_id: None,
                    before: None,
                    limit: 10,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(others.len(), 1);
    }
}

#[tokio::test]
async fn concurrent_writes_commit_together_and_fail_alone() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let existing = credential(&store, &org.id, Environment::Live, named("existing")).await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            let org = org.id.clone();
            // Every tenth write reuses an existing secret and must fail; the others must not.
            let reused =
                (i % 10 == 3).then(|| secrets_of(&existing.api_key, &existing.client_secret));
            tasks.push(tokio::spawn(async move {
                let api_key = PlainSecret::generate(
                    &KeyPrefix::default(),
                    SecretKind::ApiKey(Environment::Live),
                );
                let client_secret =
                    PlainSecret::generate(&KeyPrefix::default(), SecretKind::ClientSecret);
                let mut credential = unsaved_credential(&org, Environment::Live, &api_key);
                credential.settings.name = format!("c{i}");
                let event = Actor::cli().event(
                    &org,
                    now(),
                    "key.created",
                    Some(credential.id.as_str()),
                    Default::default(),
                );
                let secrets = reused.unwrap_or_else(|| secrets_of(&api_key, &client_secret));
                (
                    credential.id.clone(),
                    store.insert_credential(&credential, &secrets, &event).await,
                )
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let (id, result) = task.await.unwrap();
            let stored = store.credential(&org.id, &id).await.unwrap();
            if i % 10 == 3 {
                assert!(
                    matches!(result, Err(StoreError::Conflict(Conflict::Unique))),
                    "{i}: {result:?}"
                );
                assert!(stored.is_none(), "{i}: a failed write left a row");
            } else {
                assert!(result.is_ok(), "{i}: {result:?}");
                assert!(stored.is_some(), "{i}: an acknowledged write is missing");
            }
        }
    }
}

/// A new active credential record for `api_key`, not yet stored.
fn unsaved_credential(org: &OrganizationId, env: Environment, api_key: &PlainSecret) -> Credential {
    let at = now();
    Credential {
        id: CredentialId::generate(),
        organization_id: org.clone(),
        environment: env,
        settings: named("x"),
        status: Status::Active,
        prefix: api_key.display_prefix().to_owned(),
        hint: api_key.hint().to_owned(),
        created_at: at,
        created_by: "cli".into(),
        updated_at: at,
        revoked_at: None,
        last_used_at: None,
        last_used_ip: None,
        version: 1,
        token_cutoff: None,
        exposed_at: None,
    }
}

#[tokio::test]
async fn exactly_one_concurrent_caller_claims_the_bootstrap() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let claims: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.claim_bootstrap(now()).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for claim in claims {
            won += usize::from(claim.await.unwrap());
        }
        assert_eq!(won, 1);
        assert!(!store.claim_bootstrap(now()).await.unwrap());
    }
}

/// A custom role of `org` holding `scopes`, made by the CLI now, without a description.
fn custom_role(org: &OrganizationId, name: &str, scopes: &[&str]) -> CustomRole {
    CustomRole {
        organization_id: org.clone(),
        name: name.into(),
        description: None,
        scopes: ScopeCatalogue::default().parse_set(scopes).unwrap(),
        created_at: now(),
        created_by: "cli".into(),
    }
}

fn ip_rule(org: &OrganizationId, net: &str, kind: RuleKind) -> IpRule {
    IpRule {
        id: IpRuleId::generate(),
        organization_id: org.clone(),
        network: RulePolicy::default().parse_network(net).unwrap(),
        kind,
        description: Some(format!("{kind:?} {net}")),
        created_at: now(),
        created_by: "cli".into(),
        last_matched_at: None,
        version: 1,
    }
}

fn event(org: &OrganizationId, action: &str) -> keyward_core::audit::AuditEvent {
    Actor::cli().event(org, now(), action, None, Default::default())
}

#[tokio::test]
async fn ip_rules_are_kept_per_organization_within_the_limit() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let other = organization(&store).await;
        let first = ip_rule(&org.id, "192.0.2.0/25", RuleKind::Allow);
        store
            .insert_ip_rule(
                &first,
                3,
                &rules(&store, &org.id).await,
                &event(&org.id, "ip_rule.added"),
            )
            .await
            .unwrap();
        // Concurrent inserts never pass the limit (each starting over, as the API does,
        // when another came between its read of the rules and its write).
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let (store, org) = (store.clone(), org.id.clone());
                tokio::spawn(async move {
                    let rule = ip_rule(&org, &format!("198.51.100.{i}"), RuleKind::Deny);
                    for _ in 0..100 {
                        let seen = rules(&store, &org).await;
                        match store
                            .insert_ip_rule(&rule, 3, &seen, &event(&org, "ip_rule.added"))
                            .await
                        {
                            Err(StoreError::Conflict(Conflict::Version)) => continue,
                            other => return other,
                        }
                    }
                    panic!("100 inserts in a row found the rules changed")
                })
            })
            .collect();
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => {}
                Err(StoreError::Conflict(Conflict::RuleLimit)) => refused += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(refused, 4);
        let kept = store.ip_rules(&org.id).await.unwrap();
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0], first);
        assert!(store.ip_rules(&other.id).await.unwrap().is_empty());

        let mut changed = first.clone();
        changed.kind = RuleKind::Deny;
        changed.description = None;
        store
            .update_ip_rule(
                &changed,
                &rules(&store, &org.id).await,
                &event(&org.id, "ip_rule.updated"),
            )
            .await
            .unwrap();
        let stale = store
            .update_ip_rule(
                &first,
                &rules(&store, &org.id).await,
                &event(&org.id, "ip_rule.updated"),
            )
            .await;
        assert_version_conflict(stale);
        changed.version += 1;
        assert_eq!(store.ip_rules(&org.id).await.unwrap()[0], changed);
        let mut theirs = changed.clone();
        theirs.organization_id = other.id.clone();
        assert!(matches!(
            store
                .update_ip_rule(
                    &theirs,
                    &rules(&store, &other.id).await,
                    &event(&other.id, "x")
                )
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store
                .delete_ip_rule(
                    &other.id,
                    &first.id,
                    &rules(&store, &other.id).await,
                    &event(&other.id, "x")
                )
                .await,
            Err(StoreError::NotFound)
        ));

        let at = now();
        store
            .record_rule_matches(&[RuleMatch {
                rule: first.id.clone(),
                matched_at: at,
                blocked_at: None,
            }])
            .await
            .unwrap();
        store
            .record_rule_matches(&[RuleMatch {
                rule: first.id.clone(),
                matched_at: at - Duration::minutes(5),
                blocked_at: None,
            }])
            .await
            .unwrap();
        assert_eq!(
            store.ip_rules(&org.id).await.unwrap()[0].last_matched_at,
            Some(at),
            "only forward"
        );

        store
            .delete_ip_rule(
                &org.id,
                &first.id,
                &rules(&store, &org.id).await,
                &event(&org.id, "ip_rule.removed"),
            )
            .await
            .unwrap();
        assert_eq!(store.ip_rules(&org.id).await.unwrap().len(), 2);
    }
}

/// Asserts that a write found another change between its read and itself.
fn assert_version_conflict(result: Result<(), StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Conflict(Conflict::Version))),
        "{result:?}"
    );
}

/// The organization's rules, as a rule write is judged against them.
async fn rules(store: &SqlStore, org: &OrganizationId) -> Vec<IpRule> {
    store.ip_rules(org).await.unwrap()
}

#[tokio::test]
async fn ip_rule_writes_fail_once_the_rules_changed_since_their_read() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let seen = rules(&store, &org.id).await;
        let first = ip_rule(&org.id, "192.0.2.0/25", RuleKind::Allow);
        store
            .insert_ip_rule(&first, 5, &seen, &event(&org.id, "ip_rule.added"))
            .await
            .unwrap();
        // Every write judged against the rules as they were before that insert fails and
        // leaves the rules as they are.
        let second = ip_rule(&org.id, "198.51.100.7", RuleKind::Deny);
        assert_version_conflict(
            store
                .insert_ip_rule(&second, 5, &seen, &event(&org.id, "ip_rule.added"))
                .await,
        );
        let mut changed = first.clone();
        changed.kind = RuleKind::Deny;
        assert_version_conflict(
            store
                .update_ip_rule(&changed, &seen, &event(&org.id, "ip_rule.updated"))
                .await,
        );
        let current = rules(&store, &org.id).await;
        assert_eq!(current, std::slice::from_ref(&first));
        store
            .update_ip_rule(&changed, &current, &event(&org.id, "ip_rule.updated"))
            .await
            .unwrap();
        // So does one judged against a rule's older version.
        let delete_first = |seen: Vec<IpRule>| {
            let (store, org, id) = (store.clone(), org.id.clone(), first.id.clone());
            async move {
                store
                    .delete_ip_rule(&org, &id, &seen, &event(&org, "ip_rule.removed"))
                    .await
            }
        };
        assert_version_conflict(delete_first(current).await);
        // A change to a credential or a role of the organization is not a change to its
        // rules, though it moves the same change counter.
        let issued = credential(&store, &org.id, Environment::Live, named("busy")).await;
        let mut renamed = issued.credential.clone();
        renamed.settings.name = "renamed".into();
        let current = rules(&store, &org.id).await;
        store
            .update_credential(&renamed, &event(&org.id, "key.updated"))
            .await
            .unwrap();
        let role = custom_role(&org.id, "auditor", &["audit_log:read"]);
        store
            .insert_role(&role, &event(&org.id, "role.created"))
            .await
            .unwrap();
        delete_first(current).await.unwrap();
        assert!(rules(&store, &org.id).await.is_empty());
    }
}

#[tokio::test]
async fn credential_uses_only_move_last_used_forward() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let issued = credential(&store, &org.id, Environment::Live, named("used")).await;
        let id = issued.credential.id.clone();
        let at = now();
        let ip: IpAddr = "203.0.113.4".parse().unwrap();
        let uses = [
            CredentialUse {
                credential_id: id.clone(),
                at,
                ip: Some(ip),
            },
            CredentialUse {
                credential_id: id.clone(),
                at: at - Duration::minutes(1),
                ip: None,
            },
        ];
        store.record_credential_uses(&uses).await.unwrap();
        let read = store.credential(&org.id, &id).await.unwrap().unwrap();
        assert_eq!((read.last_used_at, read.last_used_ip), (Some(at), Some(ip)));
        assert_eq!(
            read.version, issued.credential.version,
            "a use is not a change"
        );

        // Several credentials at once, in statements of more than one size: each gets its
        // own time and address.
        let mut many = Vec::new();
        for i in 0..12u8 {
            let issued = credential(&store, &org.id, Environment::Live, named("many")).await;
            many.push(CredentialUse {
                credential_id: issued.credential.id,
                at: at - Duration::seconds(i.into()),
                ip: Some(IpAddr::from([198, 51, 100, i])),
            });
        }
        store.record_credential_uses(&many).await.unwrap();
        for u in &many {
            let read = store
                .credential(&org.id, &u.credential_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((read.last_used_at, read.last_used_ip), (Some(u.at), u.ip));
        }
    }
}

#[tokio::test]
async fn custom_roles_are_unique_per_organization() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let other = organization(&store).await;
        let role = CustomRole {
            description: Some("reads domains".into()),
            ..custom_role(&org.id, "support", &["domains:read", "dns:*"])
        };
        store
            .insert_role(&role, &event(&org.id, "role.created"))
            .await
            .unwrap();
        let again = store
            .insert_role(&role, &event(&org.id, "role.created"))
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict(Conflict::Unique))),
            "{again:?}"
        );
        let mut same_name = role.clone();
        same_name.organization_id = other.id.clone();
        store
            .insert_role(&same_name, &event(&other.id, "role.created"))
            .await
            .unwrap();
        assert_eq!(store.roles(&org.id).await.unwrap(), vec![role]);
    }
}

#[tokio::test]
async fn the_organization_change_counter_moves_with_every_change_but_creation() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let seq = || {
            let (store, org) = (store.clone(), org.id.clone());
            async move { store.organization_change_seq(&org).await.unwrap() }
        };
        assert_eq!(seq().await, 0);
        let issued = credential(&store, &org.id, Environment::Live, named("counted")).await;
        let uses = [CredentialUse {
            credential_id: issued.credential.id.clone(),
            at: now(),
            ip: None,
        }];
        store.record_credential_uses(&uses).await.unwrap();
        assert_eq!(
            seq().await,
            0,
            "creating a key or using it changes nothing cached"
        );
        let found = store
            .credential_by_secret(&LookupDigest::of(issued.api_key.expose()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.org_change_seq, 0);

        let mut changed = issued.credential.clone();
        changed.settings.name = "renamed".into();
        store
            .update_credential(&changed, &event(&org.id, "key.updated"))
            .await
            .unwrap();
        assert_eq!(seq().await, 1);
        let rule = ip_rule(&org.id, "192.0.2.0/25", RuleKind::Allow);
        store
            .insert_ip_rule(&rule, 5, &[], &event(&org.id, "ip_rule.added"))
            .await
            .unwrap();
        store
            .delete_ip_rule(
                &org.id,
                &rule.id,
                &store.ip_rules(&org.id).await.unwrap(),
                &event(&org.id, "ip_rule.removed"),
            )
            .await
            .unwrap();
        assert_eq!(seq().await, 3);
        let found = store
            .credential_by_secret(&LookupDigest::of(issued.api_key.expose()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.org_change_seq, 3);
        assert_eq!(
            store
                .organization_change_seq(&OrganizationId::generate())
                .await
                .unwrap(),
            0
        );
    }
}

fn signing_key(generation: i64, at: OffsetDateTime) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: format!("kid-{generation}"),
        generation,
        algorithm: "ES256".into(),
        public_jwk: r#"{"kty":"EC"}"#.into(),
        sealed_private_key: Some(format!("sealed-{generation}")),
        created_at: at,
        activates_at: at + Duration::minutes(10),
        retired_at: None,
        published_until: None,
    }
}

#[tokio::test]
async fn signing_keys_take_one_generation_each_retire_and_are_pruned() {
    for (store, _db) in stores().await {
        let t0 = now();
        let first = signing_key(1, t0);
        store.insert_signing_key(&first).await.unwrap();
        assert_eq!(store.signing_keys().await.unwrap(), vec![first.clone()]);

        // Two nodes making the next key at once: one wins, the other sees a conflict.
        let mut rival = signing_key(2, t0);
        rival.kid = "kid-2-rival".into();
        store.insert_signing_key(&signing_key(2, t0)).await.unwrap();
        assert!(matches!(
            store.insert_signing_key(&rival).await,
            Err(StoreError::Conflict(_))
        ));

        let until = t0 + Duration::hours(1);
        store.retire_signing_keys(2, t0, until).await.unwrap();
        let keys = store.signing_keys().await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys[0].sealed_private_key, None,
            "the private key is erased"
        );
        assert_eq!(keys[0].retired_at, Some(t0));
        assert_eq!(keys[0].published_until, Some(until));
        assert_eq!(keys[1].sealed_private_key.as_deref(), Some("sealed-2"));
        assert_eq!(keys[1].retired_at, None);

        store.prune_oauth(until).await.unwrap();
        assert_eq!(
            store.signing_keys().await.unwrap().len(),
            2,
            "kept through its last day"
        );
        store
            .prune_oauth(until + Duration::seconds(1))
            .await
            .unwrap();
        let keys = store.signing_keys().await.unwrap();
        assert_eq!(
            keys.iter().map(|k| k.generation).collect::<Vec<_>>(),
            vec![2]
        );
    }
}

#[tokio::test]
async fn a_revoked_token_is_remembered_until_it_expires_and_moves_the_counter() {
    for (store, _db) in stores().await {
        let org = organization(&store).await;
        let t0 = now();
        let token = RevokedToken {
            jti: "jti-1".into(),
            organization_id: org.id.clone(),
            credential_id: CredentialId::generate(),
            expires_at: t0 + Duration::hours(1),
            revoked_at: t0,
        };
        let event = Actor::cli().event(&org.id, t0, "token.revoked", None, Default::default());
        let before = store.organization_change_seq(&org.id).await.unwrap();
        assert!(!store.token_revoked("jti-1").await.unwrap());
        store.revoke_token(&token, &event).await.unwrap();
        assert!(store.token_revoked("jti-1").await.unwrap());
        let after = store.organization_change_seq(&org.id).await.unwrap();
        assert!(
            after > before,
            "other nodes learn of it through the counter"
        );

        // Revoking again changes nothing and records no second event.
        store.revoke_token(&token, &event).await.unwrap();
        assert_eq!(store.organization_change_seq(&org.id).await.unwrap(), after);
        let query = AuditQuery {
            action: Some("token.revoked".into()),
            target_id: None,
            before: None,
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(
            store
                .list_audit_events(&org.id, &query)
                .await
                .unwrap()
                .len(),
            1
        );

        store.prune_oauth(t0 + Duration::hours(2)).await.unwrap();
        assert!(
            !store.token_revoked("jti-1").await.unwrap(),
            "pruned after expiry"
        );
    }
}

#[tokio::test]
async fn usage_counts_add_up_per_minute_sum_per_bucket_and_are_pruned() {
    for (store, _db) in stores().await {
        let id = CredentialId::generate();
        let other = CredentialId::generate();
        let count =
            |credential: &CredentialId, minute: i64, outcome: &str, n: i64, q: i64| UsageCount {
                credential_id: credential.clone(),
                minute,
                outcome: outcome.into(),
                count: n,
                via_query: q,
            };
        store
            .record_usage(&[
                count(&id, 100, "VALID", 3, 1),
                count(&id, 101, "VALID", 2, 0),
                count(&id, 101, "IP_DENIED", 1, 0),
                count(&other, 100, "VALID", 9, 0),
            ])
            .await
            .unwrap();
        // A second batch adds to the same rows, a row given twice counting twice.
        store
            .record_usage(&[
                count(&id, 100, "VALID", 3, 1),
                count(&id, 100, "VALID", 1, 1),
            ])
            .await
            .unwrap();
        // More rows than one statement takes, in statements of every size: every one is
        // written.
        let many: Vec<UsageCount> = (0..461)
            .map(|i| count(&other, 10_000 + i, "VALID", i + 1, 0))
            .collect();
        store.record_usage(&many).await.unwrap();
        let written = store.usage(&other, 10_000, 10_461, 1).await.unwrap();
        assert_eq!(written, many);
        let minutes = store.usage(&id, 0, 1_000, 1).await.unwrap();
        assert_eq!(
            minutes,
            vec![
                count(&id, 100, "VALID", 7, 3),
                count(&id, 101, "IP_DENIED", 1, 0),
                count(&id, 101, "VALID", 2, 0),
            ]
        );
        let hours = store.usage(&id, 60, 120, 60).await.unwrap();
        assert_eq!(
            hours,
            vec![
                count(&id, 60, "IP_DENIED", 1, 0),
                count(&id, 60, "VALID", 9, 3)
            ]
        );
        assert!(
            store.usage(&id, 102, 200, 1).await.unwrap().is_empty(),
            "window bounds"
        );
        store.prune_usage(101).await.unwrap();
        assert_eq!(store.usage(&id, 0, 1_000, 1).await.unwrap().len(), 2);
        assert_eq!(store.usage(&other, 0, 1_000, 1).await.unwrap(), vec![]);
    }
}

#[tokio::test]
async fn members_have_unique_emails_and_a_new_password_ends_their_sessions() {
    for (store, _db) in stores().await {
        let org = organization(&store).await;
        let t0 = now();
        let member = Member {
            id: UserId::generate(),
            organization_id: org.id.clone(),
            email: "ada@example.com".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created_at: t0,
            password_changed_at: t0,
            role: MemberRole::Owner,
            last_login_at: None,
            second_factor: false,
        };
        store
            .insert_member(&member, &event(&org.id, "member.added"))
            .await
            .unwrap();
        let twin = Member {
            id: UserId::generate(),
            ..member.clone()
        };
        assert!(matches!(
            store
                .insert_member(&twin, &event(&org.id, "member.added"))
                .await,
            Err(StoreError::Conflict(Conflict::Unique))
        ));
        assert_eq!(
            store.member_by_email("ada@example.com").await.unwrap(),
            Some(member.clone())
        );
        assert_eq!(
            store.member_by_email("bob@example.com").await.unwrap(),
            None
        );

        // Sessions: found by digest only, an ended one swept at the member's next login.
        let old = SessionToken::generate();
        let ended = Session {
            digest: old.digest(),
            user_id: member.id.clone(),
            created_at: t0 - Duration::hours(13),
            expires_at: t0 - Duration::hours(1),
        };
        store.insert_session(&ended).await.unwrap();
        let token = SessionToken::generate();
        let session = Session {
            digest: token.digest(),
            user_id: member.id.clone(),
            created_at: t0,
            expires_at: t0 + Duration::hours(12),
        };
        store.insert_session(&session).await.unwrap();
        // A login is the member's last.
        let member = Member {
            last_login_at: Some(t0),
            ..member
        };
        assert_eq!(
            store.session(&token.digest()).await.unwrap(),
            Some((session.clone(), member.clone()))
        );
        assert_eq!(store.session(&old.digest()).await.unwrap(), None);
        let near_miss = LookupDigest::of(&token.expose().to_uppercase());
        assert_eq!(store.session(&near_miss).await.unwrap(), None);

        // Logout ends one session; a new password ends all of them and is audited.
        let other = SessionToken::generate();
        store
            .insert_session(&Session {
                digest: other.digest(),
                ..session.clone()
            })
            .await
            .unwrap();
        store.delete_session(&token.digest()).await.unwrap();
        assert_eq!(store.session(&token.digest()).await.unwrap(), None);
        assert!(store.session(&other.digest()).await.unwrap().is_some());
        let t1 = t0 + Duration::minutes(5);
        store
            .set_member_password(
                &member.id,
                "$argon2id$new",
                t1,
                &event(&org.id, "member.password_set"),
            )
            .await
            .unwrap();
        assert_eq!(store.session(&other.digest()).await.unwrap(), None);
        let changed = store
            .member_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.password_hash, "$argon2id$new");
        assert_eq!(changed.password_changed_at, t1);
        assert!(matches!(
            store
                .set_member_password(
                    &UserId::generate(),
                    "x",
                    t1,
                    &event(&org.id, "member.password_set")
                )
                .await,
            Err(StoreError::NotFound)
        ));
        let query = AuditQuery {
            action: Some("member.password_set".into()),
            target_id: None,
            before: None,
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(
            store
                .list_audit_events(&org.id, &query)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

fn member(org: &OrganizationId, email: &str, role: MemberRole) -> Member {
    Member {
        id: UserId::generate(),
        organization_id: org.clone(),
        email: email.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: now(),
        password_changed_at: now(),
        role,
        last_login_at: None,
        second_factor: false,
    }
}

#[tokio::test]
async fn an_organization_keeps_an_owner_however_its_members_change() {
    for (store, _db) in stores().await {
        let org = organization(&store).await;
        let other = organization(&store).await;
        let owner = member(&org.id, "owner@example.com", MemberRole::Owner);
        let admin = member(&org.id, "admin@example.com", MemberRole::Admin);
        for m in [&owner, &admin] {
            store
                .insert_member(m, &event(&org.id, "member.added"))
                .await
                .unwrap();
        }
        let change = |id: &UserId, role| {
            let (store, org, id) = (store.clone(), org.id.clone(), id.clone());
            async move {
                store
                    .set_member_role(&org, &id, role, &event(&org, "member.role_changed"))
                    .await
            }
        };
        assert!(matches!(
            change(&owner.id, MemberRole::Viewer).await,
            Err(StoreError::Conflict(Conflict::LastOwner))
        ));
        assert!(matches!(
            store
                .delete_member(&org.id, &owner.id, &event(&org.id, "member.removed"))
                .await,
            Err(StoreError::Conflict(Conflict::LastOwner))
        ));
        // Another organization's id reads as missing.
        assert!(matches!(
            store
                .set_member_role(
                    &other.id,
                    &admin.id,
                    MemberRole::Owner,
                    &event(&other.id, "x")
                )
                .await,
            Err(StoreError::NotFound)
        ));
        // Two owners demoting each other at once: one of them stays owner.
        change(&admin.id, MemberRole::Owner).await.unwrap();
        let (a, b) = tokio::join!(
            change(&owner.id, MemberRole::Developer),
            change(&admin.id, MemberRole::Developer)
        );
        assert!(
            a.is_ok() != b.is_ok(),
            "exactly one demotion succeeds: {a:?} {b:?}"
        );
        let members = store.members(&org.id).await.unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(
            members
                .iter()
                .filter(|m| m.role == MemberRole::Owner)
                .count(),
            1
        );
        // Removing a member ends its sessions.
        let developer = members
            .iter()
            .find(|m| m.role == MemberRole::Developer)
            .unwrap();
        let token = SessionToken::generate();
        store
            .insert_session(&Session {
                digest: token.digest(),
                user_id: developer.id.clone(),
                created_at: now(),
                expires_at: now() + Duration::hours(1),
            })
            .await
            .unwrap();
        store
            .delete_member(&org.id, &developer.id, &event(&org.id, "member.removed"))
            .await
            .unwrap();
        assert_eq!(store.session(&token.digest()).await.unwrap(), None);
        assert_eq!(store.member(&org.id, &developer.id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn an_invitation_is_accepted_once_and_not_after_it_expires() {
    for (store, _db) in stores().await {
        let org = organization(&store).await;
        let t0 = now();
        let token = SessionToken::generate();
        let invitation = Invitation {
            digest: token.digest(),
            organization_id: org.id.clone(),
            role: MemberRole::Viewer,
            created_by: "cli".into(),
            created_at: t0,
            expires_at: t0 + Duration::days(7),
        };
        store
            .insert_invitation(&invitation, &event(&org.id, "member.invited"))
            .await
            .unwrap();
        assert_eq!(
            store.invitation(&token.digest()).await.unwrap(),
            Some(invitation.clone())
        );
        assert_eq!(
            store.invitations(&org.id).await.unwrap(),
            vec![invitation.clone()]
        );

        // A taken email leaves the invitation to be used again.
        let taken = member(&org.id, "taken@example.com", MemberRole::Owner);
        store
            .insert_member(&taken, &event(&org.id, "member.added"))
            .await
            .unwrap();
        let clash = member(&org.id, "taken@example.com", MemberRole::Viewer);
        assert!(matches!(
            store
                .accept_invitation(
                    &token.digest(),
                    t0,
                    &clash,
                    &event(&org.id, "member.joined")
                )
                .await,
            Err(StoreError::Conflict(Conflict::Unique))
        ));
        assert!(store.invitation(&token.digest()).await.unwrap().is_some());

        // Expired: refused. In time: accepted, once.
        let joiner = member(&org.id, "new@example.com", MemberRole::Viewer);
        let late = t0 + Duration::days(7);
        assert!(matches!(
            store
                .accept_invitation(
                    &token.digest(),
                    late,
                    &joiner,
                    &event(&org.id, "member.joined")
                )
                .await,
            Err(StoreError::NotFound)
        ));
        store
            .accept_invitation(
                &token.digest(),
                t0,
                &joiner,
                &event(&org.id, "member.joined"),
            )
            .await
            .unwrap();
        let again = member(&org.id, "again@example.com", MemberRole::Viewer);
        assert!(matches!(
            store
                .accept_invitation(
                    &token.digest(),
                    t0,
                    &again,
                    &event(&org.id, "member.joined")
                )
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(store.invitation(&token.digest()).await.unwrap(), None);
        assert_eq!(
            store.member(&org.id, &joiner.id).await.unwrap(),
            Some(joiner.clone())
        );

        // Withdrawn: gone, and only from its own organization.
        let second = SessionToken::generate();
        store
            .insert_invitation(
                &Invitation {
                    digest: second.digest(),
                    ..invitation.clone()
                },
                &event(&org.id, "member.invited"),
            )
            .await
            .unwrap();
        let other = organization(&store).await;
        assert!(matches!(
            store
                .delete_invitation(&other.id, &second.digest(), &event(&other.id, "x"))
                .await,
            Err(StoreError::NotFound)
        ));
        store
            .delete_invitation(
                &org.id,
                &second.digest(),
                &event(&org.id, "member.invitation_withdrawn"),
            )
            .await
            .unwrap();
        assert_eq!(store.invitations(&org.id).await.unwrap(), vec![]);
    }
}

#[tokio::test]
async fn an_organizations_overview_sums_its_own_credentials_and_finds_unused_and_expiring() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let other = organization(&store).await;
        let used = credential(&store, &org.id, Environment::Live, named("used")).await;
        let mut soon = named("soon");
        soon.expires_at = Some(now() + Duration::days(3));
        let expiring = credential(&store, &org.id, Environment::Live, soon).await;
        let mut later = named("later");
        later.expires_at = Some(now() + Duration::days(300));
        credential(&store, &org.id, Environment::Live, later).await;
        let foreign = credential(&store, &other.id, Environment::Live, named("theirs")).await;
        let count = |credential: &CredentialId, minute: i64, outcome: &str, n: i64| UsageCount {
            credential_id: credential.clone(),
            minute,
            outcome: outcome.into(),
            count: n,
            via_query: 0,
        };
        let (a, b) = (&used.credential.id, &foreign.credential.id);
        store
            .record_usage(&[
                count(a, 100, "VALID", 3),
                count(a, 130, "RATE_LIMITED", 2),
                count(&expiring.credential.id, 100, "VALID", 1),
                count(b, 100, "VALID", 50),
            ])
            .await
            .unwrap();
        let mut overview = store
            .organization_usage(&org.id, 0, 1_000, 60)
            .await
            .unwrap();
        overview
            .sort_by(|x, y| (x.minute, &x.outcome, x.count).cmp(&(y.minute, &y.outcome, y.count)));
        assert_eq!(
            overview,
            vec![
                count(&expiring.credential.id, 60, "VALID", 1),
                count(a, 60, "VALID", 3),
                count(a, 120, "RATE_LIMITED", 2),
            ]
        );
        store
            .record_credential_uses(&[CredentialUse {
                credential_id: a.clone(),
                at: now(),
                ip: None,
            }])
            .await
            .unwrap();
        let names = |q: CredentialQuery| {
            let (store, org) = (store.clone(), org.id.clone());
            async move {
                store
                    .list_credentials(&org, &q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.settings.name)
                    .collect::<Vec<_>>()
            }
        };
        let unused = names(CredentialQuery {
            unused: true,
            ..query(10)
        })
        .await;
        assert_eq!(unused, ["later", "soon"]);
        let ending = names(CredentialQuery {
            expiring_before: Some(now() + Duration::days(30)),
            ..query(10)
        })
        .await;
        assert_eq!(ending, ["soon"]);
    }
}

#[tokio::test]
async fn a_second_factors_steps_and_recovery_codes_are_used_once() {
    for (store, database) in stores().await {
        eprintln!("on {:?}", database.dialect());
        let org = organization(&store).await;
        let ada = member(&org.id, "ada@example.com", MemberRole::Owner);
        store
            .insert_member(&ada, &event(&org.id, "member.added"))
            .await
            .unwrap();
        assert_eq!(store.member_totp(&ada.id).await.unwrap(), None);
        assert!(
            !store.use_totp_step(&ada.id, 5).await.unwrap(),
            "no factor, no step"
        );
        let codes = [LookupDigest::of("one"), LookupDigest::of("two")];
        store
            .set_member_totp(&ada.id, Some("sealed"), &codes, &event(&org.id, "x"))
            .await
            .unwrap();
        assert_eq!(
            store.member_totp(&ada.id).await.unwrap(),
            Some(("sealed".to_owned(), None))
        );
        let read = store.member(&org.id, &ada.id).await.unwrap().unwrap();
        assert!(read.second_factor);
        // Steps only move forward, each once, however many race.
        let (a, b) = tokio::join!(
            store.use_totp_step(&ada.id, 7),
            store.use_totp_step(&ada.id, 7)
        );
        assert!(a.unwrap() != b.unwrap(), "exactly one login gets step 7");
        assert!(!store.use_totp_step(&ada.id, 6).await.unwrap());
        assert!(store.use_totp_step(&ada.id, 8).await.unwrap());
        // Recovery codes: once each, and only the member's own.
        let bob = member(&org.id, "bob@example.com", MemberRole::Developer);
        store
            .insert_member(&bob, &event(&org.id, "member.added"))
            .await
            .unwrap();
        assert!(
            !store
                .use_recovery_code(&bob.id, &codes[0], now())
                .await
                .unwrap()
        );
        assert!(
            store
                .use_recovery_code(&ada.id, &codes[0], now())
                .await
                .unwrap()
        );
        assert!(
            !store
                .use_recovery_code(&ada.id, &codes[0], now())
                .await
                .unwrap()
        );
        assert_eq!(store.recovery_codes_left(&ada.id).await.unwrap(), 1);
        // Turned off: no secret, no codes; a member with codes can still be removed.
        store
            .set_member_totp(&ada.id, Some("sealed again"), &codes, &event(&org.id, "x"))
            .await
            .unwrap();
        assert_eq!(
            store.recovery_codes_left(&ada.id).await.unwrap(),
            2,
            "replaced"
        );
        store
            .set_member_role(&org.id, &bob.id, MemberRole::Owner, &event(&org.id, "x"))
            .await
            .unwrap();
        store
            .delete_member(&org.id, &ada.id, &event(&org.id, "member.removed"))
            .await
            .unwrap();
        assert_eq!(store.recovery_codes_left(&ada.id).await.unwrap(), 0);
        store
            .set_member_totp(&bob.id, None, &[], &event(&org.id, "x"))
            .await
            .unwrap();
        assert_eq!(store.member_totp(&bob.id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn the_grace_of_replaced_secrets_is_read_back_until_it_ends() {
    for (store, _db) in stores().await {
        let org = organization(&store).await;
        let issued = credential(&store, &org.id, Environment::Live, named("r")).await;
        let id = issued.credential.id.clone();
        assert_eq!(
            store.previous_secrets_until(&id, now()).await.unwrap(),
            None
        );
        let until = now() + Duration::hours(1);
        let api_key =
            PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
        let client_secret = PlainSecret::generate(&KeyPrefix::default(), SecretKind::ClientSecret);
        store
            .rotate_credential(
                &issued.credential,
                &secrets_of(&api_key, &client_secret),
                Some(until),
                &event(&org.id, "key.rotated"),
            )
            .await
            .unwrap();
        let read = store.previous_secrets_until(&id, now()).await.unwrap();
        assert_eq!(
            read.map(keyward_core::clock::to_millis),
            Some(keyward_core::clock::to_millis(until))
        );
        assert_eq!(
            store
                .previous_secrets_until(&id, until + Duration::seconds(1))
                .await
                .unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn an_old_secrets_last_use_only_moves_forward() {
    for (store, _db) in stores().await {
        let org = organization(&store).await;
        let issued = credential(&store, &org.id, Environment::Live, named("o")).await;
        let id = issued.credential.id.clone();
        assert_eq!(store.old_secret_use(&id).await.unwrap(), None);
        let t0 = now();
        let at = |minutes: i64, ip: &str| CredentialUse {
            credential_id: id.clone(),
            at: t0 + Duration::minutes(minutes),
            ip: Some(ip.parse().unwrap()),
        };
        store
            .record_old_secret_uses(&[at(2, "192.0.2.2")])
            .await
            .unwrap();
        store
            .record_old_secret_uses(&[at(1, "192.0.2.1")])
            .await
            .unwrap();
        let (when, ip) = store.old_secret_use(&id).await.unwrap().unwrap();
        assert_eq!(
            keyward_core::clock::to_millis(when),
            keyward_core::clock::to_millis(t0 + Duration::minutes(2))
        );
        assert_eq!(ip, Some("192.0.2.2".parse().unwrap()));
    }
}
