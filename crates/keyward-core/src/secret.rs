//! The two secrets of a credential: the API key and the OAuth client secret.
//!
//! Format: `{prefix}_{marker}_{body}{check}`, where `marker` is `live` or `test` for an API
//! key and `cs` for a client secret, `body` is random base62 drawn without modulo bias, and
//! `check` is the CRC32 of everything before it in 6 base62 characters (GitHub's token
//! design). A checksum rejects typos and made-up keys before any store lookup, and lets
//! `keyward scan` find leaked keys with almost no false positives.
//!
//! A [`PlainSecret`] lives only between generation and the response that shows it once;
//! afterwards only its [`SecretDigests`] exist.

use std::fmt;

use zeroize::Zeroizing;

use crate::credential::Environment;
use crate::digest::SecretDigests;
pub use crate::random::fill_random;

/// Base62 in the order `0-9A-Za-z`.
///
/// WARNING: changing this alphabet, [`CHECK_LEN`], [`API_KEY_BODY_LEN`] or
/// [`CLIENT_SECRET_BODY_LEN`] makes every issued secret fail its checksum or its parse.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters in an API key: 32 × log2(62) ≈ 190 bits.
pub const API_KEY_BODY_LEN: usize = 32;
/// Random characters in a client secret: 40 × log2(62) ≈ 238 bits.
pub const CLIENT_SECRET_BODY_LEN: usize = 40;
/// Characters of the base62 CRC32 checksum (62⁶ > 2³²).
pub const CHECK_LEN: usize = 6;
/// The marker of a client secret, in place of the environment of an API key.
const CLIENT_SECRET_MARKER: &str = "cs";
/// Largest multiple of 62 that fits in a byte: bytes at or above it are rejected, so every
/// character is equally likely.
const REJECTION_BOUND: u8 = 248;

/// Which of a credential's two secrets a string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// An API key, marked with its environment.
    ApiKey(Environment),
    /// An OAuth client secret.
    ClientSecret,
}

impl SecretKind {
    fn marker(self) -> &'static str {
        match self {
            SecretKind::ApiKey(env) => env.as_str(),
            SecretKind::ClientSecret => CLIENT_SECRET_MARKER,
        }
    }

    fn body_len(self) -> usize {
        match self {
            SecretKind::ApiKey(_) => API_KEY_BODY_LEN,
            SecretKind::ClientSecret => CLIENT_SECRET_BODY_LEN,
        }
    }

    /// The stored name of the kind: `api_key` or `client_secret`.
    ///
    /// WARNING: these names are in every stored secret's row; changing one makes the
    /// secrets stored under it unknown.
    pub fn storage_name(self) -> &'static str {
        match self {
            SecretKind::ApiKey(_) => "api_key",
            SecretKind::ClientSecret => "client_secret",
        }
    }

    /// The kind stored as `name` for a credential of `environment` (an API key carries its
    /// credential's environment); `None` for a name no version of Keyward writes.
    pub fn from_storage_name(name: &str, environment: Environment) -> Option<Self> {
        match name {
            "api_key" => Some(SecretKind::ApiKey(environment)),
            "client_secret" => Some(SecretKind::ClientSecret),
            _ => None,
        }
    }
}

/// A deployment's key prefix: 2–8 lowercase ASCII letters or digits (default `kw`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

/// Why a deployment key prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key prefix is 2 to 8 lowercase letters or digits")]
pub struct BadKeyPrefix;

