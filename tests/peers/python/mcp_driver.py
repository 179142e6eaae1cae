"""An MCP client, driven line by line, for Countersign's MCP proxy tests.

It is the official MCP Python SDK's ClientSession, connected over stdio (it starts the server
command) or streamable HTTP, answering the server's sampling and roots requests itself. The test
writes commands as JSON lines to its stdin and reads events as JSON lines from its stdout:

    usage: mcp_driver.py stdio COMMAND [ARGS...]     |     mcp_driver.py http URL

    {"op": "call", "tag": "a", "tool": "echo", "arguments": {...}, "progress": true}
        -> {"tag": "a", "event": "progress", "progress": 1, "message": "..."} (0 or more)
        -> {"tag": "a", "event": "result", "is_error": false, "text": "..."}
           or {"tag": "a", "event": "error", "message": "..."} (a JSON-RPC error)
    {"op": "cancel", "tag": "a"}   -> the call's task is cancelled, so the SDK sends
                                      notifications/cancelled; {"tag": "a", "event": "cancelled"}
    {"op": "tools"}                -> {"event": "tools", "tools": {"name": "description", ...}}
    {"op": "quit"}

On start it prints {"event": "ready", "tools": [...]}. Each event is one line, flushed at once.
"""

import json
import os
import sys

import anyio
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

ROOT = "file:///tmp/countersign-test-root"


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def sampling(context, params):
    emit(event="sampling", messages=len(params.messages))
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="sampled by the test client"),
        model="countersign-test-model",
        stop_reason="endTurn",
    )


async def roots(context):
    emit(event="roots")
    return types.ListRootsResult(roots=[types.Root(uri=ROOT, name="test root")])


def result_text(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def call(session, command, scopes):
    tag = command["tag"]

    async def on_progress(progress, total, message):
        emit(tag=tag, event="progress", progress=progress, message=message)

    with anyio.CancelScope() as scope:
        scopes[tag] = scope
        try:
            result = await session.call_tool(
                command["tool"],
                command.get("arguments") or {},
                progress_callback=on_progress if command.get("progress") else None,
            )
            emit(tag=tag, event="result", is_error=bool(result.is_error), text=result_text(result))
        except Exception as error:  # a JSON-RPC error answer
            emit(tag=tag, event="error", message=str(error))
    if scope.cancelled_caught:
        emit(tag=tag, event="cancelled")


async def drive(session):
    await session.initialize()
    tools = await session.list_tools()
    emit(event="ready", tools=[tool.name for tool in tools.tools])
    scopes = {}
    stdin = anyio.wrap_file(sys.stdin)
    async with anyio.create_task_group() as group:
        async for line in stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            op = command["op"]
            if op == "call":
                group.start_soon(call, session, command, scopes)
            elif op == "cancel":
                scopes[command["tag"]].cancel()
            elif op == "tools":
                listed = await session.list_tools()
                emit(event="tools", tools={t.name: t.description for t in listed.tools})
            elif op == "quit":
                break
        group.cancel_scope.cancel()


async def main(argv):
    mode = argv[1]
    callbacks = dict(sampling_callback=sampling, list_roots_callback=roots)
    if mode == "stdio":
        params = StdioServerParameters(command=argv[2], args=argv[3:], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, **callbacks) as session:
                await drive(session)
    elif mode == "http":
        async with streamable_http_client(argv[2]) as (read, write):
            async with ClientSession(read, write, **callbacks) as session:
                await drive(session)
    else:
        sys.exit(f"usage: {argv[0]} stdio COMMAND [ARGS...] | http URL")


if __name__ == "__main__":
    anyio.run(main, sys.argv)
