//! The tools: each one parses its arguments, calls one service function as the caller's
//! credential, and answers the record the API would, as JSON text.

use axum::http::request::Parts;
use keyward_core::credential::Environment;
use keyward_core::ip_rule::RuleKind;
use keyward_service::credentials::CredentialChange;
use keyward_service::credentials::{Issued, NewCredential, Rotation, StatusChange};
use keyward_service::ip_rules::NewIpRule;
use keyward_service::principal::{
    DeleteIpRules, Permission, Principal, ReadAuditLog, ReadIpRules, ReadKeys, ReadRoles,
    ReadWebhooks, VerifyKeys, WriteIpRules, WriteKeys,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{Extension, ToolCallContext};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::caller::KeyCaller;
use crate::error::ApiError;
use crate::error::problem;
use crate::extract::without_string_value;
use crate::json::{EnvironmentName, KeyResponse, WholeNumber};
use crate::routes::keys::UpdateKeyRequest;
use crate::routes::verify::{self, VerifyRequest};
use crate::state::AppState;

/// A tool's answer: the JSON of a record, or a tool error with the problem's code.
type Answer = Result<CallToolResult, ErrorData>;

/// Keyward's MCP server: the tools, bound to the application.
#[derive(Clone)]
pub struct Tools {
    state: AppState,
    tool_router: ToolRouter<Tools>,
}

/// The permission a tool needs: it is listed only to a credential that has it.
fn needs(tool: &str) -> fn(&Principal<'_>) -> bool {
    fn may<P: Permission>(principal: &Principal<'_>) -> bool {
        principal.may::<P>()
    }
    match tool {
        "list_keys" | "get_key" | "key_usage" => may::<ReadKeys>,
        "query_audit_log" => may::<ReadAuditLog>,
        "list_ip_rules" => may::<ReadIpRules>,
        "list_roles" => may::<ReadRoles>,
        "list_webhooks" | "list_webhook_deliveries" => may::<ReadWebhooks>,
        // Any credential may read the scope catalogue.
        "list_scopes" => |_| true,
        "verify_key" => may::<VerifyKeys>,
        "add_ip_rule" => may::<WriteIpRules>,
        "remove_ip_rule" => may::<DeleteIpRules>,
        "create_key" | "update_key" | "disable_key" | "enable_key" | "revoke_key"
        | "rotate_key" => may::<WriteKeys>,
        // A tool named nowhere here is listed to no one (a test lists them all).
        _ => |_| false,
    }
}

/// The caller the request was admitted as (by `authenticate`).
fn caller(parts: &Parts) -> Result<&KeyCaller, ErrorData> {
    parts
        .extensions
        .get::<KeyCaller>()
        .ok_or_else(|| ErrorData::internal_error("the request was not admitted", None))
}

/// The problem an error is, as a tool error's text: `{code, message}`.
fn tool_error(error: crate::error::ApiError) -> String {
    let problem = problem(&error);
    json!({"code": problem.code, "message": problem.detail}).to_string()
}

/// The caller's permit for a permission, or (from the tool) the error naming the scope.
macro_rules! permit {
    ($caller:expr, $permission:ty) => {
        match $caller.principal().permit::<$permission>() {
            Ok(permit) => permit,
            Err(error) => {
                $caller.count_refusal(&error);
                return refused(error);
            }
        }
    };
}

/// A key with the secrets just issued to it, in the one result that shows them.
fn with_secrets(issued: &Issued, now: OffsetDateTime) -> Value {
    let mut body = json!(KeyResponse::new(&issued.credential, now));
    body["key"] = Value::String(issued.api_key.expose().to_owned());
    body["client_secret"] = Value::String(issued.client_secret.expose().to_owned());
    body["secrets_shown_once"] = Value::Bool(true);
    body
}

/// The SDK answers arguments that do not fit a tool's schema (a wrong type, a missing
/// field) with a tool error of its own wording; it is given the shape of every other tool
/// error, `validation_failed` with serde's reason, less any string it repeats (as the API's
/// JSON bodies are answered: it may be a secret put in the wrong field).
fn as_problem(result: CallToolResult) -> CallToolResult {
    const SDK_PREFIX: &str = "failed to deserialize parameters: ";
    let reason = match (result.is_error, result.content.as_slice()) {
        (Some(true), [only]) => only
            .as_text()
            .and_then(|text| text.text.strip_prefix(SDK_PREFIX)),
        _ => None,
    };
    match reason {
        Some(reason) => CallToolResult::error(vec![ContentBlock::text(
            json!({
                "code": "validation_failed",
                "message": format!("arguments: {}", without_string_value(reason)),
            })
            .to_string(),
        )]),
        None => result,
    }
}

fn ok(value: Value) -> Answer {
    Ok(CallToolResult::success(vec![ContentBlock::text(
        value.to_string(),
    )]))
}

fn refused(error: impl Into<ApiError>) -> Answer {
    Ok(CallToolResult::error(vec![ContentBlock::text(tool_error(
        error.into(),
    ))]))
}

/// Arguments of `list_keys`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListKeys {
    /// Only keys showing this status: `active`, `disabled`, `revoked` or `expired`.
    pub status: Option<String>,
    /// Only keys of this environment: `live` or `test`.
    pub environment: Option<String>,
    /// Only the keys of this end customer.
    pub owner_id: Option<String>,
    /// Only keys whose id or owner id is this text, or whose name holds it (without case).
    pub search: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Keys in a page, 1–100 (20 by default).
    pub limit: Option<u32>,
}