/// Whether `prefix` is 2–8 lowercase ASCII letters or digits.
fn is_key_prefix(prefix: &str) -> bool {
    (2..=8).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl KeyPrefix {
    /// Checks and wraps a prefix.
    pub fn new(prefix: &str) -> Result<Self, BadKeyPrefix> {
        if is_key_prefix(prefix) {
            Ok(Self(prefix.to_owned()))
        } else {
            Err(BadKeyPrefix)
        }
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for KeyPrefix {
    fn default() -> Self {
        Self("kw".to_owned())
    }
}

/// A secret in plain text. Exists only to be shown once; never logged (its `Debug` prints
/// no secret) and wiped from memory on drop.
pub struct PlainSecret {
    text: Zeroizing<String>,
    kind: SecretKind,
}

impl PlainSecret {
    /// Generates a new secret of this kind from the OS CSPRNG.
    pub fn generate(prefix: &KeyPrefix, kind: SecretKind) -> Self {
        let mut text = Zeroizing::new(String::with_capacity(64));
        text.push_str(prefix.as_str());
        text.push('_');
        text.push_str(kind.marker());
        text.push('_');
        push_random_base62(&mut text, kind.body_len());
        let check = checksum(&text);
        text.extend(check.iter().map(|&b| char::from(b)));
        Self { text, kind }
    }

    /// The secret text, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Which secret this is.
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// `{prefix}_{marker}_`, the part shown again later.
    pub fn display_prefix(&self) -> &str {
        let end = self.text.len() - self.kind.body_len() - CHECK_LEN;
        &self.text[..end]
    }

    /// The last four characters, shown again later to recognise the secret.
    pub fn hint(&self) -> &str {
        &self.text[self.text.len() - 4..]
    }

    /// The digests that are stored in its place.
    pub fn digests(&self) -> SecretDigests {
        SecretDigests::new(self.expose())
    }
}

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainSecret({:?}, [redacted])", self.kind)
    }
}

/// Why a presented string is not a well-formed secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    /// The string does not have the `{prefix}_{marker}_{body}{check}` shape.
    #[error("not a Keyward secret")]
    Shape,
    /// The shape is right but the checksum does not match: a typo or a made-up key.
    #[error("the secret's checksum does not match")]
    Checksum,
}

/// Checks a presented string's shape and checksum, and tells which secret it claims to be.
///
/// The deployment prefix is not compared: any well-formed prefix is accepted, so a
/// deployment can change its prefix without invalidating the keys it already issued.
pub fn parse_secret(text: &str) -> Result<SecretKind, SecretFormatError> {
    // Byte by byte: this runs on every presented credential.
    let bytes = text.as_bytes();
    let prefix_end = bytes
        .iter()
        .position(|&b| b == b'_')
        .ok_or(SecretFormatError::Shape)?;
    if !is_key_prefix(&text[..prefix_end]) {
        return Err(SecretFormatError::Shape);
    }
    let marked = &bytes[prefix_end + 1..];
    let marker_end = marked
        .iter()
        .position(|&b| b == b'_')
        .ok_or(SecretFormatError::Shape)?;
    let kind = match &marked[..marker_end] {
        b"live" => SecretKind::ApiKey(Environment::Live),
        b"test" => SecretKind::ApiKey(Environment::Test),
        marker if marker == CLIENT_SECRET_MARKER.as_bytes() => SecretKind::ClientSecret,
        _ => return Err(SecretFormatError::Shape),
    };
    let rest = &marked[marker_end + 1..];
    // A fold rather than `all`: no early exit, so the compiler checks many bytes at once.
    let alphanumeric = rest
        .iter()
        .fold(true, |all, b| all & b.is_ascii_alphanumeric());
    if rest.len() != kind.body_len() + CHECK_LEN || !alphanumeric {
        return Err(SecretFormatError::Shape);
    }
    let (signed, check) = text.split_at(text.len() - CHECK_LEN);
    if checksum(signed) != check.as_bytes() {
        return Err(SecretFormatError::Checksum);
    }
    Ok(kind)
}

/// The 6-character base62 CRC32 of `text`, most significant digit first (on the stack:
/// every check computes it).
fn checksum(text: &str) -> [u8; CHECK_LEN] {
    let mut value = crc32fast::hash(text.as_bytes());
    let mut digits = [b'0'; CHECK_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

/// Appends `count` uniformly random base62 characters, by rejection sampling of OS random
/// bytes: a byte ≥ 248 would favour the first characters under `% 62`, so it is dropped.
fn push_random_base62(out: &mut String, count: usize) {
    let mut pushed = 0;
    let mut buffer = Zeroizing::new([0u8; 64]);
    while pushed < count {
        fill_random(&mut buffer[..]);
        for &byte in buffer.iter() {
            if byte < REJECTION_BOUND && pushed < count {
                out.push(BASE62[(byte % 62) as usize] as char);
                pushed += 1;
            }
        }
    }
}

/// A secret found in a text by [`find_secrets`]: where it is, and which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundSecret<'t> {
    /// The secret, whole.
    pub text: &'t str,
    /// Its byte offset in the text searched.
    pub offset: usize,
    /// Which secret it is.
    pub kind: SecretKind,
}

impl FoundSecret<'_> {
    /// `{prefix}_{marker}_`, which may be shown.
    pub fn display_prefix(&self) -> &str {
        &self.text[..self.text.len() - self.kind.body_len() - CHECK_LEN]
    }

    /// The last four characters, which may be shown.
    pub fn hint(&self) -> &str {
        &self.text[self.text.len() - 4..]
    }
}

