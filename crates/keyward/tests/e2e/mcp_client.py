"""Keyward's MCP tools driven by the `mcp` Python SDK (the protocol's own client), over
Streamable HTTP at KEYWARD_URL/mcp with the API key in KEYWARD_API_KEY: initialize, list the
tools, create a key and use it against /v1/authorize, read its usage, rotate and revoke it,
and read the audit log. Also counts how many times the created key's secret appears in
everything the client received. Prints one JSON line with what the test checks, then OK.
"""

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

URL = os.environ["KEYWARD_URL"]
KEY = os.environ["KEYWARD_API_KEY"]


def authorize(key):
    request = urllib.request.Request(URL + "/v1/authorize", headers={"X-Api-Key": key})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


async def main():
    received = []

    async def call(session, tool, arguments):
        result = await session.call_tool(tool, arguments)
        received.append(result.model_dump_json())
        assert not result.is_error, (tool, result)
        return json.loads(result.content[0].text)

    client = create_mcp_http_client(headers={"Authorization": f"Bearer {KEY}"})
    async with client:
        async with streamable_http_client(URL + "/mcp", http_client=client) as (read, write, *_):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                received.append(init.model_dump_json())
                tools = await session.list_tools()
                received.append(tools.model_dump_json())
                names = sorted(tool.name for tool in tools.tools)
                revoke = next(tool for tool in tools.tools if tool.name == "revoke_key")
                assert revoke.annotations.destructive_hint is True, revoke
                made = await call(
                    session, "create_key", {"name": "From Python", "permissions": ["dns:read"]}
                )
                secret, key_id = made["key"], made["key_id"]
                first = authorize(secret)
                time.sleep(1.5)  # the usage flush writes within a second
                usage = await call(session, "key_usage", {"key_id": key_id})
                listed = await call(session, "list_keys", {})
                rotated = await call(session, "rotate_key", {"key_id": key_id})
                after_rotation = (authorize(secret), authorize(rotated["key"]))
                revoked = await call(session, "revoke_key", {"key_id": key_id})
                after_revoke = authorize(rotated["key"])
                audit = await call(session, "query_audit_log", {"target_id": key_id})
                unknown = await session.call_tool("get_key", {"key_id": "api_key_01m91ew689ejgbbe2j6gm9g2w8"})
                received.append(unknown.model_dump_json())
    everything = "\n".join(received)
    print(
        json.dumps(
            {
                "server": init.server_info.name,
                "tools": names,
                "key_id": key_id,
                "secret": secret,
                "rotated_secret": rotated["key"],
                "client_secret": made["client_secret"],
                "secret_seen": everything.count(secret),
                "authorize_first": first,
                "usage_valid": sum(b["outcomes"].get("VALID", 0) for b in usage["buckets"]),
                "listed": [k["key_id"] for k in listed["data"]],
                "after_rotation": after_rotation,
                "revoked_status": revoked["status"],
                "after_revoke": after_revoke,
                "audit": [(e["action"], e["details"].get("via")) for e in audit["data"]],
                "unknown_is_error": unknown.is_error,
                "unknown_code": json.loads(unknown.content[0].text)["code"],
            }
        )
    )
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
