//! `keyward mcp`: Keyward's MCP tools over standard input and output, for an assistant that
//! starts its tools as local processes (Claude Desktop, Claude Code, most MCP clients).
//!
//! It holds no tool of its own and no database: it is an MCP server on stdio that relays
//! each `tools/list` and `tools/call` to a Keyward server's `/mcp` endpoint, as an MCP
//! client over Streamable HTTP with the credential given. So it works against a remote
//! deployment, and what the assistant may do is exactly what that server lets the
//! credential do: its tools, its organization, its scopes, the IP rules as seen from this
//! machine, its rate limit.
//!
//! Standard output carries the protocol and nothing else; diagnostics go to standard error.
//! Neither ever holds the credential.

use std::path::Path;

use anyhow::Context;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorCode, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext, RoleClient, RoleServer, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ErrorData, ServerHandler, ServiceExt};

use crate::remote::{Remote, credential};

/// The stdio server: what it says of itself, and the connection to the Keyward server.
#[derive(Clone)]
pub struct Relay {
    info: ServerConfig,
    server: Peer<RoleClient>,
}

/// Serves MCP on this process's standard input and output until the client closes them,
/// relaying to the Keyward at `base` with the credential from `key_file` or
/// `KEYWARD_API_KEY`. Fails at once when the server cannot be reached or refuses the
/// credential, so the assistant shows the error instead of an empty tool list.
pub async fn serve_stdio(base: &str, key_file: Option<&Path>) -> anyhow::Result<()> {
    let key = credential(key_file, "keyward mcp needs an API key or access token")?;
    let remote = Remote::new(base)?;
    let url = remote.url(keyward_server::mcp::PATH);
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(key.as_str());
    let transport = StreamableHttpClientTransport::with_client(remote.client, config);
    let client = ().serve(transport).await.with_context(|| format!("connecting to {url}"))?;
    let Some(server_info) = client.peer_info() else {
        anyhow::bail!("{url} did not say what it is");
    };
    let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
    if let Some(implementation) = server_info.server_info.clone() {
        info.server_info = implementation;
    }
    info.instructions = server_info.instructions.clone();
    tracing::info!(server = %url, "relaying MCP on standard input and output");
    let relay = Relay {
        info,
        server: client.peer().clone(),
    };
    let local = relay
        .serve(rmcp::transport::stdio())
        .await
        .context("starting MCP on standard input and output")?;
    let ended = local.waiting().await;
    client.cancel().await.ok();
    ended.context("serving MCP on standard input and output")?;
    Ok(())
}

/// What the assistant is told when the Keyward server could not answer: the server's own
/// protocol error as it was, or an internal error saying why (never the credential, which
/// no error of the transport holds).
fn relayed(error: ServiceError) -> ErrorData {
    match error {
        ServiceError::McpError(error) => error,
        other => {
            let why = match other.auth_challenge() {
                Some(_) => "the Keyward server refused the credential".to_owned(),
                None => format!("the Keyward server did not answer: {other}"),
            };
            ErrorData::new(ErrorCode::INTERNAL_ERROR, why, None)
        }
    }
}

impl ServerHandler for Relay {
    fn get_info(&self) -> ServerConfig {
        self.info.clone()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.server.list_tools(request).await.map_err(relayed)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.server.call_tool_once(request).await.map_err(relayed)
    }
}
