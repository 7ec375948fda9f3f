//! `keyward keys …` and `keyward orgs …`: credentials managed on the server's machine, as
//! the operator, through the same service functions the API calls.
//!
//! The operator is bound by no credential's scopes; every change is audited with the actor
//! `cli`. `--org` may be left out on a deployment with one organization. Errors are one line
//! saying what to do next; a value clap can check (a date, a status) is a usage error (exit
//! status 2) before anything is opened.

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use keyward_core::clock::rfc3339;
use keyward_core::credential::{DisplayStatus, Environment};
use keyward_core::typeid::OrganizationId;
use keyward_server::json::KeyResponse;
use keyward_service::credentials::{
    CredentialChange, CredentialFilter, Issued, NewCredential, Rotation, StatusChange,
};
use keyward_service::principal::{ReadKeys, WriteKeys};
use keyward_service::{Operator, Service, ServiceError};
use serde_json::Value;
use time::OffsetDateTime;

/// The organization a command acts in.
#[derive(Debug, Clone, Args)]
pub struct OrgArg {
    /// Organization id (`organization_…`); may be left out when the deployment has one
    #[arg(long)]
    pub org: Option<String>,
}

/// Live or test.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CliEnvironment {
    /// Production.
    Live,
    /// Development and testing.
    Test,
}

impl From<CliEnvironment> for Environment {
    fn from(environment: CliEnvironment) -> Self {
        match environment {
            CliEnvironment::Live => Environment::Live,
            CliEnvironment::Test => Environment::Test,
        }
    }
}

/// A key's status as listings show it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CliStatus {
    /// Usable.
    Active,
    /// Turned off; can be turned on again.
    Disabled,
    /// Revoked for good.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl From<CliStatus> for DisplayStatus {
    fn from(status: CliStatus) -> Self {
        match status {
            CliStatus::Active => DisplayStatus::Active,
            CliStatus::Disabled => DisplayStatus::Disabled,
            CliStatus::Revoked => DisplayStatus::Revoked,
            CliStatus::Expired => DisplayStatus::Expired,
        }
    }
}

/// A field `keys update --clear` empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Clearable {
    /// No description.
    Description,
    /// No role.
    Role,
    /// The environment's default rate limit.
    RateLimit,
    /// Any address may use the key.
    Allowlist,
    /// No owner id.
    OwnerId,
    /// Valid at once.
    NotBefore,
    /// Never expires.
    ExpiresAt,
}

/// The settings of a key that `create` takes and `update` changes.
#[derive(Debug, Clone, Args)]
pub struct KeySettings {
    /// A note about the key's purpose
    #[arg(long)]
    pub description: Option<String>,
    /// A scope, e.g. `orders:read` (repeat for several; on update, replaces them all)
    #[arg(long = "permission", value_name = "SCOPE")]
    pub permissions: Vec<String>,
    /// A role whose scopes the key also holds
    #[arg(long)]
    pub role: Option<String>,
    /// An address or CIDR range allowed to use the key (repeat; on update, replaces them)
    #[arg(long = "allow", value_name = "IP_OR_CIDR")]
    pub ip_allowlist: Vec<String>,
    /// Requests per second instead of the environment's default
    #[arg(long, value_name = "PER_SECOND")]
    pub rate_limit: Option<u64>,
    /// An external id grouping the keys of one end customer
    #[arg(long)]
    pub owner_id: Option<String>,
    /// A JSON object returned on every successful verification
    #[arg(long, value_name = "JSON", value_parser = json_object)]
    pub metadata: Option<Value>,
    /// Start of validity: a date (2027-06-01, midnight UTC) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub not_before: Option<OffsetDateTime>,
    /// Expiry: a date (2027-06-01, midnight UTC) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub expires_at: Option<OffsetDateTime>,
}