/// Arguments of the tools that act on one key.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyId {
    /// The key's id, `api_key_…`.
    pub key_id: String,
}

/// Arguments of `create_key`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A name, 1–100 characters.
    pub name: String,
    /// Notes about the key's purpose, up to 1,000 characters.
    pub description: Option<String>,
    /// `live` (default) or `test`.
    pub environment: Option<String>,
    /// Scopes, e.g. `["dns:read", "domains:*"]`; at most what the calling credential holds.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// A role whose scopes the key also holds.
    pub role: Option<String>,
    /// Requests per second instead of the environment's default.
    pub rate_limit_override: Option<u64>,
    /// Addresses and CIDR ranges allowed to use the key; none means any.
    #[serde(default)]
    pub ip_allowlist: Vec<String>,
    /// A JSON object (at most 16 KB) returned on every successful verification.
    pub metadata: Option<Value>,
    /// An external id grouping the keys of one end customer.
    pub owner_id: Option<String>,
    /// Start of validity, RFC 3339, before `expires_at`; none means at once.
    pub not_before: Option<String>,
    /// Expiry, RFC 3339, in the future; none means never.
    pub expires_at: Option<String>,
}

/// Arguments of `rotate_key`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// The key's id, `api_key_…`.
    pub key_id: String,
    /// How long the old secrets keep working: 0 (default, at once) to 604800 (7 days).
    pub grace_period_seconds: Option<i64>,
}

/// Arguments of `update_key`: fields left out stay as they are; `null` clears one that
/// may be empty.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// The key's id, `api_key_…`.
    pub key_id: String,
    /// A new name; cannot be `null`.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub name: Option<Option<String>>,
    /// A new description; `null` clears it.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub description: Option<Option<String>>,
    /// New scopes, replacing the old ones, at most the calling credential's own; `null` is
    /// none.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub permissions: Option<Option<Vec<String>>>,
    /// A new role; `null` removes it.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub role: Option<Option<String>>,
    /// A new rate limit; `null` returns to the environment's default.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub rate_limit_override: Option<Option<u64>>,
    /// A new allowlist, replacing the old one; `[]` or `null` allows every address.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub ip_allowlist: Option<Option<Vec<String>>>,
    /// New metadata, replacing the old object; `null` empties it.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub metadata: Option<Option<Value>>,
    /// A new owner id; `null` clears it.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub owner_id: Option<Option<String>>,
    /// A new start of validity (RFC 3339); `null` means at once.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub not_before: Option<Option<String>>,
    /// A new expiry (RFC 3339); `null` means never.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub expires_at: Option<Option<String>>,
}

