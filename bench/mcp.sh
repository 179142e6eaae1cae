#!/usr/bin/env bash
# MCP proxy benchmark: what `countersign mcp` adds to an allowed tool call, next to the
# `mcp-proxy` package from PyPI, over both transports, in one run.
#
# Run from anywhere in a clone (needs cargo, python3, node and curl):
#
#     bench/mcp.sh                 # 4,000 calls per path (about a minute after the build)
#     bench/mcp.sh 10000 10        # calls per path, rounds
#
# What it measures: the round trip of `echo` (server-everything's trivial tool), as the official
# MCP Python SDK client sees it (tests/peers/python/.venv, the same client for every path), from
# call_tool to the parsed result; p50, p99 and sequential calls/s, and the p50 added over calling
# the server directly. Ten paths:
#
#   stdio  direct                       client → server-everything (stdio)
#   stdio  direct, again                the same as direct, in a session of its own
#   stdio  countersign mcp              client → countersign mcp (stdio) → server-everything (stdio)
#   stdio  bare relay                   client → a relay that only copies bytes → server-everything
#   stdio  mcp-proxy                    client → mcp-proxy (HTTP server mode) → server-everything (stdio)
#   http   direct                       client → server-everything (streamable HTTP)
#   http   direct, again                the same as direct, in a session of its own
#   http   countersign mcp --listen     client → countersign mcp (HTTP) → server-everything (HTTP)
#   http   bare TCP relay               client → a relay that only copies bytes → server-everything
#   http   mcp-proxy                    client → mcp-proxy (stdio client mode) → server-everything (HTTP)
#
# "direct, again" adds nothing by construction: what it shows as added is how far the figure moves
# by itself in that run (the server's sessions, the machine), the margin to read the others by.
# The bare relays (crates/mcp/examples/bare_relay.rs) look at nothing: they show what any process
# in between costs on this machine (the extra pipe or socket hops and wake-ups), so that what
# Countersign adds on top of that can be told apart. Over HTTP, server-everything answers each
# call with an SSE stream, which the MCP Python SDK stops reading at the answer: it opens a new
# connection for every call, directly and through the bare relay. Countersign hands such an
# answer to the client as JSON (docs/mcp.md, "The transports"), so the SDK keeps its connection
# through it; BENCH_COMPARE with an older build shows the difference.
#
# mcp-proxy cannot relay stdio to stdio or HTTP to HTTP: in each group it stands in front of the
# same upstream with the other transport on the client's side, which is how it is used.
#
# Every call through Countersign is a real allowed decision: the policy is fetched from a real
# broker (`countersign serve`, release build), decided locally, and its audit event spooled and
# shipped to that broker. The paths are interleaved in rounds so that a slow moment of the machine
# falls on all of them. mcp-proxy (pinned below) is installed from PyPI into target/mcp-proxy-venv
# on first use. Peers: scripts/install-test-peers. BENCH_KEEP=1 keeps the temporary directory.
#
# For work on the proxy: BENCH_TRANSPORTS=http (or stdio) runs one group only, and
# BENCH_COMPARE=/path/to/another/countersign adds that build's `countersign mcp` to each group,
# so that a change is measured side by side with this checkout's build in one run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CALLS="${1:-4000}"
ROUNDS="${2:-8}"
MCP_PROXY_VERSION="0.13.0"
case "${BENCH_TRANSPORTS:=stdio,http}" in
    stdio | http | stdio,http | http,stdio) ;;
    *) echo "bench/mcp.sh: BENCH_TRANSPORTS takes stdio, http or stdio,http, not '$BENCH_TRANSPORTS'" >&2; exit 2 ;;
esac
export BENCH_TRANSPORTS
if [[ -n "${BENCH_COMPARE:-}" && ! -x "$BENCH_COMPARE" ]]; then
    echo "bench/mcp.sh: BENCH_COMPARE=$BENCH_COMPARE is not an executable" >&2
    exit 2
fi

for tool in cargo python3 node curl; do
    command -v "$tool" >/dev/null || { echo "bench/mcp.sh: $tool is needed" >&2; exit 2; }
