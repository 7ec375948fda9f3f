//! Organization members, who log in to the dashboard: adding them, setting their passwords,
//! logging in and out, and the sessions a login starts. The CLI (`keyward users …`), the
//! first run and the dashboard all call these.
//!
//! Failed logins are counted per source address (as failed key checks are): past the
//! threshold the address is refused for a while. At most
//! [`LoginThrottle::PARALLEL`](crate::login::LoginThrottle::PARALLEL)
//! password checks run at once, so a burst of parallel guesses can neither outrun the
//! count nor exhaust memory (each argon2id check takes 19 MiB). Each attempt on a known
//! member is in its organization's audit log.

use std::net::IpAddr;

use keyward_core::audit::Actor;
use keyward_core::credential::ValidationError;
use keyward_core::digest::LookupDigest;
use keyward_core::member::{
    Member, PASSWORD_MAX_BYTES, Session, SessionToken, decoy_hash, generate_password,
    hash_password, password_matches, validate_email, validate_password,
};
use keyward_core::typeid::{OrganizationId, UserId};
use keyward_store::StoreError;
use serde_json::json;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::ServiceError;
use crate::principal::Operator;
use crate::service::Service;

/// How long a session lasts, however active its member.
pub const SESSION_LIFETIME: time::Duration = time::Duration::hours(12);

/// Why a login failed.
#[derive(Debug)]
pub enum LoginFailure {
    /// The email and password do not match a member. The same for an unknown email and a
    /// wrong password, so emails cannot be probed.
    Mismatch,
    /// This address failed too often; it may try again after this long.
    Throttled(time::Duration),
    /// As many password checks as may run at once are running.
    Busy,
    /// The store failed.
    Failed(ServiceError),
}

/// A member logged in: who, and the session token for its cookie (shown to the browser
/// only).
#[derive(Debug)]
pub struct LoggedIn {
    /// The member.
    pub member: Member,
    /// The new session's token.
    pub token: SessionToken,
}

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
) -> Result<(String, Option<Zeroizing<String>>), ServiceError> {
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

/// The members of the deployment's organizations.
#[derive(Clone, Copy)]
pub struct Members<'a>(pub(crate) &'a Service);

impl Service {
    /// Dashboard members and their sessions.
    pub fn members(&self) -> Members<'_> {
        Members(self)
    }
}

