//! Leak reports: what a report of secrets found in public does
//! ([`Credentials::report_exposed`](crate::credentials::Credentials::report_exposed)), and
//! the deployment's settings for it.

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_engine::throttle::ThrottleConfig;
use time::Duration;

/// What a leak report does to a live key it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeakAction {
    /// Revoke it (the default): a key in public is a key anyone may use.
    #[default]
    Revoke,
    /// Disable it, reversibly.
    Disable,
    /// Only record the report (`key.exposed` in the audit log).
    Flag,
}

/// How leak reports are handled.
#[derive(Debug, Clone)]
pub struct LeakConfig {
    /// What a report does to a live key.
    pub action: LeakAction,
    /// How many reports an address may send: each report counts as a failure would.
    pub reports: ThrottleConfig,
    /// The keys GitHub signs its secret scanning reports with; none, and its reports are
    /// refused.
    pub github_keys: Option<Arc<SigningKeys>>,
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            action: LeakAction::Revoke,
            reports: ThrottleConfig {
                threshold: 10,
                window: Duration::minutes(1),
                block: Duration::minutes(1),
                max_block: Duration::hours(1),
            },
            github_keys: None,
        }
    }
}

/// The public keys a partner signs its reports with (GitHub's secret scanning), by
/// identifier: ECDSA P-256 with SHA-256, signatures in ASN.1 DER, base64 in a header.
pub struct SigningKeys {
    keys: Vec<(String, ParsedPublicKey)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SigningKeys")
            .field("identifiers", &ids)
            .finish()
    }
}

impl SigningKeys {
    /// The keys of a document in the shape GitHub publishes them
    /// (`{"public_keys": [{"key_identifier", "key", …}]}`, each key a PEM public key).
    pub fn from_json(text: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            public_keys: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            key_identifier: String,
            key: String,
        }
        let document: Document =
            serde_json::from_str(text).map_err(|e| format!("not a public key document: {e}"))?;
        let mut keys = Vec::new();
        for entry in document.public_keys {
            let der: String = entry
                .key
                .lines()
                .filter(|line| !line.starts_with("-----"))
                .collect();
            let der = STANDARD
                .decode(der.trim())
                .map_err(|e| format!("key {}: not base64: {e}", entry.key_identifier))?;
            let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).map_err(|e| {
                format!("key {}: not a P-256 public key: {e}", entry.key_identifier)
            })?;
            keys.push((entry.key_identifier, key));
        }
        if keys.is_empty() {
            return Err("the document holds no key".to_owned());
        }
        Ok(Self { keys })
    }

    /// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) signs `body` with the
    /// key named `identifier`.
    pub fn verify(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
        let Some((_, key)) = self.keys.iter().find(|(id, _)| id == identifier) else {
            return false;
        };
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        key.verify_sig(body, &signature).is_ok()
    }
}

/// A signed report from a partner's secret scanning: the body as received, with the key
/// identifier and signature its headers carry.
#[derive(Debug, Clone, Copy)]
pub struct SignedReport<'r> {
    /// The key the partner signed with.
    pub key_identifier: &'r str,
    /// Base64 of the signature over `body`.
    pub signature: &'r str,
    /// The body, exactly as received: a JSON array of `{token, type, url, source}`.
    pub body: &'r [u8],
}

/// What a partner is told of each token it reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenLabel {
    /// SHA-256 of the token, in hex (the token itself is not sent back).
    pub token_hash: String,
    /// The type the partner gave it.
    pub token_type: String,
    /// `true_positive` when it was a live secret here, else `false_positive`.
    pub label: &'static str,
}

/// A report of secrets found in public, by anyone.
#[derive(Debug, Clone, Copy)]
pub struct LeakReport<'r> {
    /// The secrets, as found.
    pub secrets: &'r [String],
    /// Where they were found (a URL, say), for the audit log.
    pub source: &'r str,
    /// The reporter's address.
    pub reporter_ip: Option<IpAddr>,
}

/// Most secrets one report may name.
pub const MAX_REPORTED: usize = 100;
/// Longest source of a report, in characters (a URL, a description of a place): one line.
pub const SOURCE_MAX_CHARS: usize = 1_000;
