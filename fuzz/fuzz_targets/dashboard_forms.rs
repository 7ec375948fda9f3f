//! The dashboard's forms and queries, read as the dashboard reads them (forms with
//! `serde_urlencoded`, as `read_checked_form` does; queries with axum's `Query`), and the
//! checks each handler then runs on them before the service is called: the create form's
//! `create_request`, the login page's `safe_next`, and the rules every name, description,
//! email, range and grace period follows.
//!
//! Input: any bytes, as a form body; the same bytes, when they make a valid URI query,
//! as the query of each page.

#![no_main]

use std::sync::LazyLock;

use axum::extract::Query;
use axum::http::Uri;
use keyward_core::credential::{
    DESCRIPTION_MAX_CHARS, DisplayStatus, Environment, NAME_MAX_CHARS, parse_ip_allowlist,
    rotation_grace_end, validate_description, validate_name, validate_rate_limit,
    validate_validity,
};
use keyward_core::ip_rule::RulePolicy;
use keyward_core::member::{validate_email, validate_password};
use keyward_core::scope::ScopeCatalogue;
use keyward_core::typeid::{AuditEventId, CredentialId};
use keyward_core::validation::{TextKind, person_text};
use keyward_server::dashboard::credentials::{
    CredentialForm, DetailQuery, LIST_PATH, ListFilter, RotateForm, create_request,
};
use keyward_server::dashboard::login::{LoginForm, LoginQuery, safe_next};
use keyward_server::dashboard::security::{AuditPageQuery, RemoveForm, RuleForm, SecurityQuery};
use keyward_server::dashboard::session::{CSRF_FIELD, TokenOnly};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime, Time, UtcOffset};

static CATALOGUE: LazyLock<ScopeCatalogue> = LazyLock::new(ScopeCatalogue::default);

fuzz_target!(|body: &[u8]| {
    let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok();
    // The CSRF check reads the token from the pairs, the handler its fields from the form:
    // with each name once, both readings agree.
    let unique = pairs.as_ref().filter(|pairs| {
        let mut names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        names.windows(2).all(|two| two[0] != two[1])
    });
    let field = |name: &str| -> Option<String> {
        unique?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.clone())
    };
    // A field the form reads as text is the pair's value, or empty without one.
    let text_field = |name: &str| unique.map(|_| field(name).unwrap_or_default());
    let _csrf = field(CSRF_FIELD);

    if let Some(form) = form::<CredentialForm>(body, unique.is_some()) {
        if let Some(name) = text_field("name") {
            assert_eq!(form.name, name);
        }
        if let Some(scopes) = text_field("scopes") {
            assert_eq!(form.scopes, scopes);
        }
        check_credential_form(&form);
    }
    if let Some(form) = form::<RotateForm>(body, unique.is_some()) {
        check_rotate_form(&form);
    }
    if let Some(form) = form::<RuleForm>(body, unique.is_some()) {
        if let Some(kind) = text_field("type") {
            assert_eq!(form.kind, kind);
        }
        let _ = RulePolicy::default().parse_network(form.ip_network.trim());
        check_person_text("description", &form.description, 200, TextKind::Description);
    }
    if let Some(form) = form::<RemoveForm>(body, unique.is_some()) {
        let _ = form.confirm_lockout == "on";
    }
    if let Some(form) = form::<LoginForm>(body, unique.is_some()) {
        if unique.is_some() {
            assert_eq!(form.next, field("next"));
        }
        if let Ok(email) = validate_email(&form.email) {
            assert_eq!(
                validate_email(&email).as_ref(),
                Ok(&email),
                "{:?}",
                form.email
            );
        }
        let _ = validate_password(&form.password);
        check_next(form.next.as_deref());
    }
    let _ = form::<TokenOnly>(body, unique.is_some());

    // The same bytes as a page's query, when a URI can carry them.
    let Ok(uri) = format!("/?{}", String::from_utf8_lossy(body)).parse::<Uri>() else {
        return;
    };
    if let Ok(Query(query)) = Query::<LoginQuery>::try_from_uri(&uri) {
        check_next(query.next.as_deref());
    }
    if let Ok(Query(filter)) = Query::<ListFilter>::try_from_uri(&uri) {
        let _ = DisplayStatus::parse(&filter.status);
        let _ = Environment::parse(&filter.environment);
        let _ = CredentialId::parse(&filter.before);
    }
    if let Ok(Query(query)) = Query::<AuditPageQuery>::try_from_uri(&uri) {
        let _ = AuditEventId::parse(&query.before);
    }
    let _ = Query::<DetailQuery>::try_from_uri(&uri);
    let _ = Query::<SecurityQuery>::try_from_uri(&uri);
});