impl Members<'_> {
    /// Adds a member to `organization` (an unknown one is [`ServiceError::NotFound`]).
    /// With no `password` one is generated and returned, to be shown once.
    pub async fn add(
        &self,
        operator: &Operator,
        organization: &OrganizationId,
        email: &str,
        password: Option<Zeroizing<String>>,
    ) -> Result<(Member, Option<Zeroizing<String>>), ServiceError> {
        let service = self.0;
        let actor = operator.actor();
        let email = validate_email(email)?;
        if service.store.organization(organization).await?.is_none() {
            return Err(ServiceError::NotFound);
        }
        let (hash, generated) = new_password(password).await?;
        let now = service.clock.now();
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
        match service.store.insert_member(&member, &event).await {
            Ok(()) => Ok((member, generated)),
            Err(StoreError::Conflict(_)) => {
                Err(ValidationError::new("email", "belongs to a member already").into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Sets the password of the member with `email` (generated and returned when `None`)
    /// and ends all of the member's sessions.
    pub async fn set_password(
        &self,
        operator: &Operator,
        email: &str,
        password: Option<Zeroizing<String>>,
    ) -> Result<(Member, Option<Zeroizing<String>>), ServiceError> {
        let service = self.0;
        let actor = operator.actor();
        let email = validate_email(email)?;
        let member = service
            .store
            .member_by_email(&email)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let (hash, generated) = new_password(password).await?;
        let now = service.clock.now();
        let event = actor.event(
            &member.organization_id,
            now,
            "member.password_set",
            Some(member.id.as_str()),
            Default::default(),
        );
        service
            .store
            .set_member_password(&member.id, &hash, now, &event)
            .await?;
        Ok((member, generated))
    }

    /// Logs a member in from `ip` with `email` and `password`, and starts a session. A
    /// failed attempt counts against the address.
    pub async fn log_in(
        &self,
        email: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, LoginFailure> {
        let service = self.0;
        let now = service.clock.now();
        let login = &service.login;
        login.throttle.prune(now);
        if let Some(wait) = ip.and_then(|ip| login.throttle.blocked(ip, now)) {
            return Err(LoginFailure::Throttled(wait));
        }
        let Ok(_permit) = login.checks.try_acquire() else {
            return Err(LoginFailure::Busy);
        };
        match self.authenticate(email, password, ip).await {
            Ok(member) => {
                // The session starts when the check started: a password set meanwhile
                // voids it.
                let token = self
                    .start_session(&member, now)
                    .await
                    .map_err(LoginFailure::Failed)?;
                Ok(LoggedIn { member, token })
            }
            Err(LoginFailure::Mismatch) => {
                if let Some(ip) = ip {
                    login.throttle.record_failure(ip, now);
                }
                Err(LoginFailure::Mismatch)
            }
            Err(other) => Err(other),
        }
    }

    /// Checks an email and password. An unknown email costs the same argon2id check as a
    /// known one; a wrong password for a known member is audited in its organization.
    async fn authenticate(
        &self,
        email: &str,
        password: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<Member, LoginFailure> {
        let service = self.0;
        let email = email.trim().to_lowercase();
        // Longer than any password that can be set: refused without the work of a hash.
        if password.len() > PASSWORD_MAX_BYTES {
            return Err(LoginFailure::Mismatch);
        }
        let member = service
            .store
            .member_by_email(&email)
            .await
            .map_err(|e| LoginFailure::Failed(e.into()))?;
        let stored = member
            .as_ref()
            .map_or_else(|| decoy_hash().to_owned(), |m| m.password_hash.clone());
        let password = Zeroizing::new(password.to_owned());
        let matches = blocking(move || password_matches(&password, &stored)).await;
        let now = service.clock.now();
        match member {
            Some(member) => {
                let actor = Actor {
                    id: member.id.to_string(),
                    source_ip,
                    via: None,
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
                    service
                        .store
                        .insert_audit_event(&event)
                        .await
                        .map_err(|e| LoginFailure::Failed(e.into()))?;
                    Ok(member)
                } else {
                    // Written without waiting, so a wrong password for a member answers as
                    // fast as an unknown email, even when the store is slow or down.
                    let store = service.store.clone();
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

    /// A fresh session for `member`, started at `now`: its token (for the cookie) after
    /// storing its digest.
    async fn start_session(
        &self,
        member: &Member,
        now: OffsetDateTime,
    ) -> Result<SessionToken, ServiceError> {
        let token = SessionToken::generate();
        let session = Session {
            digest: token.digest(),
            user_id: member.id.clone(),
            created_at: now,
            expires_at: now + SESSION_LIFETIME,
        };
        self.0.store.insert_session(&session).await?;
        Ok(token)
    }

    /// The live session whose token is `secret`, and its member: not ended, and begun
    /// after the member's password was last set.
    pub async fn session(&self, secret: &str) -> Result<Option<(Session, Member)>, ServiceError> {
        let service = self.0;
        let found = service.store.session(&LookupDigest::of(secret)).await?;
        let now = service.clock.now();
        Ok(found.filter(|(session, member)| {
            session.expires_at > now && session.created_at >= member.password_changed_at
        }))
    }

    /// Ends the session `session` of `member`, and records the logout (a failure to record
    /// it is logged, not returned: the session has ended).
    pub async fn log_out(
        &self,
        session: &LookupDigest,
        member: &Member,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let service = self.0;
        service.store.delete_session(session).await?;
        let event = actor.event(
            &member.organization_id,
            service.clock.now(),
            "member.logged_out",
            Some(member.id.as_str()),
            Default::default(),
        );
        if let Err(error) = service.store.insert_audit_event(&event).await {
            tracing::warn!(%error, "could not record a logout");
        }
        Ok(())
    }
}
