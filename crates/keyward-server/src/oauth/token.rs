//! JWT access tokens (RFC 9068): signed with the ring's active key, checked against its
//! published keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::oauth::OAuthConfig;
use crate::oauth::keys::{ActiveKey, RingState, SigningAlgorithm, is_low_s, random_id};

/// The `typ` of an access token's header.
pub const TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The credential id.
    pub sub: String,
    /// The organization id (the OAuth client id).
    pub client_id: String,
    /// The API the token is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// The token's id, for revocation.
    pub jti: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The credential's environment, `live` or `test`.
    pub env: String,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs a token for these claims, without `iss`, `aud`, `exp`, `iat` and `jti`, which
/// are set here. `None` if the key could not sign.
pub fn issue(
    key: &ActiveKey,
    config: &OAuthConfig,
    now: OffsetDateTime,
    subject: Subject<'_>,
) -> Option<(String, AccessTokenClaims)> {
    let iat = now.unix_timestamp();
    let lifetime = i64::try_from(config.token_lifetime.as_secs()).unwrap_or(i64::MAX);
    let claims = AccessTokenClaims {
        iss: config.issuer.clone(),
        sub: subject.credential_id.to_owned(),
        client_id: subject.client_id.to_owned(),
        aud: config.audience.clone(),
        exp: iat.saturating_add(lifetime),
        iat,
        jti: random_id(),
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
}

/// Why a presented token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a JWS of ours at all: bad shape, header, `typ` or algorithm.
    Malformed,
    /// Signed by no key we publish, or its signature or claims are wrong.
    Invalid,
    /// Signed by an unknown `kid`: the ring may need a fresh read.
    UnknownKey,
    /// Authentic, but expired beyond the leeway.
    Expired(Box<AccessTokenClaims>),
}

/// Whether `presented` has the shape of a compact JWS (three base64url parts).
pub fn looks_like_jwt(presented: &str) -> bool {
    presented.starts_with("eyJ") && presented.bytes().filter(|b| *b == b'.').count() == 2
}

/// Checks a token's header, signature and claims against `ring`.
pub fn verify(
    presented: &str,
    ring: &RingState,
    config: &OAuthConfig,
) -> Result<AccessTokenClaims, TokenRejection> {
    let header = decode_header(presented).map_err(|_| TokenRejection::Malformed)?;
    let typ_ok = header.typ.as_deref().is_some_and(|typ| {
        typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenRejection::Malformed);
    }
    let kid = header.kid.as_deref().ok_or(TokenRejection::Malformed)?;
    let key = ring.key(kid).ok_or(TokenRejection::UnknownKey)?;
    if header.alg != key.jwt_algorithm() {
        return Err(TokenRejection::Invalid);
    }
    if key.algorithm == SigningAlgorithm::Es256 {
        let signature = presented
            .rsplit('.')
            .next()
            .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
            .ok_or(TokenRejection::Invalid)?;
        if !is_low_s(&signature) {
            // The malleable twin of a token: only the form Keyward issued is accepted.
            return Err(TokenRejection::Invalid);
        }
    }
    let mut validation = Validation::new(key.jwt_algorithm());
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = config.leeway.as_secs();
    match decode::<AccessTokenClaims>(presented, key.decoding_key(), &validation) {
        Ok(data) => Ok(data.claims),
        Err(error) if matches!(error.kind(), ErrorKind::ExpiredSignature) => {
            // The signature was checked before the claims: an authentic, expired token.
            let claims = jsonwebtoken::dangerous::insecure_decode::<AccessTokenClaims>(presented)
                .map_err(|_| TokenRejection::Invalid)?
                .claims;
            Err(TokenRejection::Expired(Box::new(claims)))
        }
        Err(_) => Err(TokenRejection::Invalid),
    }
}