/// Arguments of `add_ip_rule`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddIpRule {
    /// An address or CIDR range, e.g. `192.0.2.0/25`.
    pub ip_network: String,
    /// `allow` or `deny`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A note for people.
    pub description: Option<String>,
    /// Apply it even if it shuts out the address this request comes from.
    #[serde(default)]
    pub confirm_lockout: bool,
}

/// Arguments of `remove_ip_rule`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveIpRule {
    /// The rule's id, `ip_rule_…`.
    pub rule_id: String,
    /// Remove it even if that shuts out the address this request comes from.
    #[serde(default)]
    pub confirm_lockout: bool,
}

/// Arguments of `list_webhook_deliveries`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliveries {
    /// The endpoint's id, `webhook_…`.
    pub webhook_id: String,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Messages in a page, 1–100 (20 by default).
    pub limit: Option<u32>,
}

/// Arguments of `verify_key`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKey {
    /// The API key a client presented (`{prefix}_live_…` or `{prefix}_test_…`).
    pub key: String,
    /// Scopes the request needs, e.g. `["dns:write"]`.
    pub required_scopes: Option<Vec<String>>,
    /// The environment the key must belong to: `live` or `test`.
    pub environment: Option<String>,
    /// The client's address, checked against the key's allowlist and the organization's
    /// IP rules.
    pub client_ip: Option<String>,
}

/// Everything but the key.
impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("required_scopes", &self.required_scopes)
            .field("environment", &self.environment)
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

/// An empty argument object.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

/// A time argument that may be left out (`None`), `null` (`Some(None)`), or RFC 3339.
fn optional_time(
    field: &'static str,
    value: Option<Option<String>>,
) -> Result<Option<Option<OffsetDateTime>>, ApiError> {
    value
        .map(|text| {
            text.map(|text| {
                OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad(field, "is not an RFC 3339 time"))
            })
            .transpose()
        })
        .transpose()
}

/// Arguments of `key_usage`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyUsage {
    /// The key's id, `api_key_…`.
    pub key_id: String,
    /// Start (RFC 3339, included); default: 24 hours before `to`.
    pub from: Option<String>,
    /// End (RFC 3339, excluded); default: the end of the current minute.
    pub to: Option<String>,
    /// `minute`, `hour` (default) or `day`; at most 1,500 of them in the window.
    pub granularity: Option<String>,
}

/// Arguments of `query_audit_log`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLog {
    /// Only events of this action, e.g. `key.revoked`; or, ending in `.`, every action
    /// beginning so (`key.`).
    pub action: Option<String>,
    /// Only events by this actor: a key id, a member id (`user_…`), `cli` or `keyward`.
    pub actor: Option<String>,
    /// Only events about this object, e.g. a key id.
    pub target_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Only events before this time (RFC 3339).
    pub to: Option<String>,
    /// The `next_cursor` of the previous page (older events).
    pub cursor: Option<String>,
    /// The `prev_cursor` of the previous page (newer events).
    pub before_cursor: Option<String>,
    /// Events in a page, 1–100 (20 by default).
    pub limit: Option<u32>,
}

fn bad(field: &'static str, message: &str) -> ApiError {
    ApiError::Validation(keyward_core::validation::ValidationError::new(
        field, message,
    ))
}

