//! Organization members: the people who log in to the dashboard.
//!
//! A member has an email and a password. The password is stored only as an argon2id hash
//! (a PHC string with its own salt and cost); a login session is a random token kept in a
//! cookie, stored only as its SHA-256 [`LookupDigest`], like every other secret here.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::credential::ValidationError;
use crate::digest::{LookupDigest, to_hex};
use crate::secret::fill_random;
use crate::typeid::{OrganizationId, UserId};

/// Shortest accepted password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Longest accepted password, in bytes: a bound on the work one login attempt can ask for.
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Longest accepted email, in bytes (RFC 5321's path limit).
const EMAIL_MAX_BYTES: usize = 254;

/// A member of an organization, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `user_…`.
    pub id: UserId,
    /// The organization the member manages.
    pub organization_id: OrganizationId,
    /// The login name, lower-cased.
    pub email: String,
    /// The argon2id hash of the password, as a PHC string.
    pub password_hash: String,
    /// When the member was added.
    pub created_at: OffsetDateTime,
    /// When the password was last set: sessions older than this are void.
    pub password_changed_at: OffsetDateTime,
    /// What the member may do in the organization.
    pub role: MemberRole,
    /// When the member last logged in; `None` before the first login.
    pub last_login_at: Option<OffsetDateTime>,
    /// Whether logging in also asks for a one-time code (TOTP) or a recovery code.
    pub second_factor: bool,
}

/// What a member may do in the organization. Owners and admins manage members as well as
/// everything else; developers manage credentials, rules, roles and webhooks but not
/// members; viewers read. Only an owner makes or unmakes an owner, and an organization
/// always keeps one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Everything, including making other owners.
    Owner,
    /// Everything but making, changing or removing owners.
    Admin,
    /// Credentials, IP rules, roles and webhooks; sees members but does not manage them.
    Developer,
    /// Reads everything; changes nothing.
    Viewer,
}

/// The scope resource of member management. No credential holds it, whatever its scopes
/// say: only members (and the operator) manage members.
pub const MEMBERS_RESOURCE: &str = "members";

impl MemberRole {
    /// Every role, most powerful first.
    pub const ALL: [MemberRole; 4] = [
        MemberRole::Owner,
        MemberRole::Admin,
        MemberRole::Developer,
        MemberRole::Viewer,
    ];

    /// The role's stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Owner => "owner",
            MemberRole::Admin => "admin",
            MemberRole::Developer => "developer",
            MemberRole::Viewer => "viewer",
        }
    }

    /// The role named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// What the role lets a member do, in a sentence's end.
    pub fn summary(self) -> &'static str {
        match self {
            MemberRole::Owner => "manages everything, including owners",
            MemberRole::Admin => "manages everything, and members other than owners",
            MemberRole::Developer => "manages credentials, IP rules, roles and webhooks",
            MemberRole::Viewer => "reads everything; changes nothing",
        }
    }

    /// Whether the role allows what the scope `resource:action` names.
    pub fn allows(self, resource: &str, action: &str) -> bool {
        match self {
            MemberRole::Owner | MemberRole::Admin => true,
            // Every member sees who else manages the organization.
            _ if action == "read" => true,
            MemberRole::Developer => resource != MEMBERS_RESOURCE,
            MemberRole::Viewer => false,
        }
    }

    /// Whether a member of this role may give `role` to a member, or change or remove a
    /// member who has it.
    pub fn may_assign(self, role: MemberRole) -> bool {
        match self {
            MemberRole::Owner => true,
            MemberRole::Admin => role != MemberRole::Owner,
            MemberRole::Developer | MemberRole::Viewer => false,
        }
    }
}

impl std::fmt::Display for MemberRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MemberRole {
    type Err = ValidationError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name).ok_or_else(|| {
            ValidationError::new("role", "must be one of owner, admin, developer, viewer")
        })
    }
}

