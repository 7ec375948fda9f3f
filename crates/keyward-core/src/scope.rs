//! Permission scopes (`resource:action`), wildcards, presets and roles.
//!
//! A scope names a resource and an action, either of which may be "any":
//! - `domains:read` — one action on one resource;
//! - `domains:*` — every action on one resource;
//! - `read`, `write`, `delete` — the coarse presets: that action on every resource;
//! - `*` — everything.
//!
//! Presets and wildcards are kept as wildcards, never expanded into lists, so a resource
//! added to the catalogue later is covered by `*` and `read` as a user would expect.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// One permission: a resource and an action, `None` meaning any.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    resource: Option<String>,
    action: Option<String>,
}

/// Why a scope or role name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The scope is not `*`, a preset, `resource:*` or `resource:action` of the catalogue.
    #[error("unknown scope `{0}`")]
    Unknown(String),
    /// No built-in or organization role has this name.
    #[error("unknown role `{0}`")]
    UnknownRole(String),
}

impl Scope {
    /// The scope of one action on one resource, e.g. `keys:read`.
    pub fn exact(resource: &str, action: &str) -> Self {
        Self {
            resource: Some(resource.to_owned()),
            action: Some(action.to_owned()),
        }
    }

    /// `*`: every action on every resource.
    pub fn all() -> Self {
        Self {
            resource: None,
            action: None,
        }
    }

    /// Reads a scope in canonical form without consulting a catalogue, for scopes that were
    /// checked when they were stored (a catalogue may shrink later; stored grants stay).
    pub fn from_canonical(text: &str) -> Option<Self> {
        let part = |p: &str| (p != "*").then(|| p.to_owned());
        match text.split_once(':') {
            None if text.is_empty() => None,
            None => Some(Self {
                resource: None,
                action: part(text),
            }),
            Some((resource, action)) if !resource.is_empty() && !action.is_empty() => Some(Self {
                resource: part(resource),
                action: part(action),
            }),
            Some(_) => None,
        }
    }

    /// Whether holding `self` permits what `other` permits (wildcards included).
    pub fn covers(&self, other: &Scope) -> bool {
        fn part(mine: &Option<String>, theirs: &Option<String>) -> bool {
            mine.is_none() || mine == theirs
        }
        part(&self.resource, &other.resource) && part(&self.action, &other.action)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.resource, &self.action) {
            (None, None) => f.write_str("*"),
            (None, Some(action)) => f.write_str(action),
            (Some(resource), None) => write!(f, "{resource}:*"),
            (Some(resource), Some(action)) => write!(f, "{resource}:{action}"),
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The resources and actions a deployment knows; unknown scopes are refused at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeCatalogue {
    resources: BTreeMap<String, Vec<String>>,
}

/// The actions every resource has, which are also the preset names.
pub const PRESET_ACTIONS: [&str; 3] = ["read", "write", "delete"];

/// Keyward's own resources, in every catalogue: what its management API and tools need.
pub const KEYWARD_RESOURCES: [&str; 5] = ["keys", "ip_rules", "roles", "audit_log", "webhooks"];

/// The resources of the default catalogue besides Keyward's own: a registrar's and DNS
/// provider's, the example the documentation uses until a deployment names its own.
pub const EXAMPLE_RESOURCES: [&str; 6] = ["domains", "dns", "contacts", "hosts", "vps", "billing"];

impl Default for ScopeCatalogue {
    /// The example resources plus Keyward's own.
    fn default() -> Self {
        Self::for_api(
            EXAMPLE_RESOURCES.iter().map(|r| (*r).to_owned()),
            std::iter::empty(),
        )
        .expect("the example resources are well formed")
    }
}

/// Why a deployment's catalogue was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// A resource or action name that scopes could not carry unambiguously.
    #[error(
        "`{0}` is not a usable name: 1 to 50 lowercase letters, digits, `_`, `-` or `.`, \
         starting with a letter"
    )]
    BadName(String),
    /// A resource of Keyward's own, which every catalogue has already.
    #[error("`{0}` is one of Keyward's own resources, in every catalogue already")]
    Reserved(String),
    /// An action for a resource the catalogue does not list.
    #[error("actions for `{0}`, which is not one of the resources")]
    NoSuchResource(String),
    /// The catalogue names no resource of the API's own.
    #[error("name at least one resource of your API")]
    Empty,
}

