//! Access tokens from the management side: issuing them to an authenticated client
//! (OAuth 2.0 client credentials), revoking one, and the signing keys behind them. A check
//! of a presented token is the engine's.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward_core::audit::Actor;
use keyward_core::clock::{rfc3339, to_millis};
use keyward_core::typeid::CredentialId;
use keyward_engine::tokens::{AccessTokenClaims, TOKEN_TYPE, TokenRules, looks_like_jwt, token_id};
use keyward_engine::{Admitted, Identity};
use keyward_store::{RevokedToken, SigningKeyRecord};
use serde::Serialize;
use serde_json::{Map, json};
use time::OffsetDateTime;

use crate::error::ServiceError;
use crate::principal::Operator;
use crate::service::Service;
use crate::signing::{ActiveKey, RingState, SigningConfig};

/// Counts the access tokens issued.
pub const TOKENS_ISSUED: &str = "keyward_tokens_issued_total";

/// Whom a token is issued to.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The credential id (`sub`).
    pub credential_id: &'a str,
    /// The organization id (`client_id`).
    pub client_id: &'a str,
    /// The granted scopes, space-separated.
    pub scope: &'a str,
    /// `live` or `test`.
    pub environment: &'a str,
    /// The generation of the credential's tokens (`set_at` of its token cutoff, in
    /// milliseconds since the epoch; 0 without one).
    pub generation: i64,
    /// The latest `exp` (seconds since the epoch): the client secret's own end, when it is
    /// a rotated-out secret in its grace period.
    pub not_after: Option<i64>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs a token for `subject` with `key`: `iss` and `aud` are set here from `rules`,
/// `exp` from `config`'s token lifetime (never past `subject.not_after`), `iat` from
/// `now`, and a fresh `jti` of the subject's generation. `None` if the key could not
/// sign.
pub fn mint(
    key: &ActiveKey,
    (config, rules): (&SigningConfig, &TokenRules),
    now: OffsetDateTime,
    subject: Subject<'_>,
) -> Option<(String, AccessTokenClaims)> {
    let iat = now.unix_timestamp();
    let lifetime = i64::try_from(config.token_lifetime.as_secs()).unwrap_or(i64::MAX);
    let claims = AccessTokenClaims {
        iss: rules.issuer.clone(),
        sub: subject.credential_id.to_owned(),
        client_id: subject.client_id.to_owned(),
        aud: rules.audience.clone(),
        exp: iat
            .saturating_add(lifetime)
            .min(subject.not_after.unwrap_or(i64::MAX)),
        iat,
        jti: token_id(subject.generation),
        scope: subject.scope.to_owned(),
        env: subject.environment.to_owned(),
    };
    let header = Header {
        alg: key.algorithm.name(),
        typ: TOKEN_TYPE,
        kid: &key.kid,
    };
    let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).ok()?));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Some((token, claims))
}

/// A signing key as the operator sees it: never its private half, sealed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// Its key id (the JWT `kid`).
    pub kid: String,
    /// The JWS algorithm, e.g. `ES256`.
    pub algorithm: String,
    /// When it starts signing (it is published from when it is made).
    pub activates_at: OffsetDateTime,
    /// When the last token it signed expires, once a newer key signs: it is unpublished
    /// after this.
    pub published_until: Option<OffsetDateTime>,
    /// Whether its private half is still stored (sealed); erased once a newer key signs.
    pub private_key_sealed: bool,
}

impl From<&SigningKeyRecord> for SigningKey {
    fn from(record: &SigningKeyRecord) -> Self {
        Self {
            kid: record.kid.clone(),
            algorithm: record.algorithm.clone(),
            activates_at: record.activates_at,
            published_until: record.published_until,
            private_key_sealed: record.sealed_private_key.is_some(),
        }
    }
}

/// An access token issued, shown once.
pub struct IssuedToken {
    /// The JWT.
    pub access_token: String,
    /// The scopes it grants, space-separated.
    pub scope: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Everything but the token.
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why no token was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFailure {
    /// A requested scope is unknown, or not held by the credential, or none was named.
    #[error("a requested scope is unknown or not held by the credential")]
    InvalidScope,
    /// No key can sign, or the store cannot be reached.
    #[error("the service is temporarily unavailable")]
    Unavailable,
}

/// Access tokens and their signing keys.
#[derive(Clone, Copy)]
pub struct Tokens<'a>(pub(crate) &'a Service);

impl Service {
    /// Access tokens and their signing keys.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens(self)
    }
}

