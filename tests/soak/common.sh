# Shared by the soak scripts: the broker binary, a free port, paho-mqtt in a venv, RSS.
# Sourced, not run. Every wait is bounded.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BROKER=${BROKER:-$TARGET_DIR/release/culex}
VENV=${SOAK_VENV:-$TARGET_DIR/interop-venv}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-soak.XXXXXX")
BROKER_PID=

die() { echo "soak: $*" >&2; exit 1; }

cleanup() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ensure_broker() {
    if [ ! -x "$BROKER" ]; then
        (cd "$ROOT" && cargo build --release --bin culex) || die "cannot build culex"
    fi
}

ensure_paho() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import paho.mqtt' 2>/dev/null; then
        return
    fi
    python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q 'paho-mqtt==2.*' ||
        die "pip install paho-mqtt failed"
}

# A port from our pid, below Linux's ephemeral range (32768 and up, where a client's
# outgoing connection may hold the port) and above the block tests/common.rs uses
# (20000-32287).
pick_port() {
    echo $((32300 + $$ % 460))
}

# start_broker CONF_TEXT: writes the configuration, starts the broker, waits until its
# log says it listens (5 s at most).
start_broker() {
    PORT=$(pick_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n%s\n' "$PORT" "$1" >"$WORK/broker.conf"
    "$BROKER" -c "$WORK/broker.conf" >"$WORK/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 1 100); do
        grep -qs "listen socket on port $PORT" "$WORK/broker.log" && return
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/broker.log" >&2
    die "the broker did not start on port $PORT"
}
