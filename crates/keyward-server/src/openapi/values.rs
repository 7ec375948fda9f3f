//! The values the API reads, as JSON Schema: the checks the handlers and the service make,
//! written as patterns and enumerations, so that the document refuses what the server
//! refuses and allows what it allows.
//!
//! Each type here is a schema and nothing else (no value of it is ever made): request types
//! name one with `#[schema(value_type = …)]` or `#[param(value_type = …)]`. The character
//! classes of the patterns are kept as ranges, which the tests hold to the checks they
//! describe.
//!
//! Patterns are ECMA-262 regular expressions, as JSON Schema has them; they use no more
//! than classes, groups, counted repetition and one lookahead, which every dialect a client
//! validates with reads alike.

use std::borrow::Cow;
use std::fmt::Write;
use std::ops::RangeInclusive;

use keyward_core::credential::{DESCRIPTION_MAX_CHARS, NAME_MAX_CHARS, OWNER_ID_MAX_CHARS};
use keyward_core::ip_rule::RulePolicy;
use keyward_core::scope::{BUILTIN_ROLES, PRESET_ACTIONS, ScopeCatalogue};
use keyward_service::ip_rules::RULE_DESCRIPTION_MAX_CHARS;
use keyward_service::leaks::SOURCE_MAX_CHARS;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{PartialSchema, ToSchema};

/// Declares a type that is only a named schema.
macro_rules! schema_only {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

fn text(pattern: String, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

fn one_of(values: &[&str], description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
}

schema_only!(
    /// A name a person gives: the text rule of every name.
    Name => text(
        name_pattern(NAME_MAX_CHARS),
        "1–100 characters once surrounding white space is trimmed, something visible among \
         them, and no control character, bidirectional override or isolate (U+202A–U+202E, \
         U+2066–U+2069), or U+FFFD.",
    )
);

schema_only!(
    /// A credential's or a role's description: the text rule of every description.
    Description => text(
        description_pattern(DESCRIPTION_MAX_CHARS),
        "At most 1,000 characters once surrounding white space is trimmed (nothing left is no \
         description); line breaks and tabs allowed, no other control character, no \
         bidirectional override or isolate, no U+FFFD.",
    )
);

schema_only!(
    /// Where reported keys were found: one line of the text rule of every name, longer.
    LeakSource => text(
        name_pattern(SOURCE_MAX_CHARS),
        "1–1,000 characters once surrounding white space is trimmed, something visible among \
         them, and no control character, bidirectional override or isolate (U+202A–U+202E, \
         U+2066–U+2069), or U+FFFD.",
    )
);

schema_only!(
    /// An IP rule's description: the text rule of every description, shorter.
    RuleDescription => text(
        description_pattern(RULE_DESCRIPTION_MAX_CHARS),
        "At most 200 characters once surrounding white space is trimmed (nothing left is no \
         description); line breaks and tabs allowed, no other control character, no \
         bidirectional override or isolate, no U+FFFD.",
    )
);

schema_only!(
    /// An end customer's id: it travels in HTTP headers.
    OwnerId => text(
        format!("^[\\u0020-\\u007e]{{1,{OWNER_ID_MAX_CHARS}}}$"),
        "1–255 visible ASCII characters (spaces included).",
    )
);

schema_only!(
    /// One scope of the catalogue.
    ScopeName => scope_name(&ScopeCatalogue::default())
);

schema_only!(
    /// The name of a role a credential holds.
    RoleReference => text(
        ROLE_NAME.to_owned(),
        "A built-in role or one of the organization's (`GET /v1/roles`); another name is 422.",
    )
);

schema_only!(
    /// The name of a new custom role.
    RoleName => text(
        format!("^(?!(?:{})$){ROLE_NAME_BODY}$", builtin_roles()),
        "1–50 lowercase letters, digits or `_`, starting with a letter; not a built-in role's \
         name.",
    )
);

schema_only!(
    /// An IP address.
    IpAddress => text(
        {
            let space = class(false, &[SPACE_CONTROL, SPACE]);
            format!("^{space}*(?:{}|{}){space}*$", ipv4(Octet::Strict), ipv6(Octet::Strict))
        },
        "An IPv4 or IPv6 address; surrounding white space is trimmed.",
    )
);

schema_only!(
    /// An address or a CIDR range of any prefix length.
    IpNetwork => text(
        network_pattern(0..=32, 0..=128),
        "An IPv4 or IPv6 address (stored as /32 or /128) or CIDR range; surrounding white \
         space is trimmed, host bits are cleared and IPv4-mapped IPv6 is stored as IPv4.",
    )
);

schema_only!(
    /// The range of an IP rule, within the deployment's prefix bounds (the defaults here;
    /// the document a server serves has its own, see [`rule_network`]).
    IpRuleNetwork => rule_network(&RulePolicy::default())
);

schema_only!(
    /// A credential id.
    KeyId => text(type_id("api_key"), "`api_key_…`.")
);

schema_only!(
    /// An IP rule id.
    IpRuleId => text(type_id("ip_rule"), "`ip_rule_…`.")
);

schema_only!(
    /// A webhook endpoint id.
    WebhookId => text(type_id("webhook"), "`webhook_…`.")
);

schema_only!(
    /// Where a page of deliveries starts.
    MessageCursor => text(type_id("msg"), "The `next_cursor` of the previous page.")
);

schema_only!(
    /// The event types an endpoint hears: `["*"]` for every one, those added later
    /// included, or some of them, each once.
    EventList => OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(one_of(&["*"], "Every event type."))
                .min_items(Some(1))
                .max_items(Some(1)),
        )
        .item(
            ArrayBuilder::new()
                .items(one_of(&keyward_core::webhook::EVENT_TYPES, "An event type."))
                .min_items(Some(1))
                .unique_items(true),
        )
        .description(Some(
            "`[\"*\"]` for every event type (those added later included), or a list of \
             event types, each once.",
        ))
);

schema_only!(
    /// A webhook's target.
    WebhookUrl => ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uri".to_owned())))
        .max_length(Some(keyward_core::webhook::URL_MAX_CHARS))
        .description(Some(
            "An `https` URL (or `http` where the deployment allows it) without a user name, \
             password or fragment, whose host does not resolve to a loopback, private, \
             link-local or otherwise internal address unless the deployment allows them.",
        ))
);

schema_only!(
    /// Where a page of credentials starts.
    KeyCursor => text(type_id("api_key"), "The `next_cursor` of the previous page.")
);

schema_only!(
    /// Where a page of audit events starts.
    AuditCursor => text(type_id("audit_event"), "A cursor the previous answer gave.")
);

schema_only!(
    /// The format of an export.
    ExportFormat => ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["csv", "json"]))
        .description(Some("`csv` (the default) or `json`."))
);