/// Whether `name` can be a resource or an action: it must not hold `:` or `*`, which give
/// scopes their shape, nor be confused with another name by case or spacing.
fn usable_name(name: &str) -> bool {
    (1..=50).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
}

impl ScopeCatalogue {
    /// The catalogue of an API with these resources (each with read, write and delete, plus
    /// the `(resource, action)` pairs given), and Keyward's own resources.
    pub fn for_api(
        resources: impl IntoIterator<Item = String>,
        actions: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, CatalogueError> {
        let resources: Vec<String> = resources.into_iter().collect();
        if resources.is_empty() {
            return Err(CatalogueError::Empty);
        }
        for resource in &resources {
            if !usable_name(resource) {
                return Err(CatalogueError::BadName(resource.clone()));
            }
            if KEYWARD_RESOURCES.contains(&resource.as_str()) {
                return Err(CatalogueError::Reserved(resource.clone()));
            }
        }
        let mut catalogue = Self::new(
            resources
                .into_iter()
                .chain(KEYWARD_RESOURCES.iter().map(|r| (*r).to_owned())),
        );
        for (resource, action) in actions {
            if KEYWARD_RESOURCES.contains(&resource.as_str()) {
                return Err(CatalogueError::Reserved(resource));
            }
            if !catalogue.resources.contains_key(&resource) {
                return Err(CatalogueError::NoSuchResource(resource));
            }
            if !usable_name(&action) {
                return Err(CatalogueError::BadName(action));
            }
            catalogue.add_action(&resource, &action);
        }
        catalogue.add_action("keys", "verify");
        Ok(catalogue)
    }

    /// A catalogue of these resources, each with the read/write/delete actions.
    pub fn new(resources: impl IntoIterator<Item = String>) -> Self {
        let actions: Vec<String> = PRESET_ACTIONS.iter().map(|a| (*a).to_owned()).collect();
        Self {
            resources: resources
                .into_iter()
                .map(|r| (r, actions.clone()))
                .collect(),
        }
    }

    /// Adds an action beyond the three presets to one resource (e.g. `keys:verify`).
    pub fn add_action(&mut self, resource: &str, action: &str) {
        let actions = self.resources.entry(resource.to_owned()).or_default();
        if !actions.iter().any(|a| a == action) {
            actions.push(action.to_owned());
        }
    }

    /// Every resource with its actions, in name order.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.resources
            .iter()
            .map(|(r, a)| (r.as_str(), a.as_slice()))
    }

    /// Parses one scope against the catalogue.
    pub fn parse(&self, text: &str) -> Result<Scope, ScopeError> {
        let unknown = || ScopeError::Unknown(text.to_owned());
        let scope = match text.split_once(':') {
            None if text == "*" => Scope::all(),
            None if PRESET_ACTIONS.contains(&text) => Scope {
                resource: None,
                action: Some(text.to_owned()),
            },
            None => return Err(unknown()),
            Some(("*", action)) if PRESET_ACTIONS.contains(&action) => Scope {
                resource: None,
                action: Some(action.to_owned()),
            },
            Some((resource, action)) => {
                let actions = self.resources.get(resource).ok_or_else(unknown)?;
                if action == "*" {
                    Scope {
                        resource: Some(resource.to_owned()),
                        action: None,
                    }
                } else if actions.iter().any(|a| a == action) {
                    Scope::exact(resource, action)
                } else {
                    return Err(unknown());
                }
            }
        };
        Ok(scope)
    }

    /// Parses a list of scopes into a set.
    pub fn parse_set<S: AsRef<str>>(&self, texts: &[S]) -> Result<ScopeSet, ScopeError> {
        texts.iter().map(|t| self.parse(t.as_ref())).collect()
    }
}

/// A set of scopes held by a credential, kept sorted and free of duplicates.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<Scope>);

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes: Vec<Scope> = iter.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }
}

impl ScopeSet {
    /// Whether some scope of the set covers `required`.
    pub fn grants(&self, required: &Scope) -> bool {
        self.0.iter().any(|held| held.covers(required))
    }

    /// Whether every scope of `other` is covered here: the no-escalation test.
    pub fn covers_all(&self, other: &ScopeSet) -> bool {
        other.0.iter().all(|wanted| self.grants(wanted))
    }