/// Every well-formed secret in `text` whose checksum holds, wherever it stands (in
/// quotes, after `=`, in a URL): a run of letters, digits and `_` that reads as a secret,
/// cut from the text at its first `_`-separated prefix of 2–8 characters. A string that
/// only looks like a key, with a checksum that does not match, is not one: that is what
/// keeps a scan of a repository free of false alarms.
pub fn find_secrets(text: &str) -> impl Iterator<Item = FoundSecret<'_>> {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() {
            // The next run of word characters.
            let start = at + bytes[at..].iter().position(|&b| is_word(b))?;
            let end = start
                + bytes[start..]
                    .iter()
                    .position(|&b| !is_word(b))
                    .unwrap_or(bytes.len() - start);
            at = end;
            let word = &text[start..end];
            // A secret is the whole run, or the run from a prefix that follows a `_` (a
            // variable name glued to it: `API_KEY_kw_live_…`).
            let starts = std::iter::once(0).chain(
                word.match_indices('_')
                    .map(|(i, _)| i + 1)
                    .filter(|&i| i < word.len()),
            );
            for from in starts {
                if let Ok(kind) = parse_secret(&word[from..]) {
                    return Some(FoundSecret {
                        text: &word[from..],
                        offset: start + from,
                        kind,
                    });
                }
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn secrets_are_found_wherever_they_stand_and_look_alikes_are_not() {
        let prefix = KeyPrefix::default();
        let key = PlainSecret::generate(&prefix, SecretKind::ApiKey(Environment::Live));
        let secret = PlainSecret::generate(&prefix, SecretKind::ClientSecret);
        let (key, secret) = (key.expose(), secret.expose());
        // The same shape with the last character changed: its checksum fails.
        let mut fake = key.to_owned();
        let last = fake.pop().unwrap();
        fake.push(if last == 'a' { 'b' } else { 'a' });
        let text = format!(
            "export API_KEY_{key}\nurl=https://x/?api_key={key}&a=1 \"{secret}\"\n{fake} x{key}y"
        );
        let found: Vec<_> = find_secrets(&text).collect();
        let texts: Vec<&str> = found.iter().map(|f| f.text).collect();
        assert_eq!(texts, [key, key, secret]);
        for f in &found {
            assert_eq!(&text[f.offset..f.offset + f.text.len()], f.text);
            assert_eq!(f.hint(), &f.text[f.text.len() - 4..]);
        }
        assert_eq!(found[0].display_prefix(), "kw_live_");
        assert_eq!(found[2].kind, SecretKind::ClientSecret);
        assert_eq!(found[2].display_prefix(), "kw_cs_");
        assert_eq!(find_secrets("").count(), 0);
        assert_eq!(find_secrets("____ kw_live_ é_live_x").count(), 0);
    }

    fn api_key(env: Environment) -> PlainSecret {
        PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(env))
    }

    #[test]
    fn an_api_key_has_the_documented_shape() {
        let key = api_key(Environment::Live);
        let text = key.expose();
        assert!(text.starts_with("kw_live_"));
        assert_eq!(text.len(), "kw_live_".len() + 32 + 6);
        assert_eq!(key.display_prefix(), "kw_live_");
        assert_eq!(key.hint(), &text[text.len() - 4..]);
        assert_eq!(
            parse_secret(text),
            Ok(SecretKind::ApiKey(Environment::Live))
        );
    }

    #[test]
    fn a_client_secret_has_its_own_marker() {
        let prefix = KeyPrefix::new("edns").unwrap();
        let secret = PlainSecret::generate(&prefix, SecretKind::ClientSecret);
        assert!(secret.expose().starts_with("edns_cs_"));
        assert_eq!(secret.expose().len(), "edns_cs_".len() + 40 + 6);
        assert_eq!(parse_secret(secret.expose()), Ok(SecretKind::ClientSecret));
    }

    #[test]
    fn rejects_a_key_with_one_character_changed_anywhere_in_its_body() {
        let key = api_key(Environment::Test);
        let text = key.expose().to_owned();
        for i in "kw_test_".len()..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(parse_secret(&changed).is_err(), "changed at {i}");
        }
    }

    #[test]
    fn rejects_strings_that_are_not_secrets() {
        for bad in [
            "",
            "kw_live_",
            "kw_prod_00000000000000000000000000000000000000",
            "KW_live_00000000000000000000000000000000000000",
            "k_live_00000000000000000000000000000000000000",
            "kw_live_0000000000000000000000000000000000000-",
            "kw_live_000000000000000000000000000000000000000",
            "eyJhbGciOiJFUzI1NiJ9.e30.sig",
        ] {
            assert_eq!(parse_secret(bad), Err(SecretFormatError::Shape), "{bad}");
        }
        assert_eq!(
            parse_secret("kw_live_00000000000000000000000000000000000000"),
            Err(SecretFormatError::Checksum)
        );
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let key = api_key(Environment::Live);
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.expose()[8..]), "{debug}");
    }

    #[test]
    fn refuses_bad_deployment_prefixes() {
        for bad in ["", "a", "abcdefghi", "Kw", "k_w", "kw-"] {
            assert!(KeyPrefix::new(bad).is_err(), "{bad}");
        }
        for good in ["kw", "edns", "osir", "opk", "a1b2c3d4"] {
            assert!(KeyPrefix::new(good).is_ok(), "{good}");
        }
    }

    /// Chi-square test of 10⁶ generated body characters against the uniform distribution.
    /// With 61 degrees of freedom the 99.99th percentile is about 117; a modulo bias of
    /// `byte % 62` without rejection gives a statistic in the thousands.
    #[test]
    fn generated_characters_are_uniform() {
        let mut counts = [0u64; 62];
        let mut total = 0u64;
        while total < 1_000_000 {
            let key = api_key(Environment::Live);
            let body = &key.expose()["kw_live_".len()..key.expose().len() - CHECK_LEN];
            for b in body.bytes() {
                let index = BASE62.iter().position(|&c| c == b).unwrap();
                counts[index] += 1;
                total += 1;
            }
        }
        let expected = total as f64 / 62.0;
        let chi_square: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(
            chi_square < 117.0,
            "chi-square {chi_square} over {counts:?}"
        );
    }

    proptest! {
        #[test]
        fn every_generated_secret_parses_back_to_its_kind(
            prefix in "[a-z0-9]{2,8}",
            kind in prop_oneof![
                Just(SecretKind::ApiKey(Environment::Live)),
                Just(SecretKind::ApiKey(Environment::Test)),
                Just(SecretKind::ClientSecret),
            ],
        ) {
            let secret = PlainSecret::generate(&KeyPrefix::new(&prefix).unwrap(), kind);
            prop_assert_eq!(parse_secret(secret.expose()), Ok(kind));
            prop_assert!(secret.expose().starts_with(secret.display_prefix()));
        }

        #[test]
        fn arbitrary_text_never_panics_the_parser(text in ".{0,80}") {
            let _ = parse_secret(&text);
        }

        /// The byte-level parser reads shapes as splitting on `_` does.
        #[test]
        fn the_parser_agrees_with_splitting_on_underscores(
            prefix in "[a-zA-Z0-9_]{0,9}",
            marker in prop_oneof![Just("live"), Just("test"), Just("cs"), Just("prod"), Just("")],
            rest in "[a-zA-Z0-9_-]{36,48}",
        ) {
            let text = format!("{prefix}_{marker}_{rest}");
            let mut parts = text.splitn(3, '_');
            let (p, m, r) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            let kind = match m {
                "live" => Some(SecretKind::ApiKey(Environment::Live)),
                "test" => Some(SecretKind::ApiKey(Environment::Test)),
                "cs" => Some(SecretKind::ClientSecret),
                _ => None,
            };
            let shaped = kind.filter(|k| {
                is_key_prefix(p)
                    && r.len() == k.body_len() + CHECK_LEN
                    && r.bytes().all(|b| b.is_ascii_alphanumeric())
            });
            match shaped {
                None => prop_assert_eq!(parse_secret(&text), Err(SecretFormatError::Shape)),
                Some(_) => prop_assert!(parse_secret(&text) != Err(SecretFormatError::Shape)),
            }
        }
    }
}