/// Checks an email address and returns its stored form: trimmed and lower-cased.
///
/// Only the shape is checked (one `@`, something on each side, no spaces or control
/// characters, at most 254 bytes); no mail is sent.
pub fn validate_email(email: &str) -> Result<String, ValidationError> {
    let email = email.trim().to_lowercase();
    let refuse = |message: &str| Err(ValidationError::new("email", message));
    if email.is_empty() {
        return refuse("is required");
    }
    if email.len() > EMAIL_MAX_BYTES {
        return refuse("must be at most 254 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("must not contain spaces or control characters");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => refuse("must look like name@example.com"),
    }
}

/// Checks a new password's length: at least 12 characters, at most 1,024 bytes.
pub fn validate_password(password: &str) -> Result<(), ValidationError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(ValidationError::new(
            "password",
            format!("must be at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(ValidationError::new(
            "password",
            format!("must be at most {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Hashes a password with argon2id (19 MiB, 2 passes: OWASP's minimum) and a fresh salt.
/// Slow by design: call it off the async threads.
pub fn hash_password(password: &str) -> String {
    #[expect(
        clippy::expect_used,
        reason = "argon2id with its default parameters and a generated salt cannot fail"
    )]
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2id hashing with default parameters")
        .to_string()
}

/// Whether `password` matches `stored` (a PHC string); a malformed hash matches nothing.
/// Slow by design: call it off the async threads.
pub fn password_matches(password: &str, stored: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// A hash of no one's password, checked when a login names an unknown email so that the
/// answer takes as long as for a known one.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&generate_password()))
}

/// A random password of 20 characters from an alphabet without look-alikes (about 100
/// bits), for `keyward users add` to print once.
pub fn generate_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXYZ2345679";
    let mut bytes = Zeroizing::new([0u8; 20]);
    fill_random(bytes.as_mut());
    // 256 is not a multiple of the alphabet's 52 letters: the bias is below 2^-2 per
    // character and costs under a bit of the 114 drawn.
    Zeroizing::new(
        bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect(),
    )
}

/// A token handed to a browser: 32 random bytes as 64 hex characters, kept in a login
/// session's cookie or an invitation's link, and stored only as its digest.
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// A fresh token.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill_random(bytes.as_mut());
        Self(Zeroizing::new(to_hex(bytes.as_ref())))
    }

    /// The token as sent in the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored in its place.
    pub fn digest(&self) -> LookupDigest {
        LookupDigest::of(&self.0)
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(…)")
    }
}

/// An invitation to join an organization, as stored: whoever opens its link first (before
/// it expires) chooses an email and a password and becomes a member with its role. Its
/// token is in the link only; the store keeps the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The digest of its token.
    pub digest: LookupDigest,
    /// The organization the new member joins.
    pub organization_id: OrganizationId,
    /// The role the new member gets.
    pub role: MemberRole,
    /// Who made it (a member's id, or `cli`).
    pub created_by: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When the link stops working.
    pub expires_at: OffsetDateTime,
}

impl Invitation {
    /// A short handle for the invitation, shown in lists and used to withdraw it: the
    /// first 16 hex digits of its digest (which does not reveal the token).
    pub fn handle(&self) -> String {
        to_hex(&self.digest.as_bytes()[..8])
    }
}

/// The issuer an authenticator app shows beside a member's codes.
pub const TOTP_ISSUER: &str = "Keyward";
/// Recovery codes made when a second factor is turned on.
pub const RECOVERY_CODES: usize = 10;

/// A member's TOTP secret (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of
/// clock skew either way): 20 random bytes, kept sealed at rest.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A fresh secret of 160 bits, as RFC 4226 recommends.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; 20]);
        fill_random(&mut bytes);
        Self(bytes)
    }

    /// The secret of these bytes (opened from the store).
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The secret an authenticator app was given in base32, if it is one.
    pub fn from_base32(text: &str) -> Option<Self> {
        let secret = totp_rs::Secret::try_from_base32(text.trim()).ok()?;
        Some(Self(Zeroizing::new(secret.as_ref().to_vec())))
    }

    /// The bytes, to seal.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, account: &str) -> Option<totp_rs::Totp> {
        totp_rs::Builder::new()
            .with_secret(self.0.to_vec())
            .with_account_name(account)
            .with_issuer(Some(TOTP_ISSUER))
            .build()
            .ok()
    }

    /// The secret in base32, for typing into an authenticator app.
    pub fn base32(&self) -> String {
        self.totp("")
            .map(|t| t.secret().to_base32())
            .unwrap_or_default()
    }

    /// The `otpauth://` URI an authenticator app reads (as a link or a QR code).
    pub fn url(&self, account: &str) -> String {
        self.totp(account)
            .and_then(|t| t.to_url().ok())
            .unwrap_or_default()
    }

    /// The time step `code` is valid for at `at` (one step of skew either way), if it is
    /// and the step is after `after`: a code is accepted once.
    pub fn check(&self, code: &str, at: OffsetDateTime, after: Option<u64>) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let time = u64::try_from(at.unix_timestamp()).ok()?;
        let step = self.totp("")?.check(&code, time)?;
        after.is_none_or(|last| step > last).then_some(step)
    }

    /// The code of the step holding `at` (for tests and tools).
    pub fn code_at(&self, at: OffsetDateTime) -> String {
        let time = u64::try_from(at.unix_timestamp()).unwrap_or_default();
        self.totp("")
            .map(|t| t.generate(time).to_string())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

/// Fresh recovery codes, to show once: 16 characters of a 32-letter alphabet each (80
/// bits), grouped by four, e.g. `k7qd-m2xr-…`. Each is stored as its
/// [`recovery_code_digest`] and works once.
pub fn generate_recovery_codes() -> Vec<Zeroizing<String>> {
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz234567890";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = Zeroizing::new([0u8; 16]);
            fill_random(bytes.as_mut());
            let letters: Vec<char> = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .collect();
            Zeroizing::new(
                letters
                    .chunks(4)
                    .map(|c| c.iter().collect::<String>())
                    .collect::<Vec<_>>()
                    .join("-"),
            )
        })
        .collect()
}

