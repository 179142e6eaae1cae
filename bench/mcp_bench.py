"""The client of bench/mcp.sh: the official MCP Python SDK calling `echo` again and again.

    mcp_bench.py CALLS ROUNDS TARGETS_JSON

TARGETS_JSON is a list of {"label", "group", "mode": "stdio", "command": [...]} or
{"label", "group", "mode": "http", "url"}. Every target's session is opened first; then, ROUNDS
times, each target in turn makes CALLS/ROUNDS sequential calls (interleaving the targets, so that
a slow moment of the machine falls on all of them alike). Each call's round trip is timed from
the SDK's call_tool to its parsed result. Prints one table.
"""

import contextlib
import json
import statistics
import sys
import time

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


async def open_session(stack, target):
    if target["mode"] == "stdio":
        command = target["command"]
        params = StdioServerParameters(command=command[0], args=command[1:], env=target.get("env"))
        read, write = await stack.enter_async_context(stdio_client(params, errlog=sys.stderr))
    else:
        read, write = await stack.enter_async_context(streamable_http_client(target["url"]))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def calls(session, count, samples):
    for _ in range(count):
        start = time.perf_counter_ns()
        result = await session.call_tool("echo", {"message": "ping"})
        samples.append(time.perf_counter_ns() - start)
        if result.is_error:
            raise SystemExit(f"echo failed: {result.content}")


def percentile(sorted_samples, p):
    index = min(len(sorted_samples) - 1, int(round(p / 100 * (len(sorted_samples) - 1))))
    return sorted_samples[index]


async def main(argv):
    total, rounds, targets = int(argv[1]), int(argv[2]), json.loads(argv[3])
    per_round = max(1, total // rounds)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await open_session(stack, target) for target in targets]
        for session in sessions:  # warm up: JIT, connection pools, caches
            await calls(session, 200, [])
        samples = [[] for _ in targets]
        busy = [0 for _ in targets]
        for _ in range(rounds):
            for i, session in enumerate(sessions):
                start = time.perf_counter_ns()
                await calls(session, per_round, samples[i])
                busy[i] += time.perf_counter_ns() - start
        rows = []
        direct = {}
        for target, taken, spent in zip(targets, samples, busy):
            ordered = sorted(taken)
            p50, p99 = percentile(ordered, 50) / 1000, percentile(ordered, 99) / 1000
            if target.get("direct"):
                direct[target["group"]] = p50
            rows.append((target, p50, p99, len(taken) / (spent / 1e9), statistics.mean(taken) / 1000))
    print(f"{'transport':<10} {'path':<34} {'p50 µs':>9} {'p99 µs':>9} {'calls/s':>9} {'p50 added':>10}")
    for target, p50, p99, rate, _mean in rows:
        added = p50 - direct.get(target["group"], p50)
        shown = "—" if target.get("direct") else f"{added:+.0f}"
        print(f"{target['group']:<10} {target['label']:<34} {p50:>9.0f} {p99:>9.0f} {rate:>9.0f} {shown:>10}")
    print(f"{len(samples[0])} calls per path after 200 warm-up calls, interleaved in {rounds} rounds")


if __name__ == "__main__":
    anyio.run(main, sys.argv)