    /// The scopes of both sets.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        self.0.iter().chain(other.0.iter()).cloned().collect()
    }

    /// The scopes in canonical text form.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(Scope::to_string).collect()
    }

    /// Whether the set holds no scope at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// Scopes as bits, so a check compares no string: every scope the catalogue can name (each
/// `resource:action`, each `resource:*`, the presets and `*`) has a bit, and a set of held
/// scopes becomes the bits of every nameable scope it covers. "The set grants the required
/// scope" is then one AND, with the same answer as [`ScopeSet::grants`] by construction.
/// A catalogue naming more than 128 scopes has no index: its checks compare scopes one by
/// one.
#[derive(Debug, Clone)]
pub struct ScopeIndex {
    /// The scope of each bit.
    nameable: Vec<Scope>,
    bits: HashMap<Scope, u32, foldhash::fast::RandomState>,
}

impl ScopeIndex {
    /// The index of `catalogue`, unless it names more scopes than bits there are.
    pub fn new(catalogue: &ScopeCatalogue) -> Option<Self> {
        let mut nameable = vec![Scope::all()];
        nameable.extend(PRESET_ACTIONS.iter().map(|action| Scope {
            resource: None,
            action: Some((*action).to_owned()),
        }));
        for (resource, actions) in catalogue.resources() {
            nameable.push(Scope {
                resource: Some(resource.to_owned()),
                action: None,
            });
            nameable.extend(actions.iter().map(|action| Scope::exact(resource, action)));
        }
        if nameable.len() > 128 {
            return None;
        }
        let bits = (0u32..)
            .zip(&nameable)
            .map(|(bit, s)| (s.clone(), bit))
            .collect();
        Some(Self { nameable, bits })
    }

    /// The bits of every nameable scope that `held` grants.
    pub fn granted(&self, held: &ScopeSet) -> u128 {
        (0u32..)
            .zip(&self.nameable)
            .filter(|(_, scope)| held.grants(scope))
            .fold(0, |bits, (bit, _)| bits | 1 << bit)
    }

    /// The bits of `required`; `None` when one of them is not nameable in this catalogue.
    pub fn required(&self, required: &[Scope]) -> Option<u128> {
        required
            .iter()
            .try_fold(0, |bits, scope| Some(bits | 1 << *self.bits.get(scope)?))
    }
}

/// The built-in roles: name and scopes.
pub const BUILTIN_ROLES: &[(&str, &[&str])] = &[
    ("admin", &["*"]),
    ("viewer", &["read"]),
    (
        "domain_manager",
        &["domains:*", "contacts:*", "hosts:*", "dns:read"],
    ),
    ("dns_manager", &["dns:*", "domains:read"]),
    ("billing_manager", &["billing:*"]),
];

/// An organization's own role: a named bundle of scopes.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomRole {
    /// The organization that defined it.
    pub organization_id: crate::typeid::OrganizationId,
    /// Its name, unique in the organization and distinct from the built-in ones.
    pub name: String,
    /// A note for people.
    pub description: Option<String>,
    /// The scopes it grants.
    pub scopes: ScopeSet,
    /// When it was created.
    pub created_at: time::OffsetDateTime,
    /// Who created it.
    pub created_by: String,
}

/// Checks a custom role name: 1–50 lowercase letters, digits and `_`, starting with a
/// letter, and not the name of a built-in role.
pub fn validate_role_name(name: &str) -> Result<(), crate::validation::ValidationError> {
    let well_formed = (1..=50).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(crate::validation::ValidationError::new(
            "name",
            "must be 1 to 50 lowercase letters, digits or _, starting with a letter",
        ));
    }
    if BUILTIN_ROLES.iter().any(|(builtin, _)| *builtin == name) {
        return Err(crate::validation::ValidationError::new(
            "name",
            format!("`{name}` is a built-in role"),
        ));
    }
    Ok(())
}

/// The scopes of a built-in role, if `name` is one this catalogue has: a role whose scopes
/// name resources the catalogue lacks (the example roles, under a deployment's own
/// resources) is not offered rather than granted in part.
pub fn builtin_role(catalogue: &ScopeCatalogue, name: &str) -> Option<ScopeSet> {
    builtin_roles(catalogue)
        .find(|(n, _)| *n == name)
        .map(|(_, scopes)| scopes)
}