schema_only!(
    /// A filter that compares text: something to compare.
    Filter => ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
);

schema_only!(
    /// What a looked-up secret is.
    SecretStateName => one_of(
        &["active", "disabled", "revoked", "expired", "replaced", "unknown"],
        "`replaced`: rotated out, its grace period over; `unknown`: no credential of the \
         organization has it.",
    )
);

schema_only!(
    /// A credential's status as listings show it.
    KeyStatusName => one_of(
        &["active", "disabled", "revoked", "expired"],
        "`expired` is an active credential past its `expires_at`.",
    )
);

schema_only!(
    /// The bucket size of a usage report.
    Granularity => one_of(&["minute", "hour", "day"], "The bucket size.")
);

schema_only!(
    /// A time, as RFC 3339 text.
    Time => ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some(
            "RFC 3339, between 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z once in UTC.",
        ))
);

schema_only!(
    /// An HTTP method, as a proxy names the one of the request it asks about.
    MethodName => text(
        "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$".to_owned(),
        "An HTTP method (a token: `GET`, `POST`, …).",
    )
);

schema_only!(
    /// The URI of a proxied request, as a header carries it.
    OriginalUri => text(
        "^[\\u0009\\u0020-\\u007e]*$".to_owned(),
        "The proxied request's path and query, in visible ASCII.",
    )
);

schema_only!(
    /// The scopes a proxied request needs, as a header lists them.
    RequiredScopes => required_scopes(&ScopeCatalogue::default())
);

schema_only!(
    /// The grant of a token request.
    GrantType => one_of(&["client_credentials"], "The only grant.")
);

schema_only!(
    /// The scopes a token request asks for.
    TokenScope => token_scope(&ScopeCatalogue::default())
);