#[tool_router]
impl Tools {
    /// The tools over `state`.
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.state.clock.now()
    }

    #[tool(
        description = "List or search the organization's API keys, newest first: filters by \
                       status, environment and owner, a search by name, id or owner id, and a \
                       cursor. Never shows a secret.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn list_keys(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ListKeys>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, ReadKeys);
        let query = crate::routes::keys::ListKeysQuery {
            status: args.status,
            environment: args.environment,
            owner_id: args.owner_id,
            search: args.search,
            cursor: args.cursor,
            limit: args.limit,
        };
        match crate::routes::keys::page(&self.state, &permit, query).await {
            Ok(page) => ok(json!(page)),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "Read one API key of the organization by its id. Never shows a secret.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn get_key(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<KeyId>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, ReadKeys);
        match self
            .state
            .service
            .credentials()
            .get(&permit, &args.key_id)
            .await
        {
            Ok(key) => ok(json!(KeyResponse::new(&key, self.now()))),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "Create an API key. Its scopes, environment, expiry and addresses must \
                       be within the calling credential's own. The answer holds the new key's \
                       API key and client secret, shown only in this answer: store them now.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = false
        )
    )]
    async fn create_key(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<CreateKey>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, WriteKeys);
        let environment = match args.environment.as_deref().map(Environment::parse) {
            Some(None) => return refused(bad("environment", "must be live or test")),
            other => other.flatten().unwrap_or(Environment::Live),
        };
        let (not_before, expires_at) = match (
            optional_time("not_before", args.not_before.map(Some)),
            optional_time("expires_at", args.expires_at.map(Some)),
        ) {
            (Ok(not_before), Ok(expires_at)) => (not_before.flatten(), expires_at.flatten()),
            (Err(error), _) | (_, Err(error)) => return refused(error),
        };
        let new = NewCredential {
            id: None,
            name: args.name,
            description: args.description,
            environment,
            permissions: args.permissions,
            role: args.role,
            rate_limit_override: args.rate_limit_override,
            ip_allowlist: args.ip_allowlist,
            metadata: args.metadata,
            owner_id: args.owner_id,
            not_before,
            expires_at,
        };
        match self.state.service.credentials().create(&permit, new).await {
            Ok(issued) => ok(with_secrets(&issued, self.now())),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "Change an API key's name, description, scopes, role, rate limit, \
                       allowlist, metadata, owner id, start or expiry. Fields left out stay as \
                       they are, `null` clears one; the result must stay within the calling \
                       credential's own scopes. Replacing scopes or addresses can stop a \
                       client that uses the key.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true
        )
    )]
    async fn update_key(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<UpdateKey>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, WriteKeys);
        let (not_before, expires_at) = match (
            optional_time("not_before", args.not_before),
            optional_time("expires_at", args.expires_at),
        ) {
            (Ok(not_before), Ok(expires_at)) => (not_before, expires_at),
            (Err(error), _) | (_, Err(error)) => return refused(error),
        };
        // The API's body, read by the API's rules: `null` means what it means there.
        let request = UpdateKeyRequest {
            name: args.name,
            description: args.description,
            permissions: args.permissions,
            role: args.role,
            rate_limit_override: args.rate_limit_override.map(|limit| limit.map(WholeNumber)),
            ip_allowlist: args.ip_allowlist,
            metadata: args.metadata,
            owner_id: args.owner_id,
            not_before,
            expires_at,
        };
        let change = match CredentialChange::try_from(request) {
            Ok(change) => change,
            Err(error) => return refused(error),
        };
        match self
            .state
            .service
            .credentials()
            .update(&permit, &args.key_id, change)
            .await
        {
            Ok(key) => ok(json!(KeyResponse::new(&key, self.now()))),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "The organization's IP access rules (allow or deny CIDR ranges), oldest \
                       first, and the address this request comes from.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn list_ip_rules(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(_): Parameters<Nothing>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, ReadIpRules);
        match self.state.service.ip_rules().list(&permit).await {
            Ok(rules) => ok(json!({
                "data": rules
                    .iter()
                    .map(crate::routes::ip_rules::IpRuleResponse::from)
                    .collect::<Vec<_>>(),
                "your_ip": caller.actor.source_ip.map(|ip| ip.to_string()),
            })),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "Add an IP access rule. A rule that would shut out the address this \
                       request comes from is refused unless confirm_lockout is true.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = true
        )
    )]
    async fn add_ip_rule(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<AddIpRule>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, WriteIpRules);
        let Some(kind) = RuleKind::parse(&args.kind) else {
            return refused(bad("type", "must be allow or deny"));
        };
        let new = NewIpRule {
            ip_network: args.ip_network,
            kind,
            description: args.description,
            confirm_lockout: args.confirm_lockout,
        };
        match self.state.service.ip_rules().add(&permit, new).await {
            Ok(rule) => ok(json!(crate::routes::ip_rules::IpRuleResponse::from(&rule))),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "Remove an IP access rule, with the same lockout guard.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = true
        )
    )]
    async fn remove_ip_rule(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<RemoveIpRule>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, DeleteIpRules);
        match self
            .state
            .service
            .ip_rules()
            .remove(&permit, &args.rule_id, args.confirm_lockout)
            .await
        {
            Ok(()) => ok(json!({"removed": args.rule_id})),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "The roles keys may hold: the built-in ones and the organization's \
                       own, each with its scopes.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn list_roles(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(_): Parameters<Nothing>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, ReadRoles);
        match crate::routes::roles::role_list(&self.state, &permit).await {
            Ok(roles) => ok(json!(roles)),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "The scopes keys may hold: each resource with its actions \
                       (`resource:action`), the presets and the wildcards.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn list_scopes(&self, Parameters(_): Parameters<Nothing>) -> Answer {
        ok(json!(crate::routes::roles::catalogue(&self.state)))
    }

    #[tool(
        description = "The organization's webhook endpoints: target, events, whether enabled \
                       and why not. Never a signing secret.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn list_webhooks(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(_): Parameters<Nothing>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, ReadWebhooks);
        match self.state.service.webhooks().list(&permit).await {
            Ok(webhooks) => ok(json!({
                "data": webhooks
                    .iter()
                    .map(crate::routes::webhooks::WebhookResponse::from)
                    .collect::<Vec<_>>(),
            })),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "A webhook endpoint's messages, newest first: each one's status \
                       (pending, delivered, failed), next retry, and attempts with the answer's \
                       status or why none came.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn list_webhook_deliveries(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<WebhookDeliveries>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, ReadWebhooks);
        let query = crate::routes::webhooks::DeliveryQuery {
            cursor: args.cursor,
            limit: args.limit,
        };
        match crate::routes::webhooks::delivery_page(&self.state, &permit, &args.webhook_id, query)
            .await
        {
            Ok(page) => ok(json!(page)),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "Disable an API key: refused until enabled again.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true
        )
    )]
    async fn disable_key(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<KeyId>,
    ) -> Answer {
        self.set_status(&parts, &args.key_id, StatusChange::Disable)
            .await
    }

    #[tool(
        description = "Turn a disabled API key on again: it is accepted from now on, within \
                       the calling credential's own scopes.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true
        )
    )]
    async fn enable_key(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<KeyId>,
    ) -> Answer {
        self.set_status(&parts, &args.key_id, StatusChange::Enable)
            .await
    }

    #[tool(
        description = "Revoke an API key for good: refused from now on. Cannot be undone.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true
        )
    )]
    async fn revoke_key(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<KeyId>,
    ) -> Answer {
        self.set_status(&parts, &args.key_id, StatusChange::Revoke)
            .await
    }

    #[tool(
        description = "Rotate an API key: a new API key and client secret, shown only in this \
                       answer. The old ones stop at once, or after grace_period_seconds.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = true
        )
    )]
    async fn rotate_key(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<RotateKey>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, WriteKeys);
        let rotation = Rotation {
            grace_period_seconds: args.grace_period_seconds.unwrap_or(0),
            expected_version: None,
        };
        match self
            .state
            .service
            .credentials()
            .rotate(&permit, &args.key_id, rotation)
            .await
        {
            Ok(rotated) => {
                let mut body = with_secrets(&rotated.issued, self.now());
                body["previous_secrets_expire_at"] = json!(
                    rotated
                        .previous_secrets_expire_at
                        .map(keyward_core::clock::rfc3339)
                );
                ok(body)
            }
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "A key's requests over a window, per minute, hour or day and outcome \
                       (VALID, RATE_LIMITED, IP_DENIED, …), and when it was last used.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn key_usage(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<KeyUsage>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, ReadKeys);
        let query = crate::routes::usage::UsageQuery {
            from: args.from,
            to: args.to,
            granularity: args.granularity,
        };
        match crate::routes::usage::report(&self.state, &permit, &args.key_id, query).await {
            Ok(report) => ok(json!(report)),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "Check a presented API key as the API beside Keyward would on a \
                       request, to troubleshoot a client: whether it is valid and, if not, \
                       why (NOT_FOUND, DISABLED, REVOKED, EXPIRED, IP_DENIED, \
                       INSUFFICIENT_SCOPE, ENVIRONMENT_MISMATCH, RATE_LIMITED, …). A check \
                       is a use of the key: it counts in the key's usage and rate limit.",
        annotations(
            open_world_hint = false,
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false
        )
    )]
    async fn verify_key(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<VerifyKey>,
    ) -> Answer {
        let caller = caller(&parts)?;
        permit!(caller, VerifyKeys);
        let environment = match args.environment.as_deref().map(Environment::parse) {
            Some(None) => return refused(bad("environment", "must be live or test")),
            other => other.flatten().map(EnvironmentName::from),
        };
        let request = VerifyRequest {
            key: args.key.as_str().into(),
            required_scopes: args.required_scopes,
            environment,
            client_ip: args.client_ip,
        };
        match verify::judge(&self.state, caller.organization_id(), &request).await {
            Ok(verdict) => {
                let body = String::from_utf8(verdict.body()).unwrap_or_default();
                Ok(CallToolResult::success(vec![ContentBlock::text(body)]))
            }
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "Query the organization's audit log, newest first: who did what to which \
                       object, from where, and when.",
        annotations(open_world_hint = false, read_only_hint = true)
    )]
    async fn query_audit_log(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<AuditLog>,
    ) -> Answer {
        let caller = caller(&parts)?;
        let permit = permit!(caller, ReadAuditLog);
        let query = crate::routes::audit::AuditLogQuery {
            action: args.action,
            actor: args.actor,
            target_id: args.target_id,
            from: args.from,
            to: args.to,
            cursor: args.cursor,
            before_cursor: args.before_cursor,
            limit: args.limit,
        };
        match crate::routes::audit::page(&self.state, &permit, query).await {
            Ok(page) => ok(json!(page)),
            Err(error) => refused(error),
        }
    }
}

impl Tools {
    async fn set_status(&self, parts: &Parts, id: &str, change: StatusChange) -> Answer {
        let caller = caller(parts)?;
        let permit = permit!(caller, WriteKeys);
        match self
            .state
            .service
            .credentials()
            .set_status(&permit, id, change)
            .await
        {
            Ok(key) => ok(json!(KeyResponse::new(&key, self.now()))),
            Err(error) => refused(error),
        }
    }
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "Manage this Keyward organization's API keys as the credential you \
                 authenticated with: only the tools its scopes allow are listed.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let parts = context
            .extensions
            .get::<Parts>()
            .ok_or_else(|| ErrorData::internal_error("no request", None))?;
        let caller = caller(parts)?;
        let principal = caller.principal();
        let tools: Vec<Tool> = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|tool| needs(&tool.name)(&principal))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let context = ToolCallContext::new(self, request, context);
        Ok(match self.tool_router.call(context).await? {
            CallToolResponse::Complete(result) => CallToolResponse::Complete(as_problem(result)),
            other => other,
        })
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router.get(name).cloned()
    }
}