impl Tokens<'_> {
    /// Issues a token to the authenticated `client`, for the scopes of `requested`
    /// (space-separated, each known and held) or, without it, all it holds. A client
    /// secret in its grace period gets a token that ends with it.
    pub async fn issue(
        &self,
        client: &Admitted,
        requested: Option<&str>,
    ) -> Result<IssuedToken, TokenFailure> {
        let service = self.0;
        let identity = &client.identity;
        let scope = match requested {
            Some(requested) => self.granted_scope(identity, requested)?,
            None => identity.scopes_text().to_owned(),
        };
        let now = service.clock.now();
        let ring = service
            .keys
            .current(now)
            .await
            .map_err(|_| TokenFailure::Unavailable)?;
        let Some(key) = ring.signer(now) else {
            tracing::error!("no signing key can sign; check the master key");
            return Err(TokenFailure::Unavailable);
        };
        let credential = &identity.credential;
        let subject = Subject {
            credential_id: credential.id.as_str(),
            client_id: credential.organization_id.as_str(),
            scope: &scope,
            environment: credential.environment.as_str(),
            // A rotated-out secret in its grace mints tokens of the generation before the
            // rotation, which end with that secret.
            generation: match (credential.token_cutoff, client.expires_at) {
                (None, _) => 0,
                (Some(cutoff), None) => to_millis(cutoff.set_at),
                (Some(cutoff), Some(_)) => to_millis(cutoff.set_at) - 1,
            },
            not_after: client.expires_at.map(|ms| ms.div_euclid(1_000)),
        };
        let signing = service.keys.config();
        let (access_token, claims) = mint(&key, (signing, service.keys.rules()), now, subject)
            .ok_or(TokenFailure::Unavailable)?;
        metrics::counter!(TOKENS_ISSUED).increment(1);
        Ok(IssuedToken {
            access_token,
            scope,
            expires_in: u64::try_from(claims.exp - claims.iat).unwrap_or(0),
        })
    }

    /// The requested scopes, each known and held by the credential, in canonical form.
    fn granted_scope(&self, identity: &Identity, requested: &str) -> Result<String, TokenFailure> {
        let catalogue = &self.0.engine.config().catalogue;
        let mut granted: Vec<String> = Vec::new();
        for text in requested.split(' ').filter(|s| !s.is_empty()) {
            let scope = catalogue
                .parse(text)
                .map_err(|_| TokenFailure::InvalidScope)?;
            if !identity.scopes.grants(&scope) {
                return Err(TokenFailure::InvalidScope);
            }
            let canonical = scope.to_string();
            if !granted.contains(&canonical) {
                granted.push(canonical);
            }
        }
        if granted.is_empty() {
            return Err(TokenFailure::InvalidScope);
        }
        Ok(granted.join(" "))
    }

    /// Revokes `presented`, an access token of the authenticated client `client` (calling
    /// from `ip`): refused at once on this node and, through the organization's change
    /// counter, within the cache interval on every other. Anything else — not a token,
    /// not ours, another organization's — changes nothing and is no error, so the answer
    /// tells nothing about a token.
    pub async fn revoke(
        &self,
        client: &Identity,
        presented: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), ServiceError> {
        let service = self.0;
        if !looks_like_jwt(presented) {
            return Ok(());
        }
        let now = service.clock.now();
        let Some(claims) = service.engine.authentic_claims(presented).await? else {
            return Ok(());
        };
        let organization = &client.credential.organization_id;
        let Ok(credential_id) = CredentialId::parse(&claims.sub) else {
            return Ok(());
        };
        if claims.client_id != organization.as_str() {
            return Ok(());
        }
        let leeway = service.keys.rules().leeway;
        let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(now)
            + time::Duration::try_from(leeway).unwrap_or(time::Duration::ZERO);
        let revoked = RevokedToken {
            jti: claims.jti.clone(),
            organization_id: organization.clone(),
            credential_id,
            expires_at,
            revoked_at: now,
        };
        let actor = Actor {
            id: client.credential.id.to_string(),
            source_ip: ip,
            via: None,
        };
        let mut details = Map::new();
        details.insert("jti".into(), json!(claims.jti));
        details.insert("expires_at".into(), json!(rfc3339(expires_at)));
        let event = actor.event(
            organization,
            now,
            "token.revoked",
            Some(claims.sub.as_str()),
            details,
        );
        service.store.revoke_token(&revoked, &event).await?;
        service.engine.forget_secret(presented);
        Ok(())
    }

    /// The signing keys as this node knows them now (making the first one, or the next
    /// one due, on the way).
    pub async fn keys(&self) -> Result<Arc<RingState>, ServiceError> {
        let service = self.0;
        Ok(service.keys.current(service.clock.now()).await?)
    }

    /// Makes a new signing key: published now, signing after the publish lead (at once
    /// when it is the first). A node whose master key does not open the stored keys makes
    /// none; the error's cause says so.
    pub async fn rotate_signing_key(&self, _: &Operator) -> Result<SigningKey, ServiceError> {
        let service = self.0;
        let now = service.clock.now();
        // Read (and make the first key) before adding the next.
        service.keys.current(now).await?;
        Ok(SigningKey::from(&service.keys.rotate(now).await?))
    }

    /// The signing keys as stored, oldest first.
    pub async fn signing_keys(&self, _: &Operator) -> Result<Vec<SigningKey>, ServiceError> {
        let records = self.0.keys.records().await?;
        Ok(records.iter().map(SigningKey::from).collect())
    }
}