/// `keyward keys …`.
// The flattened fields' help is their own fields'.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a credential and print its secrets once
    Create {
        #[command(flatten)]
        org: OrgArg,
        /// A name, 1–100 characters
        #[arg(long)]
        name: String,
        /// live or test
        #[arg(long, value_enum, default_value = "live")]
        environment: CliEnvironment,
        #[command(flatten)]
        settings: KeySettings,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List an organization's credentials, newest first
    List {
        #[command(flatten)]
        org: OrgArg,
        /// Only keys showing this status
        #[arg(long, value_enum)]
        status: Option<CliStatus>,
        /// Only keys of this environment
        #[arg(long, value_enum)]
        environment: Option<CliEnvironment>,
        /// Only the keys of this end customer
        #[arg(long)]
        owner_id: Option<String>,
        /// Only keys whose id or owner id is this text, or whose name holds it
        #[arg(long)]
        search: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one credential (never its secrets)
    Show {
        #[command(flatten)]
        org: OrgArg,
        /// Credential id (`api_key_…`)
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Change a credential's settings: those given are set, the others kept
    Update {
        #[command(flatten)]
        org: OrgArg,
        /// Credential id (`api_key_…`)
        id: String,
        /// A new name
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: KeySettings,
        /// Empty a setting (repeat for several)
        #[arg(long, value_enum, value_name = "FIELD")]
        clear: Vec<Clearable>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Turn a credential off; `enable` turns it on again
    Disable {
        #[command(flatten)]
        org: OrgArg,
        /// Credential id (`api_key_…`)
        id: String,
    },
    /// Turn a disabled credential on again
    Enable {
        #[command(flatten)]
        org: OrgArg,
        /// Credential id (`api_key_…`)
        id: String,
    },
    /// Revoke a credential for good
    Revoke {
        #[command(flatten)]
        org: OrgArg,
        /// Credential id (`api_key_…`)
        id: String,
    },
    /// Issue new secrets for a credential and print them once
    Rotate {
        #[command(flatten)]
        org: OrgArg,
        /// Credential id (`api_key_…`)
        id: String,
        /// Seconds the old secrets keep working (0–604800)
        #[arg(long, default_value_t = 0)]
        grace_period_seconds: i64,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// `keyward orgs …`.
#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// List the deployment's organizations, oldest first
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Reads `2027-06-01` (midnight UTC) or an RFC 3339 time.
pub fn parse_when(text: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(day) = time::Date::parse(text, &date) {
        return Ok(day.midnight().assume_utc());
    }
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        "expected a date (2027-06-01) or an RFC 3339 time (2027-06-01T12:00:00Z)".to_owned()
    })
}

/// Reads a JSON object.
fn json_object(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err("expected a JSON object, e.g. '{\"plan\": \"pro\"}'".to_owned()),
    }
}

/// The organization `org` names, or the deployment's only one.
pub async fn organization(
    service: &Service,
    operator: &Operator,
    org: &OrgArg,
) -> anyhow::Result<OrganizationId> {
    if let Some(text) = &org.org {
        let Ok(id) = OrganizationId::parse(text) else {
            bail!(
                "--org {text} is not an organization id (organization_…); `keyward orgs list` shows them"
            );
        };
        if !service.organizations().exists(operator, &id).await? {
            bail!("no organization {id}; `keyward orgs list` shows them");
        }
        return Ok(id);
    }
    let mut all = service.organizations().list(operator).await?;
    match all.len() {
        1 => Ok(all.remove(0).id),
        0 => bail!("no organization yet: `keyward init` creates the first"),
        n => bail!("{n} organizations here: name one with --org (`keyward orgs list` shows them)"),
    }
}

/// What an error says on the command line, in one line with what to do next.
fn explained(error: ServiceError, id: &str, org: &OrganizationId) -> anyhow::Error {
    match error {
        ServiceError::NotFound => {
            anyhow::anyhow!("no key {id} in {org}; `keyward keys list --org {org}` lists them")
        }
        other => other.into(),
    }
}

/// Runs a `keys` command.
pub async fn keys(service: &Service, command: KeysCommand) -> anyhow::Result<()> {
    // The operator on the server's machine manages any organization without bound.
    let operator = Operator::new();
    let now = service.clock().now();
    let credentials = service.credentials();
    match command {
        KeysCommand::Create {
            org,
            name,
            environment,
            settings,
            json,
        } => {
            let organization_id = organization(service, &operator, &org).await?;
            let new = NewCredential {
                name,
                description: settings.description,
                environment: environment.into(),
                permissions: settings.permissions,
                role: settings.role,
                rate_limit_override: settings.rate_limit,
                ip_allowlist: settings.ip_allowlist,
                metadata: settings.metadata,
                owner_id: settings.owner_id,
                not_before: settings.not_before,
                expires_at: settings.expires_at,
                ..NewCredential::default()
            };
            let permit = operator
                .in_organization(&organization_id)
                .permit::<WriteKeys>()?;
            let issued = credentials.create(&permit, new).await?;
            print_issued(&issued, json, now)
        }
        KeysCommand::List {
            org,
            status,
            environment,
            owner_id,
            search,
            json,
        } => {
            let organization_id = organization(service, &operator, &org).await?;
            let permit = operator
                .in_organization(&organization_id)
                .permit::<ReadKeys>()?;
            let mut filter = CredentialFilter {
                status: status.map(Into::into),
                environment: environment.map(Into::into),
                owner_id,
                search,
                limit: 100,
                ..CredentialFilter::default()
            };
            let mut all = Vec::new();
            loop {
                let page = credentials.list(&permit, filter.clone()).await?;
                let Some(last) = page.last() else { break };
                filter.before = Some(last.id.clone());
                all.extend(page.iter().map(|c| KeyResponse::new(c, now)));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!(
                    "{:<36}  {:<8}  {:<5}  {:<14}  NAME",
                    "KEY ID", "STATUS", "ENV", "KEY"
                );
                for k in &all {
                    println!(
                        "{:<36}  {:<8}  {:<5}  {:<14}  {}",
                        k.key_id,
                        k.status,
                        k.environment,
                        format!("{}…{}", k.prefix, k.hint),
                        k.name
                    );
                }
            }
            Ok(())
        }
        KeysCommand::Show { org, id, json } => {
            let organization_id = organization(service, &operator, &org).await?;
            let permit = operator
                .in_organization(&organization_id)
                .permit::<ReadKeys>()?;
            let key = credentials
                .get(&permit, &id)
                .await
                .map_err(|e| explained(e, &id, &organization_id))?;
            print_key(&KeyResponse::new(&key, now), json)
        }
        KeysCommand::Update {
            org,
            id,
            name,
            settings,
            clear,
            json,
        } => {
            let organization_id = organization(service, &operator, &org).await?;
            let cleared = |field| clear.contains(&field);
            let change = CredentialChange {
                name,
                description: set_or_clear(settings.description, cleared(Clearable::Description)),
                permissions: (!settings.permissions.is_empty()).then_some(settings.permissions),
                role: set_or_clear(settings.role, cleared(Clearable::Role)),
                rate_limit_override: set_or_clear(
                    settings.rate_limit,
                    cleared(Clearable::RateLimit),
                ),
                ip_allowlist: if cleared(Clearable::Allowlist) {
                    Some(Vec::new())
                } else {
                    (!settings.ip_allowlist.is_empty()).then_some(settings.ip_allowlist)
                },
                metadata: settings.metadata,
                owner_id: set_or_clear(settings.owner_id, cleared(Clearable::OwnerId)),
                not_before: set_or_clear(settings.not_before, cleared(Clearable::NotBefore)),
                expires_at: set_or_clear(settings.expires_at, cleared(Clearable::ExpiresAt)),
                expected_version: None,
            };
            let permit = operator
                .in_organization(&organization_id)
                .permit::<WriteKeys>()?;
            let key = credentials
                .update(&permit, &id, change)
                .await
                .map_err(|e| explained(e, &id, &organization_id))?;
            print_key(&KeyResponse::new(&key, now), json)
        }
        KeysCommand::Disable { org, id } => {
            set_status(
                service,
                &operator,
                &org,
                &id,
                StatusChange::Disable,
                "disabled",
            )
            .await
        }
        KeysCommand::Enable { org, id } => {
            set_status(
                service,
                &operator,
                &org,
                &id,
                StatusChange::Enable,
                "enabled",
            )
            .await
        }
        KeysCommand::Revoke { org, id } => {
            set_status(
                service,
                &operator,
                &org,
                &id,
                StatusChange::Revoke,
                "revoked",
            )
            .await
        }
        KeysCommand::Rotate {
            org,
            id,
            grace_period_seconds,
            json,
        } => {
            let organization_id = organization(service, &operator, &org).await?;
            let permit = operator
                .in_organization(&organization_id)
                .permit::<WriteKeys>()?;
            let rotation = Rotation {
                grace_period_seconds,
                expected_version: None,
            };
            let rotated = credentials
                .rotate(&permit, &id, rotation)
                .await
                .map_err(|e| explained(e, &id, &organization_id))?;
            print_issued(&rotated.issued, json, now)?;
            if !json {
                match rotated.previous_secrets_expire_at {
                    Some(until) => println!("The previous secrets work until {}.", rfc3339(until)),
                    None => println!("The previous secrets no longer work."),
                }
            }
            Ok(())
        }
    }
}

/// A setting to change: set to the value given, emptied when `clear`, else kept.
fn set_or_clear<T>(value: Option<T>, clear: bool) -> Option<Option<T>> {
    match value {
        Some(value) => Some(Some(value)),
        None if clear => Some(None),
        None => None,
    }
}

async fn set_status(
    service: &Service,
    operator: &Operator,
    org: &OrgArg,
    id: &str,
    change: StatusChange,
    done: &str,
) -> anyhow::Result<()> {
    let organization_id = organization(service, operator, org).await?;
    let permit = operator
        .in_organization(&organization_id)
        .permit::<WriteKeys>()?;
    let key = service
        .credentials()
        .set_status(&permit, id, change)
        .await
        .map_err(|e| explained(e, id, &organization_id))?;
    println!("{done} {}", key.id);
    Ok(())
}

/// Runs an `orgs` command.
pub async fn orgs(service: &Service, command: OrgsCommand) -> anyhow::Result<()> {
    let OrgsCommand::List { json } = command;
    let all = service.organizations().list(&Operator::new()).await?;
    if json {
        let rows: Vec<Value> = all
            .iter()
            .map(|o| {
                serde_json::json!({
                    "organization_id": o.id.as_str(),
                    "name": o.name,
                    "created_at": rfc3339(o.created_at),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<40}  {:<20}  NAME", "ORGANIZATION ID", "CREATED");
        for o in &all {
            println!("{:<40}  {:<20}  {}", o.id, rfc3339(o.created_at), o.name);
        }
    }
    Ok(())
}

/// A key, as JSON or as lines of text.
fn print_key(key: &KeyResponse, json: bool) -> anyhow::Result<()> {
    let value = serde_json::to_value(key)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let Value::Object(fields) = value else {
        bail!("a key is a JSON object")
    };
    for (name, value) in fields {
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text,
            other => other.to_string(),
        };
        println!("{name:<22} {text}");
    }
    Ok(())
}

/// The credential's secrets, shown once: one JSON object, or lines for people.
pub fn print_issued(issued: &Issued, json: bool, now: OffsetDateTime) -> anyhow::Result<()> {
    if json {
        let mut value = serde_json::to_value(KeyResponse::new(&issued.credential, now))?;
        value["key"] = issued.api_key.expose().into();
        value["client_secret"] = issued.client_secret.expose().into();
        println!("{value}");
    } else {
        print_secrets(&issued.credential.organization_id, issued);
    }
    Ok(())
}

/// The secrets of a credential, for people.
pub fn print_secrets(organization_id: &OrganizationId, issued: &Issued) {
    println!("  Key ID:        {}", issued.credential.id);
    println!("  API key:       {}", issued.api_key.expose());
    println!("  Client ID:     {organization_id}");
    println!("  Client secret: {}", issued.client_secret.expose());
    println!("The API key and the client secret are shown only this once: store them now.");
}