/// The schema of an IP rule's range under `policy`'s prefix bounds.
pub fn rule_network(policy: &RulePolicy) -> ObjectBuilder {
    text(
        network_pattern(policy.ipv4_prefixes.clone(), policy.ipv6_prefixes.clone()),
        &format!(
            "An IPv4 or IPv6 address (stored as /32 or /128) or CIDR range with a prefix from \
             {} (IPv4) or {} (IPv6), this deployment's bounds; surrounding white space is \
             trimmed and host bits are cleared.",
            policy.ipv4_range(),
            policy.ipv6_range()
        ),
    )
}

/// The component schemas that name the catalogue's scopes, by name: the document is made
/// with the default catalogue, and a deployment's replaces them (`complete`).
pub fn catalogue_schemas(catalogue: &ScopeCatalogue) -> [(&'static str, ObjectBuilder); 2] {
    [
        ("ScopeName", scope_name(catalogue)),
        ("TokenScope", token_scope(catalogue)),
    ]
}

/// One scope of `catalogue`.
fn scope_name(catalogue: &ScopeCatalogue) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(scope_names(catalogue)))
        .description(Some(
            "`resource:action`, `resource:*`, `*:action` or a preset (`read`, `write`, \
             `delete`: that action on every resource), or `*` (everything).",
        ))
}

/// Scopes of `catalogue` as a header lists them (`X-Keyward-Required-Scopes`).
pub fn required_scopes(catalogue: &ScopeCatalogue) -> ObjectBuilder {
    let scope = alternatives(&scope_names(catalogue));
    text(
        format!("^[ ,]*(?:{scope}(?:[ ,]+{scope})*)?[ ,]*$"),
        "Scopes of the catalogue, separated by spaces or commas.",
    )
}

/// Scopes of `catalogue` as a token request asks for them.
fn token_scope(catalogue: &ScopeCatalogue) -> ObjectBuilder {
    let scope = alternatives(&scope_names(catalogue));
    text(
        format!("^ *{scope}(?: +{scope})* *$"),
        "Scopes of the catalogue the credential holds, separated by spaces.",
    )
}

/// Every scope the catalogue parses, in its order: `*`, the presets, `*:action`, then
/// each resource's `resource:*` and `resource:action`.
pub fn scope_names(catalogue: &ScopeCatalogue) -> Vec<String> {
    let mut names = vec!["*".to_owned()];
    names.extend(PRESET_ACTIONS.iter().map(|a| (*a).to_owned()));
    names.extend(PRESET_ACTIONS.iter().map(|a| format!("*:{a}")));
    for (resource, actions) in catalogue.resources() {
        names.push(format!("{resource}:*"));
        names.extend(actions.iter().map(|a| format!("{resource}:{a}")));
    }
    names
}

/// `(?:a|b|…)` of literal texts.
fn alternatives(texts: &[String]) -> String {
    let escaped: Vec<String> = texts
        .iter()
        .map(|t| t.replace('*', "\\*").replace('.', "\\."))
        .collect();
    format!("(?:{})", escaped.join("|"))
}

fn builtin_roles() -> String {
    let names: Vec<&str> = BUILTIN_ROLES.iter().map(|(name, _)| *name).collect();
    names.join("|")
}

/// A role name: a lowercase letter, then up to 49 lowercase letters, digits or `_`.
const ROLE_NAME_BODY: &str = "[a-z][a-z0-9_]{0,49}";
const ROLE_NAME: &str = "^[a-z][a-z0-9_]{0,49}$";

/// `prefix_` and a TypeID suffix: 26 characters of Crockford's lowercase base32, the first
/// at most `7` (128 bits).
fn type_id(prefix: &str) -> String {
    format!("^{prefix}_[0-7][0-9a-hjkmnp-tv-z]{{25}}$")
}

/// Characters as inclusive ranges.
type Ranges = &'static [RangeInclusive<char>];