/// The form of type `T` in `body`; a body whose pairs have each name once always reads
/// (every field is text, with a default, and unknown names are ignored).
fn form<T: DeserializeOwned>(body: &[u8], unique: bool) -> Option<T> {
    let form = serde_urlencoded::from_bytes::<T>(body).ok();
    assert!(!unique || form.is_some(), "{}", std::any::type_name::<T>());
    form
}

/// A form `create_request` accepts passes every check the service runs on a new
/// credential's name, description and rate limit, and is read as typed: entries without
/// separators, the environment chosen, expiry at the last millisecond of the day (UTC).
fn check_credential_form(form: &CredentialForm) {
    check_person_text("name", &form.name, NAME_MAX_CHARS, TextKind::Name);
    check_person_text(
        "description",
        &form.description,
        DESCRIPTION_MAX_CHARS,
        TextKind::Description,
    );
    let new = match create_request(form, &CATALOGUE) {
        Ok(new) => new,
        Err(errors) => {
            assert!(!errors.is_empty());
            for field in errors.keys() {
                assert!(
                    [
                        "name",
                        "description",
                        "environment",
                        "expires_on",
                        "starts_on",
                        "rate_limit",
                        "scopes",
                        "ip_allowlist",
                        "owner_id",
                        "metadata",
                    ]
                    .contains(field),
                    "{field}"
                );
            }
            return;
        }
    };
    assert_eq!(validate_name(&new.name).as_deref(), Ok(form.name.trim()));
    assert!(validate_description(new.description.as_deref()).is_ok());
    assert!(validate_rate_limit(new.rate_limit_override).is_ok());
    let expected = if form.environment == "test" {
        Environment::Test
    } else {
        Environment::Live
    };
    assert_eq!(new.environment, expected);
    for entry in new.permissions.iter().chain(&new.ip_allowlist) {
        assert!(!entry.is_empty());
        assert!(
            !entry.contains(|c: char| c == ',' || c.is_whitespace()),
            "{entry:?}"
        );
    }
    if let Some(role) = &new.role {
        assert!(!role.is_empty() && role.trim() == role);
    }
    if let Some(expires_at) = new.expires_at {
        assert_eq!(expires_at.offset(), UtcOffset::UTC);
        assert_eq!(
            expires_at.time(),
            Time::from_hms_milli(23, 59, 59, 999).expect("a time of day")
        );
    }
    // What the service checks next, without a store.
    let _ = CATALOGUE.parse_set(&new.permissions);
    let _ = parse_ip_allowlist(&new.ip_allowlist);
    let _ = validate_validity(new.not_before, new.expires_at, OffsetDateTime::now_utc());
}

/// The grace period is accepted from 0 to 7 days, and ends after now, never later than 7
/// days or the credential's own expiry.
fn check_rotate_form(form: &RotateForm) {
    let _ = form.version.trim().parse::<i64>();
    let Ok(seconds) = form.grace_period_seconds.trim().parse::<i64>() else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    let grace = Duration::seconds(seconds);
    assert_eq!(
        rotation_grace_end(now, grace, None).is_ok(),
        (0..=604_800).contains(&seconds)
    );
    let expiry = now + Duration::days(1);
    if let Ok(Some(end)) = rotation_grace_end(now, grace, Some(expiry)) {
        assert!(now < end && end <= expiry && end <= now + Duration::days(7));
    }
}

/// Accepted text is trimmed, within its length, free of what would make it lie on screen,
/// and accepted again as it is.
fn check_person_text(field: &'static str, text: &str, max: usize, kind: TextKind) {
    let Ok(Some(accepted)) = person_text(field, text, max, kind) else {
        return;
    };
    assert_eq!(accepted.trim(), accepted);
    assert!(accepted.chars().count() <= max);
    assert!(!accepted.contains('\u{FFFD}'));
    assert!(
        !accepted
            .chars()
            .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
    );
    let allowed = |c: char| kind == TextKind::Description && matches!(c, '\n' | '\r' | '\t');
    assert!(!accepted.chars().any(|c| c.is_control() && !allowed(c)));
    assert_eq!(
        person_text(field, &accepted, max, kind),
        Ok(Some(accepted.clone()))
    );
}

/// Whatever `next` a client sends, the login leads to a path on this server: the one sent,
/// or the credentials page.
fn check_next(next: Option<&str>) {
    let target = safe_next(next);
    assert!(
        target == LIST_PATH || Some(target.as_str()) == next,
        "{next:?}"
    );
    assert!(
        target.starts_with('/') && !target.starts_with("//"),
        "{target:?}"
    );
    assert!(!target.starts_with("/login"), "{target:?}");
    assert!(
        !target.contains(|c: char| c == '\\' || c.is_whitespace() || c.is_control()),
        "{target:?}"
    );
}
