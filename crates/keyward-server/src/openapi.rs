//! The OpenAPI 3.1 document: generated from the handlers' `#[utoipa::path]` annotations,
//! with the security schemes added here, and completed for the deployment that serves it
//! ([`complete`]).
//!
//! The document is a contract: `.ci/schemathesis` runs Schemathesis over a live server with
//! every check, so a request the document allows must be accepted, one it refuses must be
//! refused, and every answer must be one the document declares.
//!
//! - [`values`]: the schemas of the values the API reads (names, scopes, addresses, ids).

pub mod values;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use keyward_core::scope::ScopeCatalogue;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Response, ResponseBuilder,
};

use crate::config::ServerConfig;

/// The document's info and security schemes, before the routes add their paths.
pub fn base_document() -> OpenApi {
    let mut document = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Keyward")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Self-hosted API credentials: API keys shown once and stored as salted hashes, \
                     scopes, environments, expiry, rotation, revocation and an audit trail.",
                ))
                .build(),
        )
        .build();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "keyward_session",
            "A member's dashboard session (`__Host-keyward_session` behind TLS), for the \
             management operations: the request must also carry the session's CSRF token in \
             `X-CSRF-Token` (every dashboard page has it in `<meta name=\"keyward-csrf-token\">`), \
             else it is refused with 403 `csrf_token_invalid`. The member acts within its \
             organization.",
        ))),
    );
    components.add_security_scheme(
        OAUTH_CLIENT,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
    );
    components.add_security_scheme("oauth2", oauth2_scheme(&ScopeCatalogue::default()));
    document
}

/// Where the access tokens that `bearer` presents come from, and the scopes of `catalogue`
/// they may hold.
fn oauth2_scheme(catalogue: &ScopeCatalogue) -> SecurityScheme {
    let scopes = values::scope_names(catalogue).into_iter().map(|scope| {
        let meaning = scope_meaning(&scope);
        (scope, meaning)
    });
    SecurityScheme::OAuth2(OAuth2::with_description(
        [Flow::ClientCredentials(ClientCredentials::new(
            "/v1/auth/token",
            Scopes::from_iter(scopes),
        ))],
        "OAuth 2.0 client credentials: the client id is the organization id, the \
         secret a credential's client secret; the access token is sent as `bearer`.",
    ))
}

/// What holding `scope` allows, in words.
fn scope_meaning(scope: &str) -> String {
    match scope.split_once(':') {
        None if scope == "*" => "everything".to_owned(),
        None => format!("{scope} on every resource"),
        Some(("*", action)) => format!("{action} on every resource"),
        Some((resource, "*")) => format!("every action on {resource}"),
        Some((resource, action)) => format!("{action} on {resource}"),
    }
}

/// The security scheme of OAuth client authentication by HTTP Basic
/// (`client_secret_basic`); the OAuth endpoints also take `client_id` and `client_secret`
/// in the body instead.
pub const OAUTH_CLIENT: &str = "oauth_client";

/// The security schemes the gate reads. An operation naming one is admitted by the gate,
/// which may refuse it before its handler runs: 400 `multiple_credentials`, 401, 403, 429,
/// 503 when the store cannot answer, or 408 when it answers too slowly.
const GATE_SCHEMES: [&str; 2] = ["api_key", "bearer"];

/// The document a server serves: the routes' own description, with the answers that
/// routes share declared on each ([`declare_shared_answers`]), every answer described
/// ([`describe`]), operation ids made unique, links from what creates an object to what
/// acts on it, and this deployment's bounds on IP rules.
pub fn complete(mut document: OpenApi, config: &ServerConfig) -> OpenApi {
    for item in document.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            declare_shared_answers(operation);
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = describe(status, response);
                }
            }
        }
    }
    unique_operation_ids(&mut document);
    link_operations(&mut document);
    if let Some(components) = document.components.as_mut() {
        components.schemas.insert(
            "IpRuleNetwork".to_owned(),
            values::rule_network(&config.service.rule_policy).into(),
        );
        // This deployment's scopes, where the document was made with the default ones.
        let catalogue = &config.engine.catalogue;
        for (name, schema) in values::catalogue_schemas(catalogue) {
            if let Some(slot) = components.schemas.get_mut(name) {
                *slot = schema.into();
            }
        }
        components.add_security_scheme("oauth2", oauth2_scheme(catalogue));
    }
    for item in document.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && parameter.name == REQUIRED_SCOPES_HEADER
                {
                    parameter.schema =
                        Some(values::required_scopes(&config.engine.catalogue).into());
                }
            }
        }
    }
    document
}

/// The header a proxy names the scopes a request needs in; its schema lists the catalogue's.
const REQUIRED_SCOPES_HEADER: &str = "X-Keyward-Required-Scopes";

/// The operations of a path, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