done

scripts/install-test-peers
PYTHON="$ROOT/tests/peers/python/.venv/bin/python"
EVERYTHING="$ROOT/tests/peers/mcp/node_modules/.bin/mcp-server-everything"
VENV="$ROOT/target/mcp-proxy-venv"
if [[ ! -x "$VENV/bin/mcp-proxy" ]] || ! "$VENV/bin/mcp-proxy" --version 2>/dev/null | grep -q "$MCP_PROXY_VERSION"; then
    echo "bench/mcp.sh: installing mcp-proxy $MCP_PROXY_VERSION into $VENV…" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "mcp-proxy==$MCP_PROXY_VERSION"
fi

echo "bench/mcp.sh: building countersign (release)…" >&2
cargo build --release --quiet -p countersign --bin countersign
cargo build --release --quiet -p countersign-mcp --example bare_relay
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
BIN="$TARGET_DIR/release/countersign"
RELAY="$TARGET_DIR/release/examples/bare_relay"

DIR="$(mktemp -d "${TMPDIR:-/tmp}/countersign-mcp-bench.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${BENCH_KEEP:-0}" = 1 ]]; then echo "bench/mcp.sh: kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "bench/mcp.sh: $1; logs in $DIR:" >&2
    tail -n 20 "$DIR"/*.log >&2 || true
    BENCH_KEEP=1
    exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # URL-or-port, what
    local deadline=$((SECONDS + 30))
    until curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; do
        ((SECONDS < deadline)) || fail "$2 did not start listening"
        sleep 0.05
    done
}
token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

AGENT_TOKEN="$(token)"
cat >"$DIR/policy.toml" <<'EOF'
version = 1
default = "deny"

[[rules]]
id = "bench-echo"
decision = "allow"
reason = "Echoing changes nothing"
match.kind = "mcp.tool_call"
match.resource = "mcp:everything/echo"
EOF
BROKER_PORT="$(free_port)"
cat >"$DIR/countersign.toml" <<EOF
listen = "127.0.0.1:$BROKER_PORT"
data_dir = "data"
policy = "policy.toml"

[[principals]]
id = "bench-bot"
kind = "agent"
token_sha256 = "$(printf %s "$AGENT_TOKEN" | sha256sum | cut -d' ' -f1)"
EOF
"$BIN" serve --config "$DIR/countersign.toml" >"$DIR/broker.log" 2>&1 &
PIDS+=($!)
wait_for "$BROKER_PORT" "the broker"
export COUNTERSIGN_SERVER="http://127.0.0.1:$BROKER_PORT" COUNTERSIGN_TOKEN="$AGENT_TOKEN"
export COUNTERSIGN_SPOOL="$DIR/spool"

UPSTREAM_PORT="$(free_port)"
PORT="$UPSTREAM_PORT" "$EVERYTHING" streamableHttp >"$DIR/everything-http.log" 2>&1 &
PIDS+=($!)
COUNTERSIGN_PORT="$(free_port)"
"$BIN" mcp --name everything --listen "127.0.0.1:$COUNTERSIGN_PORT" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT/mcp" >"$DIR/countersign-http.log" 2>&1 &
PIDS+=($!)
PROXY_PORT="$(free_port)"
"$VENV/bin/mcp-proxy" --port "$PROXY_PORT" --log-level WARNING -- "$EVERYTHING" stdio \
    >"$DIR/mcp-proxy-server.log" 2>&1 &
PIDS+=($!)
COMPARE="${BENCH_COMPARE:-}"
COMPARE_PORT=0
if [[ -n "$COMPARE" ]]; then
    COMPARE_PORT="$(free_port)"
    COUNTERSIGN_SPOOL="$DIR/spool-compare" "$COMPARE" mcp --name everything \
        --listen "127.0.0.1:$COMPARE_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT/mcp" \
        >"$DIR/countersign-compare-http.log" 2>&1 &
    PIDS+=($!)
fi
RELAY_PORT="$(free_port)"
"$RELAY" "127.0.0.1:$RELAY_PORT" "127.0.0.1:$UPSTREAM_PORT" >"$DIR/bare-relay.log" 2>&1 &
PIDS+=($!)
wait_for "$UPSTREAM_PORT" "server-everything (streamable HTTP)"
wait_for "$COUNTERSIGN_PORT" "countersign mcp --listen"
wait_for "$PROXY_PORT" "mcp-proxy"
wait_for "$RELAY_PORT" "the bare TCP relay"
[[ -z "$COMPARE" ]] || wait_for "$COMPARE_PORT" "the compared countersign mcp --listen"

TARGETS="$(python3 - "$BIN" "$EVERYTHING" "$VENV/bin/mcp-proxy" "$UPSTREAM_PORT" "$COUNTERSIGN_PORT" "$PROXY_PORT" "$RELAY" "$RELAY_PORT" "$COMPARE" "$COMPARE_PORT" "$DIR" <<'EOF'
import json, os, sys
bin, everything, proxy, upstream, countersign, mcp_proxy, relay, relay_port, compare, compare_port, tmp = sys.argv[1:]
env = {k: os.environ[k] for k in ("COUNTERSIGN_SERVER", "COUNTERSIGN_TOKEN", "COUNTERSIGN_SPOOL", "PATH", "HOME")}
up = f"http://127.0.0.1:{upstream}/mcp"
targets = [
    {"group": "stdio", "label": "direct", "direct": True, "mode": "stdio", "command": [everything, "stdio"]},
    {"group": "stdio", "label": "direct, again", "mode": "stdio", "command": [everything, "stdio"]},
    {"group": "stdio", "label": "countersign mcp", "mode": "stdio", "env": env,
     "command": [bin, "mcp", "--name", "everything", "--", everything, "stdio"]},
    {"group": "stdio", "label": "bare relay (copies bytes only)", "mode": "stdio",
     "command": [relay, "--", everything, "stdio"]},
    {"group": "stdio", "label": "mcp-proxy (HTTP in front)", "mode": "http", "url": f"http://127.0.0.1:{mcp_proxy}/mcp"},
    {"group": "http", "label": "direct", "direct": True, "mode": "http", "url": up},
    {"group": "http", "label": "direct, again", "mode": "http", "url": up},
    {"group": "http", "label": "countersign mcp --listen", "mode": "http", "url": f"http://127.0.0.1:{countersign}/mcp"},
    {"group": "http", "label": "bare TCP relay (copies bytes only)", "mode": "http", "url": f"http://127.0.0.1:{relay_port}/mcp"},
    {"group": "http", "label": "mcp-proxy (stdio in front)", "mode": "stdio", "env": {"PATH": os.environ["PATH"]},
     "command": [proxy, "--transport", "streamablehttp", "--log-level", "WARNING", up]},
]
if compare:
    targets.insert(3, {"group": "stdio", "label": "countersign mcp (compared build)", "mode": "stdio",
                       "env": {**env, "COUNTERSIGN_SPOOL": f"{tmp}/spool-compare-stdio"},
                       "command": [compare, "mcp", "--name", "everything", "--", everything, "stdio"]})
    targets.insert(-2, {"group": "http", "label": "countersign --listen (compared)", "mode": "http",
                        "url": f"http://127.0.0.1:{compare_port}/mcp"})
wanted = os.environ["BENCH_TRANSPORTS"].split(",")
print(json.dumps([t for t in targets if t["group"] in wanted]))
EOF
)"

echo "Countersign MCP proxy benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $(nproc) CPUs, $(uname -sr); client, proxies, servers and broker share it"
echo "client: MCP Python SDK $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("mcp"))'); server-everything $(node -p "require('$ROOT/tests/peers/mcp/node_modules/@modelcontextprotocol/server-everything/package.json').version"); mcp-proxy $MCP_PROXY_VERSION"
"$PYTHON" "$ROOT/bench/mcp_bench.py" "$CALLS" "$ROUNDS" "$TARGETS" 2>"$DIR/client.log" || fail "the client failed"