/// Control characters (Unicode's `Cc`, as `char::is_control` has them).
pub const CONTROL: Ranges = &['\u{0}'..='\u{1f}', '\u{7f}'..='\u{9f}'];
/// The control characters a description may not hold: all but line breaks and tabs.
pub const DESCRIPTION_CONTROL: Ranges = &[
    '\u{0}'..='\u{8}',
    '\u{b}'..='\u{c}',
    '\u{e}'..='\u{1f}',
    '\u{7f}'..='\u{9f}',
];
/// Bidirectional overrides and isolates.
pub const BIDI: Ranges = &['\u{202a}'..='\u{202e}', '\u{2066}'..='\u{2069}'];
/// The replacement character.
pub const REPLACEMENT: Ranges = &['\u{fffd}'..='\u{fffd}'];
/// White space that is a control character (`char::is_whitespace`, trimmed from the ends).
pub const SPACE_CONTROL: Ranges = &['\t'..='\r', '\u{85}'..='\u{85}'];
/// White space that is not a control character.
pub const SPACE: Ranges = &[
    ' '..=' ',
    '\u{a0}'..='\u{a0}',
    '\u{1680}'..='\u{1680}',
    '\u{2000}'..='\u{200a}',
    '\u{2028}'..='\u{2029}',
    '\u{202f}'..='\u{202f}',
    '\u{205f}'..='\u{205f}',
    '\u{3000}'..='\u{3000}',
];
/// What else shows nothing by itself: zero-width characters, joiners, fillers, marks.
pub const BLANK: Ranges = &[
    '\u{ad}'..='\u{ad}',
    '\u{34f}'..='\u{34f}',
    '\u{61c}'..='\u{61c}',
    '\u{115f}'..='\u{1160}',
    '\u{17b4}'..='\u{17b5}',
    '\u{180b}'..='\u{180f}',
    '\u{200b}'..='\u{200f}',
    '\u{2060}'..='\u{2064}',
    '\u{206a}'..='\u{206f}',
    '\u{3164}'..='\u{3164}',
    '\u{fe00}'..='\u{fe0f}',
    '\u{feff}'..='\u{feff}',
    '\u{ffa0}'..='\u{ffa0}',
];

/// A class of `sets` (`[…]`), or of everything else (`[^…]`).
fn class(negated: bool, sets: &[Ranges]) -> String {
    let mut class = String::from(if negated { "[^" } else { "[" });
    for range in sets.iter().flat_map(|set| set.iter()) {
        let _ = write!(class, "\\u{:04x}", u32::from(*range.start()));
        if range.start() != range.end() {
            let _ = write!(class, "-\\u{:04x}", u32::from(*range.end()));
        }
    }
    class.push(']');
    class
}

/// A name: surrounding white space, then 1 to `max` characters that start and end with
/// neither white space nor a forbidden character, hold no forbidden character, and
/// something visible (the lookahead: blanks, then a character neither blank nor forbidden).
fn name_pattern(max: usize) -> String {
    let space = class(false, &[SPACE_CONTROL, SPACE]);
    let blank = class(false, &[SPACE, BLANK]);
    let visible = class(
        true,
        &[CONTROL, BIDI, REPLACEMENT, SPACE_CONTROL, SPACE, BLANK],
    );
    let end = class(true, &[CONTROL, BIDI, REPLACEMENT, SPACE_CONTROL, SPACE]);
    let inner = class(true, &[CONTROL, BIDI, REPLACEMENT]);
    format!(
        "^{space}*(?={blank}*{visible}){end}(?:{inner}{{0,{}}}{end})?{space}*$",
        max - 2
    )
}

/// A description: surrounding white space, then nothing, or up to `max` characters that
/// start and end with neither white space nor a forbidden character and hold none but line
/// breaks and tabs.
fn description_pattern(max: usize) -> String {
    let space = class(false, &[SPACE_CONTROL, SPACE]);
    let end = class(true, &[CONTROL, BIDI, REPLACEMENT, SPACE_CONTROL, SPACE]);
    let inner = class(true, &[DESCRIPTION_CONTROL, BIDI, REPLACEMENT]);
    format!(
        "^{space}*(?:{end}(?:{inner}{{0,{}}}{end})?{space}*)?$",
        max - 2
    )
}

/// How a dotted quad's numbers may be written: a bare address has no leading zeros (the
/// standard library's parser), a CIDR range's may (`ipnet`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Octet {
    Strict,
    Padded,
}

