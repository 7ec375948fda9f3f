//! The OpenAPI 3.1 document: generated from the handlers' `#[utoipa::path]` annotations,
//! with the security schemes added here.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

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
    document
}
