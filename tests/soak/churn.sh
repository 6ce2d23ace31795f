#!/usr/bin/env bash
# Connection churn for DURATION seconds (180 by default; 600 for the 10-minute soak):
# workers connect, subscribe, publish and then disconnect (half with DISCONNECT, half by
# closing the socket so their will fires), half of them with persistent sessions drawn
# from a bounded pool of client ids, so sessions are resumed and taken over. Afterwards
# the broker's RSS must be within 2 MiB of what it was after warm-up (no leak).
#
#   bash tests/soak/churn.sh [DURATION]      (BROKER=path to test another binary)
#
# Not part of `cargo test` or CI; docs/SECURITY.md has its figures.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DURATION=${1:-180}
ensure_broker
ensure_paho
start_broker "max_queued_messages 100
sys_interval 1"
"$VENV/bin/python" "$ROOT/tests/soak/soak.py" churn --port "$PORT" --pid "$BROKER_PID" \
    --duration "$DURATION"
