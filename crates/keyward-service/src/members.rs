//! Organization members, who log in to the dashboard: adding and inviting them, their
//! roles, setting their passwords, logging in and out, and the sessions a login starts.
//! The CLI (`keyward users …`), the first run and the dashboard all call these.
//!
//! Who may manage members is a member's role ([`MemberRole`]): owners and admins do, and
//! only an owner makes, changes or removes an owner. No credential manages members. An
//! organization always keeps an owner: the store refuses the change that would leave none.
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
    Invitation, Member, MemberRole, PASSWORD_MAX_BYTES, Session, SessionToken, TotpSecret,
    decoy_hash, generate_password, generate_recovery_codes, hash_password, password_matches,
    recovery_code_digest, validate_email, validate_password,
};
use keyward_core::typeid::{OrganizationId, UserId};
use keyward_store::StoreError;
use serde_json::json;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::ServiceError;
use crate::principal::{ManageMembers, Operator, Permit, ReadMembers};
use crate::service::Service;

/// How long a session lasts, however active its member.
pub const SESSION_LIFETIME: time::Duration = time::Duration::hours(12);

/// How long an invitation's link works.
pub const INVITATION_LIFETIME: time::Duration = time::Duration::days(7);

/// An invitation just made: its token, to put in the link shown once to the member who
/// made it.
#[derive(Debug)]
pub struct Invited {
    /// The invitation as stored.
    pub invitation: Invitation,
    /// The token for the link.
    pub token: SessionToken,
}

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

/// How long the second step of a login may wait for its code.
pub const SECOND_FACTOR_WINDOW: time::Duration = time::Duration::minutes(5);

/// Where a login stands after the password.
#[derive(Debug)]
pub enum LoginStep {
    /// Logged in.
    Done(LoggedIn),
    /// The member has a second factor: this challenge (sealed, for a short-lived cookie)
    /// and a code from the member's authenticator app, or a recovery code, finish it.
    SecondFactor(String),
}