fn ipv4(octet: Octet) -> String {
    let octet = match octet {
        Octet::Strict => "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
        Octet::Padded => "(?:25[0-5]|2[0-4][0-9]|[01][0-9]{2}|[0-9]{1,2})",
    };
    format!("{octet}(?:\\.{octet}){{3}}")
}

/// RFC 3986's IPv6address, which is what the parsers read: eight groups of 1–4 hex digits,
/// one run of them shortened to `::`, the last two as a dotted quad if wanted.
fn ipv6(octet: Octet) -> String {
    let h16 = "[0-9a-fA-F]{1,4}";
    let ls32 = format!("(?:{h16}:{h16}|{})", ipv4(octet));
    let forms = [
        format!("(?:{h16}:){{6}}{ls32}"),
        format!("::(?:{h16}:){{5}}{ls32}"),
        format!("(?:{h16})?::(?:{h16}:){{4}}{ls32}"),
        format!("(?:(?:{h16}:){{0,1}}{h16})?::(?:{h16}:){{3}}{ls32}"),
        format!("(?:(?:{h16}:){{0,2}}{h16})?::(?:{h16}:){{2}}{ls32}"),
        format!("(?:(?:{h16}:){{0,3}}{h16})?::{h16}:{ls32}"),
        format!("(?:(?:{h16}:){{0,4}}{h16})?::{ls32}"),
        format!("(?:(?:{h16}:){{0,5}}{h16})?::{h16}"),
        format!("(?:(?:{h16}:){{0,6}}{h16})?::"),
    ];
    format!("(?:{})", forms.join("|"))
}

/// Prefix lengths in `range`, as `ipnet` reads them: up to `digits` digits, so with leading
/// zeros where they fit.
fn prefixes(range: RangeInclusive<u8>, digits: usize) -> String {
    let written: Vec<String> = range
        .flat_map(|n| {
            let bare = n.to_string();
            (bare.len()..=digits).map(move |width| format!("{n:0width$}"))
        })
        .collect();
    format!("(?:{})", written.join("|"))
}

