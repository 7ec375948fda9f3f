//! Scope expressions as clients write them (`ScopeCatalogue::parse`, `parse_set`: a
//! credential's permissions, an OAuth `scope`, a required scope), scopes read back from
//! storage (`Scope::from_canonical`), and role names (`validate_role_name`).
//!
//! Input: any bytes, read lossily as UTF-8; as one expression, and as the space-separated
//! list an OAuth `scope` parameter is.

#![no_main]

use std::sync::LazyLock;

use keyward_core::scope::{
    Scope, ScopeCatalogue, ScopeIndex, ScopeSet, builtin_role, validate_role_name,
};
use libfuzzer_sys::fuzz_target;

static CATALOGUE: LazyLock<ScopeCatalogue> = LazyLock::new(ScopeCatalogue::default);
static INDEX: LazyLock<ScopeIndex> = LazyLock::new(|| {
    ScopeIndex::new(&CATALOGUE).expect("the default catalogue names fewer than 128 scopes")
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_expression(&text);
    let list: Vec<&str> = text.split(' ').filter(|s| !s.is_empty()).collect();
    for item in &list {
        check_expression(item);
    }
    if let Ok(set) = CATALOGUE.parse_set(&list) {
        assert!(set.covers_all(&set));
        for canonical in set.to_strings() {
            let scope = CATALOGUE
                .parse(&canonical)
                .expect("a held scope prints parseably");
            assert!(set.grants(&scope), "{canonical}");
        }
    }
    if validate_role_name(&text).is_ok() {
        assert!(builtin_role(&CATALOGUE, &text).is_none(), "{text:?}");
    }
});

/// A scope the catalogue accepts prints in a canonical form that parses back to it, with
/// or without the catalogue; it covers itself, `*` covers it, and it has a bit of its own
/// in the index that a set holding it grants.
fn check_expression(text: &str) {
    if let Ok(scope) = CATALOGUE.parse(text) {
        let canonical = scope.to_string();
        assert_eq!(CATALOGUE.parse(&canonical).as_ref(), Ok(&scope), "{text:?}");
        assert_eq!(
            Scope::from_canonical(&canonical).as_ref(),
            Some(&scope),
            "{text:?}"
        );
        assert!(scope.covers(&scope));
        assert!(Scope::all().covers(&scope));
        let held: ScopeSet = [scope.clone()].into_iter().collect();
        assert!(held.grants(&scope));
        let bits = INDEX
            .required(std::slice::from_ref(&scope))
            .expect("a scope of the catalogue has a bit");
        assert_eq!(INDEX.granted(&held) & bits, bits, "{text:?}");
    }
    // Stored scopes were canonical when written. Text with at most one `:` reads back as
    // it prints; with more, the action holds a `:` and prints as a different scope, which
    // no catalogue accepts to store.
    if let Some(scope) = Scope::from_canonical(text)
        && text.matches(':').count() <= 1
    {
        assert_eq!(
            Scope::from_canonical(&scope.to_string()).as_ref(),
            Some(&scope),
            "{text:?}"
        );
    }
}