/// What a recovery code is stored as: the SHA-256 of its letters, lower-cased, without
/// spaces or dashes (however it was typed).
pub fn recovery_code_digest(code: &str) -> LookupDigest {
    let letters: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    LookupDigest::of(&letters)
}

/// A login session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The digest of its token.
    pub digest: LookupDigest,
    /// Whose session it is.
    pub user_id: UserId,
    /// When the member logged in.
    pub created_at: OffsetDateTime,
    /// When it ends, however active the member is.
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_codes_follow_rfc_6238_and_count_once() {
        // RFC 6238's SHA-1 test secret and its vector at 59 s (8 digits 94287082: the
        // last six are what a 6-digit authenticator shows).
        let secret = TotpSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec()));
        let at = OffsetDateTime::from_unix_timestamp(59).unwrap();
        assert_eq!(secret.code_at(at), "287082");
        let step = secret.check("287 082", at, None).unwrap();
        assert_eq!(step, 1);
        assert_eq!(secret.check("287082", at, Some(step)), None, "once only");
        assert_eq!(secret.check("287083", at, None), None);
        assert_eq!(secret.check("28708", at, None), None);
        let later = OffsetDateTime::from_unix_timestamp(59 + 90).unwrap();
        assert_eq!(secret.check("287082", later, None), None, "too old");
        assert!(
            secret
                .url("ada@example.com")
                .starts_with("otpauth://totp/Keyward:ada%40example.com?")
        );
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let read = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(read.bytes(), secret.bytes());
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_however_typed() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 19 && c.matches('-').count() == 3)
        );
        let mut unique: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let typed = codes[0].to_uppercase().replace('-', " ");
        assert_eq!(
            recovery_code_digest(&typed),
            recovery_code_digest(&codes[0])
        );
    }

    #[test]
    fn roles_bound_what_members_do() {
        use MemberRole::*;
        for role in MemberRole::ALL {
            assert_eq!(MemberRole::parse(role.as_str()), Some(role));
            assert!(role.allows("keys", "read"));
        }
        assert!(Developer.allows("keys", "write"));
        assert!(!Developer.allows(MEMBERS_RESOURCE, "write"));
        assert!(!Viewer.allows("keys", "write"));
        assert!(!Viewer.allows("ip_rules", "delete"));
        assert!(Viewer.allows(MEMBERS_RESOURCE, "read"));
        assert!(!Developer.allows(MEMBERS_RESOURCE, "delete"));
        assert!(Admin.allows(MEMBERS_RESOURCE, "write"));
        assert!(Owner.may_assign(Owner) && Admin.may_assign(Admin));
        assert!(!Admin.may_assign(Owner));
        assert!(!Developer.may_assign(Viewer) && !Viewer.may_assign(Viewer));
        assert!("root".parse::<MemberRole>().is_err());
    }

    #[test]
    fn emails_are_lower_cased_and_checked_for_shape() {
        assert_eq!(
            validate_email("  Ada@Example.COM ").map_err(|e| e.message),
            Ok("ada@example.com".to_owned())
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a da@example.com",
            "a@b@c",
            "a\u{7}@b",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(validate_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_match_only_themselves() {
        let hash = hash_password("correct horse battery");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse battery!", &hash));
        assert!(!password_matches("correct horse battery", "not a hash"));
        assert_ne!(hash, hash_password("correct horse battery"), "salts differ");
    }

    #[test]
    fn password_length_is_bounded_both_ways() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("twelve chars").is_ok());
        assert!(validate_password(&"x".repeat(PASSWORD_MAX_BYTES + 1)).is_err());
    }

    #[test]
    fn generated_passwords_and_tokens_are_long_and_distinct() {
        let password = generate_password();
        assert_eq!(password.chars().count(), 20);
        assert!(validate_password(&password).is_ok());
        assert_ne!(*password, *generate_password());
        let token = SessionToken::generate();
        assert_eq!(token.expose().len(), 64);
        assert!(token.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token.digest(), SessionToken::generate().digest());
        assert!(!format!("{token:?}").contains(token.expose()));
    }
}