/// The built-in roles this catalogue has, with their scopes: `admin` and `viewer` always,
/// the example roles when every resource they name is in it.
pub fn builtin_roles(catalogue: &ScopeCatalogue) -> impl Iterator<Item = (&'static str, ScopeSet)> {
    BUILTIN_ROLES.iter().filter_map(|(name, scopes)| {
        let parsed: Result<ScopeSet, _> = scopes.iter().map(|s| catalogue.parse(s)).collect();
        parsed.ok().map(|scopes| (*name, scopes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(texts: &[&str]) -> ScopeSet {
        ScopeCatalogue::default().parse_set(texts).unwrap()
    }

    #[test]
    fn parses_every_form_and_prints_it_back() {
        let catalogue = ScopeCatalogue::default();
        for text in [
            "*",
            "read",
            "write",
            "delete",
            "dns:*",
            "dns:read",
            "keys:verify",
        ] {
            assert_eq!(catalogue.parse(text).unwrap().to_string(), text);
        }
        assert_eq!(catalogue.parse("*:read").unwrap().to_string(), "read");
    }

    #[test]
    fn a_deployment_names_its_own_resources_and_keeps_keywards() {
        let catalogue = ScopeCatalogue::for_api(
            ["orders".to_owned(), "customers".to_owned()],
            [("orders".to_owned(), "refund".to_owned())],
        )
        .unwrap();
        for text in [
            "orders:read",
            "orders:refund",
            "customers:*",
            "keys:verify",
            "read",
        ] {
            assert!(catalogue.parse(text).is_ok(), "{text}");
        }
        for text in ["dns:read", "customers:refund", "domains:*"] {
            assert!(catalogue.parse(text).is_err(), "{text}");
        }
        // Only the roles whose resources it has.
        let roles: Vec<&str> = builtin_roles(&catalogue).map(|(name, _)| name).collect();
        assert_eq!(roles, ["admin", "viewer"]);
        assert!(builtin_role(&catalogue, "dns_manager").is_none());
        let defaults: Vec<&str> = builtin_roles(&ScopeCatalogue::default())
            .map(|(name, _)| name)
            .collect();
        assert_eq!(defaults.len(), BUILTIN_ROLES.len());
    }

    #[test]
    fn a_catalogue_refuses_names_scopes_could_not_carry() {
        let one = |resource: &str| ScopeCatalogue::for_api([resource.to_owned()], []);
        for bad in [
            "",
            "Orders",
            "or:ders",
            "*",
            "orders*",
            "9lives",
            "a b",
            &"x".repeat(51),
        ] {
            assert_eq!(
                one(bad),
                Err(CatalogueError::BadName(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            one("keys"),
            Err(CatalogueError::Reserved("keys".to_owned()))
        );
        assert_eq!(
            ScopeCatalogue::for_api(Vec::new(), []),
            Err(CatalogueError::Empty)
        );
        let actions = |resource: &str, action: &str| {
            ScopeCatalogue::for_api(
                ["orders".to_owned()],
                [(resource.to_owned(), action.to_owned())],
            )
        };
        assert_eq!(
            actions("invoices", "send"),
            Err(CatalogueError::NoSuchResource("invoices".to_owned()))
        );
        assert_eq!(
            actions("orders", "re:fund"),
            Err(CatalogueError::BadName("re:fund".to_owned()))
        );
        assert_eq!(
            actions("keys", "mint"),
            Err(CatalogueError::Reserved("keys".to_owned()))
        );
        assert!(one("line-items.v2").is_ok());
    }

    #[test]
    fn refuses_scopes_outside_the_catalogue() {
        let catalogue = ScopeCatalogue::default();
        for text in [
            "",
            "dns",
            "dns:",
            ":read",
            "dns:fly",
            "spaceships:read",
            "dns:read:x",
            "*:*:*",
            "verify",
            "*:verify",
            "DNS:read",
        ] {
            assert!(catalogue.parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn wildcards_and_presets_cover_what_they_say() {
        assert!(set(&["*"]).grants(&Scope::exact("billing", "delete")));
        assert!(set(&["dns:*"]).grants(&Scope::exact("dns", "delete")));
        assert!(!set(&["dns:*"]).grants(&Scope::exact("domains", "read")));
        assert!(set(&["read"]).grants(&Scope::exact("vps", "read")));
        assert!(!set(&["read"]).grants(&Scope::exact("vps", "write")));
        assert!(set(&["dns:read"]).grants(&Scope::exact("dns", "read")));
        assert!(!set(&["dns:read"]).grants(&Scope::exact("dns", "write")));
    }

    #[test]
    fn a_narrow_set_never_covers_a_wider_one() {
        assert!(set(&["*"]).covers_all(&set(&["read", "dns:*"])));
        assert!(set(&["dns:*"]).covers_all(&set(&["dns:read", "dns:write"])));
        assert!(!set(&["dns:*"]).covers_all(&set(&["*"])));
        assert!(!set(&["dns:read", "domains:read"]).covers_all(&set(&["read"])));
        assert!(!set(&["read"]).covers_all(&set(&["dns:*"])));
        assert!(set(&["read"]).covers_all(&set(&["dns:read", "keys:read"])));
        assert!(set(&["keys:read"]).covers_all(&set(&[])));
    }

    #[test]
    fn canonical_text_reads_back_without_a_catalogue() {
        let catalogue = ScopeCatalogue::default();
        for text in ["*", "read", "dns:*", "keys:verify"] {
            assert_eq!(
                Scope::from_canonical(text),
                Some(catalogue.parse(text).unwrap())
            );
        }
        assert_eq!(Scope::from_canonical(""), None);
        assert_eq!(Scope::from_canonical("dns:"), None);
    }

    #[test]
    fn builtin_roles_resolve() {
        let catalogue = ScopeCatalogue::default();
        assert_eq!(builtin_role(&catalogue, "admin"), Some(set(&["*"])));
        assert!(
            builtin_role(&catalogue, "dns_manager")
                .unwrap()
                .grants(&Scope::exact("dns", "delete"))
        );
        assert_eq!(builtin_role(&catalogue, "root"), None);
    }

    fn any_scope() -> impl Strategy<Value = String> {
        let resources = prop::sample::select(vec!["dns", "domains", "keys", "*"]);
        let actions = prop::sample::select(vec!["read", "write", "delete", "*"]);
        (resources, actions).prop_map(|(r, a)| match (r, a) {
            ("*", "*") => "*".to_owned(),
            ("*", a) => a.to_owned(),
            (r, a) => format!("{r}:{a}"),
        })
    }

    proptest! {
        #[test]
        fn parse_print_round_trips(text in any_scope()) {
            let catalogue = ScopeCatalogue::default();
            let scope = catalogue.parse(&text).unwrap();
            prop_assert_eq!(catalogue.parse(&scope.to_string()).unwrap(), scope);
        }

        #[test]
        fn coverage_is_transitive(a in any_scope(), b in any_scope(), c in any_scope()) {
            let catalogue = ScopeCatalogue::default();
            let (a, b, c) = (catalogue.parse(&a).unwrap(), catalogue.parse(&b).unwrap(), catalogue.parse(&c).unwrap());
            if a.covers(&b) && b.covers(&c) {
                prop_assert!(a.covers(&c));
            }
        }

        #[test]
        fn arbitrary_text_never_panics_the_parser(text in ".{0,40}") {
            let _ = ScopeCatalogue::default().parse(&text);
        }
    }

    proptest! {
        /// The bits answer exactly as the scopes compared one by one, for every set of held
        /// scopes (stored ones outside the catalogue included) and every nameable scope.
        #[test]
        fn the_index_grants_what_the_set_grants(
            held in proptest::collection::vec(
                prop_oneof![
                    Just("*"), Just("read"), Just("write"), Just("delete"), Just("dns:*"),
                    Just("dns:read"), Just("dns:write"), Just("keys:verify"), Just("keys:*"),
                    Just("domains:delete"), Just("billing:read"), Just("gone:read"),
                ],
                0..5,
            ),
        ) {
            let catalogue = ScopeCatalogue::default();
            let index = ScopeIndex::new(&catalogue).unwrap();
            let set: ScopeSet = held.iter().filter_map(|s| Scope::from_canonical(s)).collect();
            let granted = index.granted(&set);
            for scope in &index.nameable {
                let required = std::slice::from_ref(scope);
                let needed = index.required(required).unwrap();
                prop_assert_eq!(granted & needed == needed, set.grants(scope), "{:?}", scope);
            }
            prop_assert_eq!(index.required(&[Scope::exact("gone", "read")]), None);
        }
    }
}
