#!/usr/bin/env bash
# One QoS 1 subscriber stops reading while publishers send for DURATION seconds (60 by
# default); the broker's RSS must stay under its start plus the configured queue bounds
# plus a margin, a subscriber that reads must get every message with a p99 latency under
# 100 ms, no publisher may wait for a PUBACK, and the drops must be counted in $SYS.
#
#   bash tests/soak/slow_consumer.sh [DURATION [--no-stall]]   (BROKER=another binary)
#
# --no-stall is the baseline: the same load without the stalled subscriber.
#
# Bound: max_queued_bytes 1 MiB + the 1 MiB output limit + 20 in flight for the stalled
# client, and an 8 MiB margin for the allocator and the other clients: 10 MiB over start.
# Not part of `cargo test` or CI (it runs a minute); docs/SECURITY.md has its figures.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DURATION=${1:-60}
EXTRA=("${@:2}")
ensure_broker
ensure_paho
start_broker "max_inflight_messages 20
max_queued_messages 1000
max_queued_bytes 1048576
sys_interval 1"
"$VENV/bin/python" "$ROOT/tests/soak/soak.py" slow_consumer --port "$PORT" --pid "$BROKER_PID" \
    --duration "$DURATION" --bound-kib $((10 * 1024)) "${EXTRA[@]}"
