//! Organization members: adding them, setting their passwords, and checking a login. The
//! CLI (`keyward users …`), the first run and the login page all call these.

use keyward_core::audit::Actor;
use keyward_core::credential::ValidationError;
use keyward_core::member::{
    Member, PASSWORD_MAX_BYTES, decoy_hash, generate_password, hash_password, password_matches,
    validate_email, validate_password,
};
use keyward_core::typeid::{OrganizationId, UserId};
use keyward_store::StoreError;
use serde_json::json;
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::state::AppState;

/// Runs argon2id off the async threads: it takes tens of milliseconds by design.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Checks a chosen password, or generates one; returns its hash and the generated password
/// to show once.
async fn new_password(
    password: Option<Zeroizing<String>>,
) -> Result<(String, Option<Zeroizing<String>>), ApiError> {
    let (password, generated) = match password {
        Some(password) => {
            validate_password(&password)?;
            (password, false)
        }
        None => (generate_password(), true),
    };
    let hash = {
        let password = password.clone();
        blocking(move || hash_password(&password)).await
    };
    Ok((hash, generated.then_some(password)))
}

/// Adds a member to `organization`. With no `password` one is generated and returned, to be
/// shown once.
pub async fn add(
    state: &AppState,
    organization: &OrganizationId,
    actor: &Actor,
    email: &str,
    password: Option<Zeroizing<String>>,
) -> Result<(Member, Option<Zeroizing<String>>), ApiError> {
    let email = validate_email(email)?;
    if state.store.organization(organization).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let (hash, generated) = new_password(password).await?;
    let now = state.clock.now();
    let member = Member {
        id: UserId::generate(),
        organization_id: organization.clone(),
        email,
        password_hash: hash,
        created_at: now,
        password_changed_at: now,
    };
    let details = json!({ "email": member.email });
    let event = actor.event(
        organization,
        now,
        "member.added",
        Some(member.id.as_str()),
        details.as_object().cloned().unwrap_or_default(),
    );
    match state.store.insert_member(&member, &event).await {
        Ok(()) => Ok((member, generated)),
        Err(StoreError::Conflict { .. }) => {
            Err(ValidationError::new("email", "belongs to a member already").into())
        }
        Err(error) => Err(error.into()),
    }
}

/// Sets the password of the member with `email` (generated and returned when `None`) and
/// ends all of the member's sessions.
pub async fn set_password(
    state: &AppState,
    actor: &Actor,
    email: &str,
    password: Option<Zeroizing<String>>,
) -> Result<(Member, Option<Zeroizing<String>>), ApiError> {
    let email = validate_email(email)?;
    let member = state
        .store
        .member_by_email(&email)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (hash, generated) = new_password(password).await?;
    let now = state.clock.now();
    let event = actor.event(
        &member.organization_id,
        now,
        "member.password_set",
        Some(member.id.as_str()),
        Default::default(),
    );
    state
        .store
        .set_member_password(&member.id, &hash, now, &event)
        .await?;
    Ok((member, generated))
}

/// Why a login failed; the page says the same for both, so emails cannot be probed.
#[derive(Debug)]
pub enum LoginFailure {
    /// The email and password do not match a member.
    Mismatch,
    /// The store failed.
    Store(ApiError),
}

/// Checks an email and password. An unknown email costs the same argon2id check as a
/// known one; a wrong password for a known member is audited in its organization.
pub async fn authenticate(
    state: &AppState,
    email: &str,
    password: &str,
    source_ip: Option<std::net::IpAddr>,
) -> Result<Member, LoginFailure> {
    let email = email.trim().to_lowercase();
    // Longer than any password that can be set: refused without the work of a hash.
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(LoginFailure::Mismatch);
    }
    let member = state
        .store
        .member_by_email(&email)
        .await
        .map_err(|e| LoginFailure::Store(e.into()))?;
    let stored = member
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |m| m.password_hash.clone());
    let password = Zeroizing::new(password.to_owned());
    let matches = blocking(move || password_matches(&password, &stored)).await;
    let now = state.clock.now();
    match member {
        Some(member) => {
            let actor = Actor {
                id: member.id.to_string(),
                source_ip,
            };
            let action = if matches {
                "member.logged_in"
            } else {
                "member.login_failed"
            };
            let event = actor.event(
                &member.organization_id,
                now,
                action,
                Some(member.id.as_str()),
                Default::default(),
            );
            if matches {
                state
                    .store
                    .insert_audit_event(&event)
                    .await
                    .map_err(|e| LoginFailure::Store(e.into()))?;
                Ok(member)
            } else {
                // Written without waiting, so a wrong password for a member answers as
                // fast as an unknown email, even when the store is slow or down.
                let store = state.store.clone();
                tokio::spawn(async move {
                    if let Err(error) = store.insert_audit_event(&event).await {
                        tracing::warn!(%error, "could not record a failed login");
                    }
                });
                Err(LoginFailure::Mismatch)
            }
        }
        None => {
            tracing::info!(client.ip = ?source_ip, "a login named no member");
            Err(LoginFailure::Mismatch)
        }
    }
}
