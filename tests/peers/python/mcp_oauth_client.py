"""The official MCP Python SDK's OAuth flow against one MCP endpoint, for Countersign's MCP proxy
tests: a 401 from the server, protected-resource metadata (RFC 9728, its `resource` checked
against the URL connected to), authorization server metadata, dynamic client registration, the
authorization code with PKCE and the RFC 8707 `resource`, then a session that calls `echo`.

    usage: mcp_oauth_client.py URL

Prints one JSON line, {"tools": [...], "text": "...", "is_error": false} (`echo` is called when
the server lists it; `text` is null otherwise); on failure exits
non-zero with the SDK's error on stderr. The "browser" is an HTTP GET of the authorization URL:
the test's authorization server approves at once and redirects with the code.
"""

import json
import sys
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata


class Memory:
    """Tokens and the registered client, kept for this run only."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client):
        self.client = client


async def main(url):
    redirected = {}

    async def redirect(authorization_url):
        async with httpx2.AsyncClient() as browser:
            answer = await browser.get(authorization_url)
        query = parse_qs(urlparse(answer.headers["location"]).query)
        redirected["code"] = query["code"][0]
        redirected["state"] = query.get("state", [None])[0]

    async def callback():
        return AuthorizationCodeResult(code=redirected["code"], state=redirected["state"])

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="countersign-test",
            redirect_uris=["http://127.0.0.1:9/callback"],
            scope="mcp",
        ),
        storage=Memory(),
        redirect_handler=redirect,
        callback_handler=callback,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with streamable_http_client(url, http_client=http, terminate_on_close=False) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = [tool.name for tool in (await session.list_tools()).tools]
                text, is_error = None, None
                if "echo" in tools:
                    result = await session.call_tool("echo", {"message": "through OAuth"})
                    text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
                    is_error = bool(result.is_error)
                print(json.dumps({"tools": tools, "text": text, "is_error": is_error}))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