/// A second factor being turned on: the secret to show, and the same sealed for the form
/// that confirms it with a first code.
#[derive(Debug)]
pub struct Enrolment {
    /// The secret, for the authenticator app.
    pub secret: TotpSecret,
    /// The secret sealed for this member alone, to send back with the first code.
    pub pending: String,
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
    /// Adds a member with `role` to `organization` (an unknown one is
    /// [`ServiceError::NotFound`]). Without a role the member is an owner if the
    /// organization has none yet, else a developer.
    /// With no `password` one is generated and returned, to be shown once.
    pub async fn add(
        &self,
        operator: &Operator,
        organization: &OrganizationId,
        email: &str,
        role: Option<MemberRole>,
        password: Option<Zeroizing<String>>,
    ) -> Result<(Member, Option<Zeroizing<String>>), ServiceError> {
        let service = self.0;
        let actor = operator.actor();
        let email = validate_email(email)?;
        if service.store.organization(organization).await?.is_none() {
            return Err(ServiceError::NotFound);
        }
        let role = match role {
            Some(role) => role,
            None => {
                let members = service.store.members(organization).await?;
                if members.iter().any(|m| m.role == MemberRole::Owner) {
                    MemberRole::Developer
                } else {
                    MemberRole::Owner
                }
            }
        };
        let (hash, generated) = new_password(password).await?;
        let now = service.clock.now();
        let member = Member {
            id: UserId::generate(),
            organization_id: organization.clone(),
            email,
            password_hash: hash,
            created_at: now,
            password_changed_at: now,
            role,
            last_login_at: None,
            second_factor: false,
        };
        let details = json!({ "email": member.email, "role": role });
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
    ) -> Result<LoginStep, LoginFailure> {
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
            Ok(member) if member.second_factor => {
                let payload = format!(
                    "{}|{}|{}",
                    member.organization_id,
                    member.id,
                    now.unix_timestamp()
                );
                let challenge = service
                    .config
                    .signing
                    .master_key
                    .seal(CHALLENGE_LABEL, payload.as_bytes())
                    .map_err(|e| LoginFailure::Failed(e.into()))?;
                Ok(LoginStep::SecondFactor(challenge))
            }
            Ok(member) => {
                // The session starts when the check started: a password set meanwhile
                // voids it.
                let token = self
                    .start_session(&member, now)
                    .await
                    .map_err(LoginFailure::Failed)?;
                Ok(LoginStep::Done(LoggedIn { member, token }))
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
                let action = match (matches, member.second_factor) {
                    (true, false) => "member.logged_in",
                    (true, true) => "member.password_accepted",
                    (false, _) => "member.login_failed",
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

    /// The organization's members, by email.
    pub async fn list(&self, permit: Permit<'_, ReadMembers>) -> Result<Vec<Member>, ServiceError> {
        Ok(self.0.store.members(permit.organization()).await?)
    }

    /// The members of every organization, or of `organization`, for the operator.
    pub async fn list_all(
        &self,
        _operator: &Operator,
        organization: Option<&OrganizationId>,
    ) -> Result<Vec<Member>, ServiceError> {
        let store = &self.0.store;
        let organizations = match organization {
            Some(id) => vec![id.clone()],
            None => store
                .organizations()
                .await?
                .into_iter()
                .map(|o| o.id)
                .collect(),
        };
        let mut members = Vec::new();
        for organization in &organizations {
            members.extend(store.members(organization).await?);
        }
        Ok(members)
    }

    /// Gives member `id` the role `role`. The principal must be allowed to assign both the
    /// member's present role and the new one; the last owner keeps the role.
    pub async fn set_role(
        &self,
        permit: Permit<'_, ManageMembers>,
        id: &UserId,
        role: MemberRole,
    ) -> Result<Member, ServiceError> {
        let service = self.0;
        let organization = permit.organization();
        let member = service
            .store
            .member(organization, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        permit.authority().may_assign(member.role)?;
        permit.authority().may_assign(role)?;
        let details = json!({ "email": member.email, "from": member.role, "to": role });
        let event = permit.actor().event(
            organization,
            service.clock.now(),
            "member.role_changed",
            Some(member.id.as_str()),
            details.as_object().cloned().unwrap_or_default(),
        );
        service
            .store
            .set_member_role(organization, id, role, &event)
            .await?;
        Ok(Member { role, ..member })
    }

    /// Removes member `id` and ends its sessions. The principal must be allowed to assign
    /// the member's role; the last owner stays.
    pub async fn remove(
        &self,
        permit: Permit<'_, ManageMembers>,
        id: &UserId,
    ) -> Result<Member, ServiceError> {
        let service = self.0;
        let organization = permit.organization();
        let member = service
            .store
            .member(organization, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        permit.authority().may_assign(member.role)?;
        let details = json!({ "email": member.email, "role": member.role });
        let event = permit.actor().event(
            organization,
            service.clock.now(),
            "member.removed",
            Some(member.id.as_str()),
            details.as_object().cloned().unwrap_or_default(),
        );
        service
            .store
            .delete_member(organization, id, &event)
            .await?;
        Ok(member)
    }

    /// The member with `email`, in any organization, for the operator.
    pub async fn by_email(
        &self,
        _operator: &Operator,
        email: &str,
    ) -> Result<Member, ServiceError> {
        let email = validate_email(email)?;
        self.0
            .store
            .member_by_email(&email)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Invites a new member with `role`: an invitation whose link works once, for
    /// [`INVITATION_LIFETIME`]. The principal must be allowed to assign the role.
    pub async fn invite(
        &self,
        permit: Permit<'_, ManageMembers>,
        role: MemberRole,
    ) -> Result<Invited, ServiceError> {
        permit.authority().may_assign(role)?;
        let service = self.0;
        let now = service.clock.now();
        let token = SessionToken::generate();
        let invitation = Invitation {
            digest: token.digest(),
            organization_id: permit.organization().clone(),
            role,
            created_by: permit.actor().id.clone(),
            created_at: now,
            expires_at: now + INVITATION_LIFETIME,
        };
        let details = json!({ "role": role, "expires_at": invitation.expires_at.unix_timestamp() });
        let event = permit.actor().event(
            permit.organization(),
            now,
            "member.invited",
            Some(&invitation.handle()),
            details.as_object().cloned().unwrap_or_default(),
        );
        service.store.insert_invitation(&invitation, &event).await?;
        Ok(Invited { invitation, token })
    }

    /// The organization's invitations that can still be accepted, newest first.
    pub async fn invitations(
        &self,
        permit: Permit<'_, ReadMembers>,
    ) -> Result<Vec<Invitation>, ServiceError> {
        let now = self.0.clock.now();
        let all = self.0.store.invitations(permit.organization()).await?;
        Ok(all.into_iter().filter(|i| i.expires_at > now).collect())
    }

    /// Withdraws the invitation with this handle (see [`Invitation::handle`]).
    pub async fn withdraw(
        &self,
        permit: Permit<'_, ManageMembers>,
        handle: &str,
    ) -> Result<(), ServiceError> {
        let service = self.0;
        let organization = permit.organization();
        let all = service.store.invitations(organization).await?;
        let invitation = all
            .into_iter()
            .find(|i| i.handle() == handle)
            .ok_or(ServiceError::NotFound)?;
        permit.authority().may_assign(invitation.role)?;
        let event = permit.actor().event(
            organization,
            service.clock.now(),
            "member.invitation_withdrawn",
            Some(&invitation.handle()),
            Default::default(),
        );
        service
            .store
            .delete_invitation(organization, &invitation.digest, &event)
            .await?;
        Ok(())
    }

    /// The invitation whose link holds `token`, if it can still be accepted.
    pub async fn invitation(&self, token: &str) -> Result<Option<Invitation>, ServiceError> {
        let now = self.0.clock.now();
        let found = self.0.store.invitation(&LookupDigest::of(token)).await?;
        Ok(found.filter(|i| i.expires_at > now))
    }

    /// Accepts the invitation whose link holds `token`: adds a member with `email` and
    /// `password` and the invitation's role, uses the invitation up, and starts a session.
    /// An unknown, used or expired invitation is [`ServiceError::NotFound`].
    pub async fn accept(
        &self,
        token: &str,
        email: &str,
        password: Zeroizing<String>,
        source_ip: Option<IpAddr>,
    ) -> Result<LoggedIn, ServiceError> {
        let service = self.0;
        let invitation = self
            .invitation(token)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let email = validate_email(email)?;
        let (hash, _) = new_password(Some(password)).await?;
        let now = service.clock.now();
        let member = Member {
            id: UserId::generate(),
            organization_id: invitation.organization_id.clone(),
            email,
            password_hash: hash,
            created_at: now,
            password_changed_at: now,
            role: invitation.role,
            last_login_at: None,
            second_factor: false,
        };
        let actor = Actor {
            id: member.id.to_string(),
            source_ip,
            via: None,
        };
        let details = json!({
            "email": member.email,
            "role": member.role,
            "invitation": invitation.handle(),
        });
        let event = actor.event(
            &member.organization_id,
            now,
            "member.joined",
            Some(member.id.as_str()),
            details.as_object().cloned().unwrap_or_default(),
        );
        match service
            .store
            .accept_invitation(&invitation.digest, now, &member, &event)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ValidationError::new("email", "belongs to a member already").into());
            }
            Err(error) => return Err(error.into()),
        }
        let token = self.start_session(&member, now).await?;
        Ok(LoggedIn { member, token })
    }

    /// Changes a signed-in member's own password, after checking the present one. Every
    /// session of the member ends; the new session returned replaces the one in use.
    pub async fn change_password(
        &self,
        member: &Member,
        actor: &Actor,
        current: &str,
        new: Zeroizing<String>,
    ) -> Result<SessionToken, ServiceError> {
        let service = self.0;
        self.check_present_password(member, current, "current_password")
            .await?;
        let (hash, _) = new_password(Some(new)).await?;
        let now = service.clock.now();
        let event = actor.event(
            &member.organization_id,
            now,
            "member.password_changed",
            Some(member.id.as_str()),
            Default::default(),
        );
        service
            .store
            .set_member_password(&member.id, &hash, now, &event)
            .await?;
        self.start_session(member, now).await
    }

    /// Gives the member with `email` the role `role`, for the operator (who may make
    /// owners); the last owner keeps the role.
    pub async fn set_role_by_email(
        &self,
        operator: &Operator,
        email: &str,
        role: MemberRole,
    ) -> Result<Member, ServiceError> {
        let member = self.by_email(operator, email).await?;
        let principal = operator.in_organization(&member.organization_id);
        self.set_role(principal.permit()?, &member.id, role).await
    }

    /// Removes the member with `email`, for the operator; the last owner stays.
    pub async fn remove_by_email(
        &self,
        operator: &Operator,
        email: &str,
    ) -> Result<Member, ServiceError> {
        let member = self.by_email(operator, email).await?;
        let principal = operator.in_organization(&member.organization_id);
        self.remove(principal.permit()?, &member.id).await
    }

    /// Finishes a login that needs a second factor: the challenge [`LoginStep::SecondFactor`]
    /// gave (within [`SECOND_FACTOR_WINDOW`]) and a code of the member's authenticator app
    /// (each accepted once) or an unused recovery code. A wrong code counts against the
    /// address as a wrong password does.
    pub async fn second_factor(
        &self,
        challenge: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, LoginFailure> {
        let service = self.0;
        let now = service.clock.now();
        let login = &service.login;
        login.throttle.prune(now);
        if let Some(wait) = ip.and_then(|ip| login.throttle.blocked(ip, now)) {
            return Err(LoginFailure::Throttled(wait));
        }
        let opened = service
            .config
            .signing
            .master_key
            .open(CHALLENGE_LABEL, challenge)
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok());
        let Some((org, id, started)) = opened.as_deref().and_then(|text| {
            let mut parts = text.split('|');
            let org = OrganizationId::parse(parts.next()?).ok()?;
            let id = UserId::parse(parts.next()?).ok()?;
            let started = parts.next()?.parse::<i64>().ok()?;
            Some((org, id, started))
        }) else {
            return Err(LoginFailure::Mismatch);
        };
        if now.unix_timestamp() - started > SECOND_FACTOR_WINDOW.whole_seconds() {
            return Err(LoginFailure::Mismatch);
        }
        let store = &service.store;
        let failed = |e: StoreError| LoginFailure::Failed(e.into());
        let Some(member) = store.member(&org, &id).await.map_err(failed)? else {
            return Err(LoginFailure::Mismatch);
        };
        let totp = store.member_totp(&id).await.map_err(failed)?;
        let mut factor = None;
        if let Some((sealed, last)) = totp
            && let Some(secret) = self.open_secret(&id, &sealed)
            && let Some(step) = secret.check(code, now, last.and_then(|l| u64::try_from(l).ok()))
            && store
                .use_totp_step(&id, i64::try_from(step).unwrap_or(i64::MAX))
                .await
                .map_err(failed)?
        {
            factor = Some("totp");
        }
        if factor.is_none()
            && store
                .use_recovery_code(&id, &recovery_code_digest(code), now)
                .await
                .map_err(failed)?
        {
            factor = Some("recovery_code");
        }
        let actor = Actor {
            id: member.id.to_string(),
            source_ip: ip,
            via: None,
        };
        let Some(factor) = factor else {
            if let Some(ip) = ip {
                login.throttle.record_failure(ip, now);
            }
            let event = actor.event(
                &member.organization_id,
                now,
                "member.login_failed",
                Some(member.id.as_str()),
                json!({ "second_factor": true })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            if let Err(error) = store.insert_audit_event(&event).await {
                tracing::warn!(%error, "could not record a failed second factor");
            }
            return Err(LoginFailure::Mismatch);
        };
        let event = actor.event(
            &member.organization_id,
            now,
            "member.logged_in",
            Some(member.id.as_str()),
            json!({ "second_factor": factor })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        store.insert_audit_event(&event).await.map_err(failed)?;
        let token = self
            .start_session(&member, now)
            .await
            .map_err(LoginFailure::Failed)?;
        Ok(LoggedIn { member, token })
    }

    fn open_secret(&self, id: &UserId, sealed: &str) -> Option<TotpSecret> {
        self.0
            .config
            .signing
            .master_key
            .open(id.as_str(), sealed)
            .map(TotpSecret::from_bytes)
    }

    /// A new TOTP secret for `member` to add to an authenticator app; nothing is stored
    /// until [`Members::enable_second_factor`] is given a first code.
    pub fn start_second_factor(&self, member: &Member) -> Result<Enrolment, ServiceError> {
        let secret = TotpSecret::generate();
        let pending = self
            .0
            .config
            .signing
            .master_key
            .seal(&pending_label(&member.id), secret.bytes())?;
        Ok(Enrolment { secret, pending })
    }

    /// The secret of an enrolment being confirmed, if `pending` was made for `member`.
    pub fn pending_secret(&self, member: &Member, pending: &str) -> Option<TotpSecret> {
        self.0
            .config
            .signing
            .master_key
            .open(&pending_label(&member.id), pending)
            .map(TotpSecret::from_bytes)
    }

    /// Turns `member`'s second factor on with the secret `pending` seals, once `code` shows
    /// the authenticator app has it; returns the recovery codes, to show once.
    pub async fn enable_second_factor(
        &self,
        member: &Member,
        actor: &Actor,
        pending: &str,
        code: &str,
    ) -> Result<Vec<Zeroizing<String>>, ServiceError> {
        let service = self.0;
        let secret = self
            .pending_secret(member, pending)
            .ok_or_else(|| ValidationError::new("pending", "is not this member's enrolment"))?;
        let now = service.clock.now();
        let Some(step) = secret.check(code, now, None) else {
            return Err(ValidationError::new(
                "code",
                "is not the code your authenticator app shows now",
            )
            .into());
        };
        let sealed = service
            .config
            .signing
            .master_key
            .seal(member.id.as_str(), secret.bytes())?;
        let codes = generate_recovery_codes();
        let digests: Vec<LookupDigest> = codes.iter().map(|c| recovery_code_digest(c)).collect();
        let event = actor.event(
            &member.organization_id,
            now,
            "member.second_factor_enabled",
            Some(member.id.as_str()),
            Default::default(),
        );
        service
            .store
            .set_member_totp(&member.id, Some(&sealed), &digests, &event)
            .await?;
        // The code that confirmed it has been used.
        service
            .store
            .use_totp_step(&member.id, i64::try_from(step).unwrap_or(i64::MAX))
            .await?;
        Ok(codes)
    }

    /// Turns `member`'s second factor off, after checking its password.
    pub async fn disable_second_factor(
        &self,
        member: &Member,
        actor: &Actor,
        password: &str,
    ) -> Result<(), ServiceError> {
        let service = self.0;
        self.check_present_password(member, password, "password")
            .await?;
        let event = actor.event(
            &member.organization_id,
            service.clock.now(),
            "member.second_factor_disabled",
            Some(member.id.as_str()),
            Default::default(),
        );
        service
            .store
            .set_member_totp(&member.id, None, &[], &event)
            .await?;
        Ok(())
    }

    /// Turns off the second factor of the member with `email`, for the operator: the way
    /// back in for a member who lost both the authenticator and the recovery codes.
    pub async fn reset_second_factor(
        &self,
        operator: &Operator,
        email: &str,
    ) -> Result<Member, ServiceError> {
        let service = self.0;
        let member = self.by_email(operator, email).await?;
        let event = operator.actor().event(
            &member.organization_id,
            service.clock.now(),
            "member.second_factor_disabled",
            Some(member.id.as_str()),
            json!({ "by": "operator" })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        service
            .store
            .set_member_totp(&member.id, None, &[], &event)
            .await?;
        Ok(Member {
            second_factor: false,
            ..member
        })
    }

    /// Refuses, naming `field`, unless `password` is `member`'s present one (as stored now,
    /// not as the session read it).
    async fn check_present_password(
        &self,
        member: &Member,
        password: &str,
        field: &'static str,
    ) -> Result<(), ServiceError> {
        let stored = self
            .0
            .store
            .member(&member.organization_id, &member.id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let password = Zeroizing::new(password.to_owned());
        let hash = stored.password_hash;
        if password.len() > PASSWORD_MAX_BYTES
            || !blocking(move || password_matches(&password, &hash)).await
        {
            return Err(ValidationError::new(field, "is not your present password").into());
        }
        Ok(())
    }

    /// How many of `member`'s recovery codes are unused.
    pub async fn recovery_codes_left(&self, member: &Member) -> Result<i64, ServiceError> {
        Ok(self.0.store.recovery_codes_left(&member.id).await?)
    }
}

/// What a login challenge is sealed for, so that no other sealed value reads as one.
const CHALLENGE_LABEL: &str = "keyward login challenge v1";

/// What a pending enrolment is sealed for: its member alone.
fn pending_label(id: &UserId) -> String {
    format!("keyward totp enrolment v1 {id}")
}
