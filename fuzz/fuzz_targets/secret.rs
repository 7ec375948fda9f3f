//! A presented API key or client secret (`parse_secret`), and the TypeIDs that name
//! credentials and organizations in paths and as OAuth `client_id`s.
//!
//! Input: any bytes, read as the gate reads a header: lossily as UTF-8.

#![no_main]

use keyward_core::credential::Environment;
use keyward_core::secret::{
    API_KEY_BODY_LEN, CHECK_LEN, CLIENT_SECRET_BODY_LEN, KeyPrefix, SecretFormatError, SecretKind,
    parse_secret,
};
use keyward_core::typeid::{
    AuditEventId, CredentialId, IpRuleId, OrganizationId, UserId, decode_suffix, encode_suffix,
};
use keyward_engine::tokens::looks_like_jwt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_secret(&text);
    check_ids(&text);
});

/// A secret that parses has exactly the documented shape, is never taken for an access
/// token, and its checksum catches a change to any one character after the marker.
fn check_secret(text: &str) {
    let Ok(kind) = parse_secret(text) else {
        return;
    };
    assert!(text.is_ascii(), "{text:?}");
    assert!(!looks_like_jwt(text), "{text:?}");
    let mut parts = text.splitn(3, '_');
    let (prefix, marker, rest) = match (parts.next(), parts.next(), parts.next()) {
        (Some(prefix), Some(marker), Some(rest)) => (prefix, marker, rest),
        _ => panic!("a parsed secret without its three parts: {text:?}"),
    };
    assert!(KeyPrefix::new(prefix).is_ok(), "{text:?}");
    let (expected_marker, body_len) = match kind {
        SecretKind::ApiKey(Environment::Live) => ("live", API_KEY_BODY_LEN),
        SecretKind::ApiKey(Environment::Test) => ("test", API_KEY_BODY_LEN),
        SecretKind::ClientSecret => ("cs", CLIENT_SECRET_BODY_LEN),
    };
    assert_eq!(marker, expected_marker, "{text:?}");
    assert_eq!(rest.len(), body_len + CHECK_LEN, "{text:?}");
    // CRC32 catches every change of one byte, and six base62 digits tell all 2³² values
    // apart: no single substitution in the body or the check keeps the checksum right.
    for position in text.len() - rest.len()..text.len() {
        let mut changed = text.as_bytes().to_vec();
        changed[position] = if changed[position] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let changed = String::from_utf8(changed).expect("an ASCII secret stays ASCII");
        assert_eq!(
            parse_secret(&changed),
            Err(SecretFormatError::Checksum),
            "{text:?} changed at {position}"
        );
    }
}

/// An id that parses is its prefix, `_` and a suffix that encodes back to itself.
fn check_ids(text: &str) {
    if let Ok(uuid) = decode_suffix(text) {
        assert_eq!(encode_suffix(uuid), text);
    }
    macro_rules! round_trip {
        ($($id:ty),*) => {$(
            if let Ok(id) = <$id>::parse(text) {
                assert_eq!(id.as_str(), text);
                assert_eq!(id.to_string(), text);
                let suffix = &text[<$id>::PREFIX.len() + 1..];
                let uuid = decode_suffix(suffix).expect("a parsed id has a valid suffix");
                assert_eq!(<$id>::from_uuid(uuid), id);
            }
        )*};
    }
    round_trip!(OrganizationId, CredentialId, IpRuleId, UserId, AuditEventId);
}