/// An address, or a CIDR range whose prefix is within the bounds, and white space around
/// (which is trimmed).
fn network_pattern(ipv4_prefixes: RangeInclusive<u8>, ipv6_prefixes: RangeInclusive<u8>) -> String {
    let space = class(false, &[SPACE_CONTROL, SPACE]);
    format!(
        "^{space}*(?:{}|{}|{}/{}|{}/{}){space}*$",
        ipv4(Octet::Strict),
        ipv6(Octet::Strict),
        ipv4(Octet::Padded),
        prefixes(ipv4_prefixes, 2),
        ipv6(Octet::Padded),
        prefixes(ipv6_prefixes, 3),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::credential::{parse_ip_allowlist, validate_owner_id};
    use keyward_core::typeid::CredentialId;
    use keyward_core::validation::{TextKind, person_text};

    fn holds(sets: &[Ranges], c: char) -> bool {
        sets.iter()
            .flat_map(|set| set.iter())
            .any(|r| r.contains(&c))
    }

    /// A pattern as the `regex` crate writes it (`\x{…}` for `\u…`), anchored whole.
    fn regex(pattern: &str) -> regex::Regex {
        let mut rust = String::new();
        let mut rest = pattern;
        while let Some(at) = rest.find("\\u") {
            rust.push_str(&rest[..at]);
            let _ = write!(rust, "\\x{{{}}}", &rest[at + 2..at + 6]);
            rest = &rest[at + 6..];
        }
        rust.push_str(rest);
        regex::Regex::new(&rust).unwrap()
    }

    fn pattern_of(schema: RefOr<Schema>) -> String {
        match schema {
            RefOr::T(Schema::Object(object)) => object.pattern.unwrap(),
            _ => panic!("not an object schema"),
        }
    }

    #[test]
    fn the_character_classes_are_the_checks_they_describe() {
        let forbidden = [CONTROL, BIDI, REPLACEMENT];
        for c in (0..=0x10_ffff).filter_map(char::from_u32) {
            assert_eq!(holds(&[CONTROL], c), c.is_control(), "{c:?}");
            assert_eq!(
                holds(&[DESCRIPTION_CONTROL], c),
                c.is_control() && !matches!(c, '\t' | '\n' | '\r'),
                "{c:?}"
            );
            assert_eq!(
                holds(&[SPACE_CONTROL, SPACE], c),
                c.is_whitespace(),
                "{c:?}"
            );
            assert_eq!(
                holds(&[SPACE_CONTROL], c),
                c.is_whitespace() && c.is_control()
            );
            // Inside a name, a forbidden character is refused and any other kept.
            let inside = person_text("name", &format!("a{c}a"), 10, TextKind::Name);
            assert_eq!(inside.is_err(), holds(&forbidden, c), "{c:?}");
            // Alone, a blank or white space leaves nothing visible.
            if !holds(&forbidden, c) {
                let alone = person_text("name", &c.to_string(), 10, TextKind::Name);
                assert_eq!(
                    alone.is_err(),
                    holds(&[SPACE_CONTROL, SPACE, BLANK], c),
                    "{c:?}"
                );
            }
        }
    }

    /// Strings over `alphabet` up to `len` long, drawn by xorshift from a fixed start.
    fn strings(alphabet: &[u8], len: usize, count: usize) -> Vec<String> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let n = (state % (len as u64 + 1)) as usize;
                (0..n)
                    .map(|i| {
                        let pick = (state.rotate_left(7 * i as u32) ^ (i as u64 * 31)) as usize;
                        alphabet[pick % alphabet.len()] as char
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_address_patterns_accept_what_the_parsers_read() {
        let any = regex(&pattern_of(IpNetwork::schema()));
        let policy = RulePolicy::default();
        let bounded = regex(&pattern_of(rule_network(&policy).into()));
        let address = regex(&pattern_of(IpAddress::schema()));
        let mut samples: Vec<String> = [
            "1.2.3.4",
            "01.2.3.4",
            "1.2.3.04/32",
            "1.2.3.4/08",
            "1.2.3.4/33",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4/",
            "/8",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "1:2:3:4:5:6:7:8:9",
            "::ffff:1.2.3.4",
            "::ffff:01.2.3.4/128",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1::1.2.3.4",
            "1.2.3.4::",
            "12345::",
            "g::",
            ":::",
            "1:::2",
            "::/0",
            "::/129",
            "::/0128",
            "::/048",
            "2001:db8::/48",
            "2001:db8::/47",
            "192.0.2.0/25",
            "192.0.2.0/24",
            "fe80::1%eth0",
            " 1.2.3.4",
            "\u{3000}::1\t",
            "1.2.3.4 /32",
            "\u{200b}1.2.3.4",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        samples.extend(strings(b"0123456789abcdef:./", 14, 40_000));
        samples.extend(strings(b"0129:./ ", 10, 40_000));
        for text in &samples {
            assert_eq!(
                any.is_match(text),
                parse_ip_allowlist(&[text]).is_ok(),
                "{text:?}"
            );
            assert_eq!(
                bounded.is_match(text),
                policy.parse_network(text).is_ok(),
                "{text:?}"
            );
            assert_eq!(
                address.is_match(text),
                text.trim().parse::<std::net::IpAddr>().is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn ids_scopes_and_owner_ids_match_what_the_server_reads() {
        let id = regex(&pattern_of(KeyId::schema()));
        let generated = CredentialId::generate();
        assert!(id.is_match(generated.as_str()));
        for text in strings(b"api_key0123456789abcdefghjkmnpqrstvwxyz", 40, 20_000) {
            let text = format!("api_key_{text}");
            assert_eq!(
                id.is_match(&text),
                CredentialId::parse(&text).is_ok(),
                "{text:?}"
            );
        }
        let catalogue = ScopeCatalogue::default();
        let names = scope_names(&catalogue);
        for name in &names {
            assert!(catalogue.parse(name).is_ok(), "{name}");
        }
        for text in strings(b"dnsreadwrite*:keysverifyx", 14, 20_000) {
            assert_eq!(
                names.contains(&text),
                catalogue.parse(&text).is_ok(),
                "{text:?}"
            );
        }
        let owner = regex(&pattern_of(OwnerId::schema()));
        for text in [
            "",
            "a",
            " ",
            "é",
            "a\u{7f}",
            &"x".repeat(255),
            &"x".repeat(256),
        ] {
            assert_eq!(
                owner.is_match(text),
                validate_owner_id(Some(text)).is_ok(),
                "{text:?}"
            );
        }
    }
}