/// Declares on `operation` the answers it shares with others, as problem documents: the
/// gate's refusals on an operation it admits; 400 on one with query parameters; and on one
/// whose body only JSON can be (the OAuth endpoints read form or JSON bodies themselves and
/// answer in OAuth's shape), 400, 408, 413 and 415. A status the handler declares keeps its
/// own description and gains the problem document if it lacked it.
fn declare_shared_answers(operation: &mut Operation) {
    let admitted = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .ok()
            .and_then(|value| value.as_object().cloned())
            .is_some_and(|schemes| GATE_SCHEMES.iter().any(|s| schemes.contains_key(*s)))
    });
    let queried = operation.parameters.iter().flatten().any(|parameter| {
        matches!(parameter, RefOr::T(p)
            if p.parameter_in == ParameterIn::Query)
    });
    let json_body = matches!(&operation.request_body, Some(RefOr::T(body))
        if body.content.len() == 1 && body.content.contains_key("application/json"));
    let mut statuses: Vec<StatusCode> = Vec::new();
    if admitted {
        statuses.extend([
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ]);
    }
    if queried {
        statuses.push(StatusCode::BAD_REQUEST);
    }
    if json_body {
        statuses.extend([
            StatusCode::BAD_REQUEST,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ]);
    }
    for status in statuses {
        // Described afterwards, by status, with the answers the handlers left undescribed.
        let answer = operation
            .responses
            .responses
            .entry(status.as_str().to_owned())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().build()));
        if let RefOr::T(answer) = answer {
            answer
                .content
                .entry(PROBLEM_JSON.to_owned())
                .or_insert_with(|| {
                    RefOr::T(
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                });
        }
    }
}

const PROBLEM_JSON: &str = "application/problem+json";

/// What an answer of `status` means, for one that says nothing itself: for a problem
/// document, the codes it may carry anywhere in the API; otherwise the status's phrase.
fn describe(status: &str, response: &Response) -> String {
    let problem = response.content.contains_key(PROBLEM_JSON);
    let said = match status {
        _ if !problem => None,
        "400" => Some(
            "The request cannot be read (`invalid_json`, `invalid_query`, `unreadable_body`, \
             or a code naming the header at fault), or it presents more than one credential \
             (`multiple_credentials`).",
        ),
        "401" => Some(
            "No usable credential (`unauthenticated`; `outcome` says why, \
             `WWW-Authenticate` carries the challenge).",
        ),
        "403" => Some(
            "The credential may not do this: a scope it lacks (`insufficient_scope`), an \
             address or environment it may not be used from (`ip_denied`, \
             `environment_mismatch`), a change beyond its own reach (`privilege_escalation`), \
             a proxied request no route allows (`route_not_allowed`), or a dashboard \
             session's request without the session's CSRF token (`csrf_token_invalid`).",
        ),
        "404" => Some("No such object in the caller's organization (`not_found`)."),
        "408" => Some("The request took too long (`request_timeout`)."),
        "409" => Some("The object's state forbids the change; `code` says how."),
        "413" => Some("The body is larger than the deployment accepts (`payload_too_large`)."),
        "415" => Some("The body is not JSON (`unsupported_media_type`)."),
        "422" => {
            Some("A field's value is not acceptable (`validation_failed`); `errors` names it.")
        }
        "429" => Some(
            "Too many requests: the credential's rate limit (`rate_limited`, with the \
             `RateLimit-*` headers), the organization's ceiling on management requests \
             (`organization_rate_limited`), or too many failed authentications from this \
             address (`too_many_failures`). `Retry-After` says when to try again.",
        ),
        "503" => Some("The store cannot be reached (`unavailable`); retry later."),
        _ => None,
    };
    match said {
        Some(said) => said.to_owned(),
        None => status
            .parse::<u16>()
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .and_then(|s| s.canonical_reason())
            .unwrap_or("An answer")
            .to_owned(),
    }
}

/// What an answer creates, and the operations that act on it by the id the answer holds
/// (for Schemathesis's stateful phase, and for clients that follow links).
const LINKS: [(&str, &str, &str, &[&str]); 3] = [
    (
        "create_key",
        "201",
        "$response.body#/key_id",
        &[
            "get_key",
            "update_key",
            "disable_key",
            "enable_key",
            "revoke_key",
            "rotate_key",
            "key_usage",
        ],
    ),
    (
        "rotate_key",
        "200",
        "$response.body#/key_id",
        &["get_key", "key_usage", "revoke_key"],
    ),
    (
        "create_ip_rule",
        "201",
        "$response.body#/id",
        &["update_ip_rule", "delete_ip_rule"],
    ),
];

/// Adds [`LINKS`]: each operation's `id` path parameter from the answer.
fn link_operations(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            for (producer, status, pointer, consumers) in LINKS {
                if operation.operation_id.as_deref() != Some(producer) {
                    continue;
                }
                if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
                    for consumer in consumers {
                        response.links.insert(
                            (*consumer).to_owned(),
                            RefOr::T(
                                LinkBuilder::new()
                                    .operation_id(*consumer)
                                    .parameter("id", pointer)
                                    .build(),
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Operation ids are unique in a document: a handler described under several methods keeps
/// its id for `GET` and gets `{id}_{method}` for the others.
fn unique_operation_ids(document: &mut OpenApi) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for item in document.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            if let Some(id) = &operation.operation_id {
                *counts.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for item in document.paths.paths.values_mut() {
        for (method, operation) in operations(item) {
            if let Some(id) = operation.operation_id.as_mut()
                && counts.get(id.as_str()).is_some_and(|n| *n > 1)
                && method != "get"
            {
                *id = format!("{id}_{method}");
            }
        }
    }
}
