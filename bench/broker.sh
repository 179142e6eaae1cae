#!/usr/bin/env bash
# Broker benchmark: durable allowed decisions per second, and approval wake-up latency.
#
# Run from anywhere in a clone (needs cargo, curl and sha256sum; nothing else):
#
#     bench/broker.sh                      # the full run: ~30 s of load after the build
#     bench/broker.sh --secs 2 --wakeups 200   # flags go to the load generator
#
# What it does: builds `countersign` and the load generator
# (crates/client/examples/broker_load.rs) in release, writes a configuration, a policy and four
# principals with fresh random tokens into a temporary directory, starts
# `countersign serve` on a free port, and runs the generator against it, which prints one table:
#
# - allowed decisions/s through `POST /v1/actions` at 1, 16 and 64 concurrent clients, with
#   p50/p99/max latency per call as the client sees it. Each 200 means the decision's audit event
#   is durable: the broker's batcher (crates/broker/src/audit_batch.rs) appends everything queued
#   in one SQLite transaction (WAL, synchronous=FULL), so one fsync serves a batch;
# - wake-up latency: for 1,000 gated requests, from the moment the approving review's response
#   arrives to the moment the parked waiter's (`GET /v1/requests/{id}/wait`) response arrives,
#   p50/p99/max, once with the requester waiting (its answer carries a new grant) and once with a
#   human watcher.
#
# The database lives in the temporary directory: put it on the disk you want to measure with
# TMPDIR=/path (a tmpfs makes fsync free and the figures meaningless; the script says which
# filesystem it used). BENCH_KEEP=1 keeps the directory (database, server log) for inspection.
# The load generator shares the machine with the broker: on a small machine both compete for CPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

for tool in cargo curl sha256sum; do
    command -v "$tool" >/dev/null || { echo "bench/broker.sh: $tool is needed" >&2; exit 2; }
done

echo "bench/broker.sh: building countersign and the load generator (release)…" >&2
cargo build --release --quiet -p countersign --bin countersign
cargo build --release --quiet -p countersign-client --example broker_load
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
BIN="$TARGET_DIR/release/countersign"
LOAD="$TARGET_DIR/release/examples/broker_load"

DIR="$(mktemp -d "${TMPDIR:-/tmp}/countersign-bench.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${BENCH_KEEP:-0}" = 1 ]]; then
        echo "bench/broker.sh: kept $DIR" >&2
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
sha256() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

AGENT_TOKEN="$(token)"
REVIEWER_TOKEN="$(token)"
WATCHER_TOKEN="$(token)"
OWNER_TOKEN="$(token)"

cat >"$DIR/policy.toml" <<'EOF'
version = 1
default = "deny"

[[rules]]
id = "bench-echo"
decision = "allow"
reason = "Printing changes nothing"
match.kind = "shell.exec"
match.command = "echo *"

[[rules]]
id = "bench-dump"
decision = "require_approval"
reason = "Database dumps need one DBA"
match.kind = "shell.exec"
match.command = "pg_dump *"
approvers = { groups = ["dba"], count = 1 }
timeout = "30m"
EOF

# Port 0: the kernel picks a free port and the broker says which one on stderr.
cat >"$DIR/countersign.toml" <<EOF
listen = "127.0.0.1:0"
data_dir = "data"
policy = "policy.toml"

[[principals]]
id = "bench-bot"
kind = "agent"
acts_for = ["owen"]
token_sha256 = "$(sha256 "$AGENT_TOKEN")"

[[principals]]
id = "owen"
kind = "human"
token_sha256 = "$(sha256 "$OWNER_TOKEN")"

[[principals]]
id = "dana"
kind = "human"
groups = ["dba"]
token_sha256 = "$(sha256 "$REVIEWER_TOKEN")"

[[principals]]
id = "sam"
kind = "human"
groups = ["dba", "sre"]
token_sha256 = "$(sha256 "$WATCHER_TOKEN")"
EOF

"$BIN" serve --config "$DIR/countersign.toml" >"$DIR/server.log" 2>&1 &
SERVER_PID=$!

fail() {
    echo "bench/broker.sh: $1; the server said:" >&2
    sed 's/^/    /' "$DIR/server.log" >&2
    exit 1
}

deadline=$((SECONDS + 30))
URL=""
until [[ -n "$URL" ]] && curl -fsS --max-time 2 "$URL/healthz" >/dev/null 2>&1; do
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the broker exited"
    ((SECONDS < deadline)) || fail "the broker was not healthy within 30 s"
    if [[ -z "$URL" ]]; then
        URL="$(grep -o 'serving on http://[0-9.]*:[0-9]*' "$DIR/server.log" | head -n1 | cut -d' ' -f3 || true)"
    fi
    sleep 0.05
done

echo "bench/broker.sh: broker at $URL (pid $SERVER_PID), data in $DIR" >&2
echo "Countersign broker benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $(nproc) CPUs, $(uname -sr); database on $(df -PT "$DIR" | awk 'NR==2 {print $2 " (" $1 ")"}')"
echo "load generator and broker share the machine"

BENCH_SERVER="$URL" \
BENCH_AGENT_TOKEN="$AGENT_TOKEN" \
BENCH_REVIEWER_TOKEN="$REVIEWER_TOKEN" \
BENCH_WATCHER_TOKEN="$WATCHER_TOKEN" \
    "$LOAD" "$@" || fail "the load generator failed"

kill -0 "$SERVER_PID" 2>/dev/null || fail "the broker died during the run"
