#!/usr/bin/env bash
# MQTT over WebSockets with clients we did not write:
#
#   bash tests/interop/websockets.sh BROKER_BINARY
#
# 1. Eclipse paho-mqtt 2.x for Python with transport="websockets" (paho_ws_checks.py):
#    MQTT 3.1.1 and 5, QoS 0/1/2 both ways with a TCP client, large payloads, retained
#    messages, wills, and WebSockets over TLS (certificates from openssl).
# 2. Headless Chromium (Debian's `chromium`, /usr/bin/chromium) driven by playwright-core
#    from npm loads examples/dashboard/ from the broker's own http_dir; the page uses
#    mqtt.js from npm (its dist/mqtt.min.js is copied next to the page here, never
#    committed). mosquitto_pub publishes sensor values over TCP; the page must show them
#    and the broker's $SYS figures (dashboard_check.cjs). The screenshot is saved as
#    target/ci-artifacts/dashboard.png.
#
# Installs what is missing: chromium, mosquitto-clients, openssl (apt-get), nodejs and
# npm (apt-get, if `node`/`npm` are absent), paho-mqtt into target/interop-venv (pip),
# playwright-core and mqtt into target/interop-node (npm). An install that fails stops
# the run; no check is skipped. Every wait is bounded.
set -euo pipefail

BROKER=$(realpath "${1:?usage: websockets.sh BROKER_BINARY}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
VENV=${INTEROP_VENV:-$TARGET_DIR/interop-venv}
NODE_DIR=${INTEROP_NODE:-$TARGET_DIR/interop-node}
ARTIFACTS=$TARGET_DIR/ci-artifacts

die() { echo "websockets: error: $*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
    as_root "${apt[@]}" install "$@" || { as_root "${apt[@]}" update && as_root "${apt[@]}" install "$@"; }
}
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    echo "websockets: installing $2 (Debian)"
    apt_install "$2" || die "apt-get install $2 failed"
    command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}
need mosquitto_pub mosquitto-clients
need openssl openssl
need python3 python3
need node nodejs
need npm npm
[ -x /usr/bin/chromium ] || { echo "websockets: installing chromium (Debian)"; apt_install chromium || die "apt-get install chromium failed"; }
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium missing after apt-get install chromium"

if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import paho.mqtt, sys; sys.exit(not paho.mqtt.__version__.startswith("2."))' 2>/dev/null; }; then
    echo "websockets: installing paho-mqtt 2.x into $VENV"
    python3 -m venv "$VENV" || { rm -rf "$VENV"; apt_install python3-venv; python3 -m venv "$VENV"; }
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q 'paho-mqtt==2.*' || die "pip install paho-mqtt failed"
fi
if ! [ -f "$NODE_DIR/node_modules/playwright-core/package.json" ] || ! [ -f "$NODE_DIR/node_modules/mqtt/dist/mqtt.min.js" ]; then
    echo "websockets: installing playwright-core and mqtt (npm) into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    # playwright-core only: no browser download, Debian's chromium is used.
    (cd "$NODE_DIR" && [ -f package.json ] || echo '{"private": true}' >package.json)
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent 'playwright-core@1' 'mqtt@5' ||
        die "npm install playwright-core mqtt failed"
fi
[ -f "$NODE_DIR/node_modules/mqtt/dist/mqtt.min.js" ] || die "mqtt.min.js missing from the mqtt npm package"

echo "websockets: broker under test: $BROKER"
echo "websockets: paho-mqtt $("$VENV/bin/python" -c 'import paho.mqtt; print(paho.mqtt.__version__)'), $(/usr/bin/chromium --version 2>/dev/null | head -n1), node $(node --version), playwright-core $(node -p "require('$NODE_DIR/node_modules/playwright-core/package.json').version"), mqtt.js $(node -p "require('$NODE_DIR/node_modules/mqtt/package.json').version")"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-ws.XXXXXX")
BROKER_PID=
cleanup() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
chmod 755 "$WORK"
cd "$WORK"

# ---- certificates for wss ------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=ws interop CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem 2>/dev/null

# ---- the dashboard, with mqtt.js next to it ------------------------------------------
cp -r "$ROOT/examples/dashboard" www
cp "$NODE_DIR/node_modules/mqtt/dist/mqtt.min.js" www/

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TCP_PORT=$(free_port)
WS_PORT=$(free_port)
WSS_PORT=$(free_port)
cat >broker.conf <<EOF
allow_anonymous true
sys_interval 1
listener $TCP_PORT 127.0.0.1
listener $WS_PORT 127.0.0.1
protocol websockets
http_dir $WORK/www
listener $WSS_PORT 127.0.0.1
protocol websockets
certfile $WORK/server.pem
keyfile $WORK/server.key
EOF
"$BROKER" -c broker.conf >broker.log 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$WSS_PORT") 2>/dev/null && break
    kill -0 "$BROKER_PID" 2>/dev/null || { cat broker.log; die "broker exited at start"; }
    sleep 0.1
done
grep -q "Opening websockets listen socket on port $WS_PORT" broker.log ||
    { cat broker.log; die "no websockets listener in the broker's log"; }

FAILED=0
echo
echo "== paho-mqtt (Python), transport=\"websockets\" =="
timeout 300 "$VENV/bin/python" "$HERE/paho_ws_checks.py" --host 127.0.0.1 --tcp-port "$TCP_PORT" \
    --ws-port "$WS_PORT" --wss-port "$WSS_PORT" --cafile "$WORK/ca.pem" || FAILED=1

echo
echo "== headless Chromium: examples/dashboard from http_dir, mqtt.js over WebSockets =="
mkdir -p "$ARTIFACTS"
SUFFIX=$RANDOM
VALUES="[[\"sensors/greenhouse/temperature\",\"21.$SUFFIX\"],[\"sensors/greenhouse/humidity\",\"6$SUFFIX\"],[\"sensors/barn/co2\",\"800\"],[\"sensors/barn/co2\",\"81$SUFFIX\"],[\"sensors/field/soil moisture\",\"0.3$SUFFIX\"]]"
NODE_PATH="$NODE_DIR/node_modules" timeout 120 node "$HERE/dashboard_check.cjs" \
    "http://127.0.0.1:$WS_PORT/" "$TCP_PORT" "$ARTIFACTS/dashboard.png" "$VALUES" || FAILED=1
[ -s "$ARTIFACTS/dashboard.png" ] || { echo "FAIL dashboard screenshot missing"; FAILED=1; }

kill -0 "$BROKER_PID" 2>/dev/null || { cat broker.log; die "the broker died"; }
if [ "$FAILED" -ne 0 ]; then
    echo "---- broker log (last 40 lines) ----"
    tail -n 40 broker.log
    echo "websockets: FAILED"
    exit 1
fi
echo "websockets: all checks passed"
