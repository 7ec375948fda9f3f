"""Keyward's MCP tools driven by the `mcp` Python SDK (the protocol's own client).

TRANSPORT says how it reaches them:
- `http`: Streamable HTTP at KEYWARD_URL/mcp, the credential as `Authorization: Bearer`;
- `stdio`: `KEYWARD_BIN mcp` started as a local process with KEYWARD_URL and the credential
  in KEYWARD_API_KEY, as an assistant starts it; its standard error goes to KEYWARD_MCP_LOG.

SCENARIO says what it does:
- `manage`, as KEYWARD_API_KEY: initialize, list the tools, create a key and use it against
  /v1/authorize, verify it, read its usage, rotate and revoke it, and read the audit log;
  counts how many times the created key's secret appears in everything the client received;
- `limits`: a keys:read credential (READER_KEY), a `dns:read keys:write` one (NARROW_KEY),
  another organization's key id (OTHER_KEY_ID) asked for as KEYWARD_API_KEY, and bad input
  (unknown tool, wrong argument types), after which the session must still answer.

Prints one JSON line with what the test checks, then OK.
"""

import asyncio
import contextlib
import json
import os
import time
import urllib.error
import urllib.request

from mcp import ClientSession, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

URL = os.environ["KEYWARD_URL"]
KEY = os.environ["KEYWARD_API_KEY"]
TRANSPORT = os.environ["TRANSPORT"]


@contextlib.asynccontextmanager
async def connect(key):
    """An initialized session as `key`, and its initialize result."""
    async with contextlib.AsyncExitStack() as stack:
        if TRANSPORT == "stdio":
            server = StdioServerParameters(
                command=os.environ["KEYWARD_BIN"],
                args=["mcp"],
                # Everything logged: what the SDKs log below info is held back.
                env={"KEYWARD_URL": URL, "KEYWARD_API_KEY": key, "KEYWARD_LOG": "trace"},
            )
            log = stack.enter_context(open(os.environ["KEYWARD_MCP_LOG"], "a"))
            read, write = await stack.enter_async_context(stdio_client(server, errlog=log))
        else:
            client = await stack.enter_async_context(
                create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
            )
            read, write, *_ = await stack.enter_async_context(
                streamable_http_client(URL + "/mcp", http_client=client)
            )
        session = await stack.enter_async_context(ClientSession(read, write))
        init = await session.initialize()
        yield session, init


def authorize(key):
    request = urllib.request.Request(URL + "/v1/authorize", headers={"X-Api-Key": key})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


async def tool_names(session):
    return sorted(tool.name for tool in (await session.list_tools()).tools)


async def outcome(session, tool, arguments):
    """(is_error, the JSON of its text) of a call; a protocol error as (None, its code)."""
    try:
        result = await session.call_tool(tool, arguments)
    except MCPError as error:
        return None, error.error.code
    return result.is_error, json.loads(result.content[0].text)


async def manage():
    received = []

    async def call(session, tool, arguments):
        result = await session.call_tool(tool, arguments)
        received.append(result.model_dump_json())
        assert not result.is_error, (tool, result)
        return json.loads(result.content[0].text)

    async with connect(KEY) as (session, init):
        received.append(init.model_dump_json())
        tools = await session.list_tools()
        received.append(tools.model_dump_json())
        names = sorted(tool.name for tool in tools.tools)
        revoke = next(tool for tool in tools.tools if tool.name == "revoke_key")
        assert revoke.annotations.destructive_hint is True, revoke
        listing = next(tool for tool in tools.tools if tool.name == "list_keys")
        assert listing.annotations.read_only_hint is True, listing
        made = await call(
            session, "create_key", {"name": "From Python", "permissions": ["dns:read"]}
        )
        secret, key_id = made["key"], made["key_id"]
        first = authorize(secret)
        verified = await call(
            session, "verify_key", {"key": secret, "required_scopes": ["dns:read"]}
        )
        time.sleep(1.5)  # the usage flush writes within a second
        usage = await call(session, "key_usage", {"key_id": key_id})
        listed = await call(session, "list_keys", {})
        rotated = await call(session, "rotate_key", {"key_id": key_id})
        after_rotation = (authorize(secret), authorize(rotated["key"]))
        revoked = await call(session, "revoke_key", {"key_id": key_id})
        after_revoke = authorize(rotated["key"])
        audit = await call(session, "query_audit_log", {"target_id": key_id})
        unknown = await session.call_tool(
            "get_key", {"key_id": "api_key_01m91ew689ejgbbe2j6gm9g2w8"}
        )
        received.append(unknown.model_dump_json())
    everything = "\n".join(received)
    return {
        "server": init.server_info.name,
        "tools": names,
        "key_id": key_id,
        "secret": secret,
        "rotated_secret": rotated["key"],
        "client_secret": made["client_secret"],
        "shown_once": made["secrets_shown_once"],
        "secret_seen": everything.count(secret),
        "rotated_seen": everything.count(rotated["key"]),
        "client_secret_seen": everything.count(made["client_secret"]),
        "authorize_first": first,
        "verified": [verified["valid"], verified["code"], verified["key_id"]],
        "usage_valid": sum(b["outcomes"].get("VALID", 0) for b in usage["buckets"]),
        "listed": [k["key_id"] for k in listed["data"]],
        "after_rotation": after_rotation,
        "revoked_status": revoked["status"],
        "after_revoke": after_revoke,
        "audit": [(e["action"], e["details"].get("via")) for e in audit["data"]],
        "unknown_is_error": unknown.is_error,
        "unknown_code": json.loads(unknown.content[0].text)["code"],
    }


async def limits():
    seen = {}
    async with connect(os.environ["READER_KEY"]) as (session, _):
        seen["reader_tools"] = await tool_names(session)
        error, refused = await outcome(session, "create_key", {"name": "Nope"})
        seen["reader_create"] = [error, refused["code"], "keys:write" in refused["message"]]
        error, refused = await outcome(session, "revoke_key", {"key_id": os.environ["OTHER_KEY_ID"]})
        seen["reader_revoke"] = [error, refused["code"]]
    async with connect(os.environ["NARROW_KEY"]) as (session, _):
        error, refused = await outcome(
            session, "create_key", {"name": "Wider", "permissions": ["dns:write"]}
        )
        seen["narrow_wider"] = [error, refused["code"]]
    async with connect(KEY) as (session, _):
        other = os.environ["OTHER_KEY_ID"]
        seen["other_get"] = list(await outcome(session, "get_key", {"key_id": other}))
        seen["other_revoke"] = list(await outcome(session, "revoke_key", {"key_id": other}))
        seen["other_usage"] = list(await outcome(session, "key_usage", {"key_id": other}))
        # Bad input, each answered; the session answers the next call.
        seen["unknown_tool"] = list(await outcome(session, "drop_database", {}))
        seen["wrong_type"] = list(await outcome(session, "create_key", {"name": 42}))
        seen["missing_argument"] = list(await outcome(session, "get_key", {}))
        error, bad = await outcome(session, "list_keys", {"limit": 1000})
        seen["bad_limit"] = [error, bad["code"]]
        error, listed = await outcome(session, "list_keys", {})
        seen["still_answering"] = error is False and isinstance(listed["data"], list)
    return seen


async def main():
    scenario = {"manage": manage, "limits": limits}[os.environ["SCENARIO"]]
    print(json.dumps(await scenario()))
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
