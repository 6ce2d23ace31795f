#!/usr/bin/env bash
# Interop checks of culex's bridge with Debian's mosquitto as the cloud broker:
#
#   bash tests/interop/bridge.sh [BROKER_BINARY]     (default: target/release/culex)
#
# - plain TCP: a culex gateway bridges to mosquitto (MQTT 3.1.1, try_private), topics
#   mapped with prefixes, messages both ways, no echo on a `both` topic;
# - TLS with a client certificate: mosquitto requires one (require_certificate true);
#   the bridge verifies mosquitto's certificate (bridge_cafile, name "localhost") and
#   presents its own (bridge_certfile/bridge_keyfile); messages both ways;
# - MQTT 5 bridge (bridge_protocol_version mqttv50) to mosquitto.
#
# mosquitto, mosquitto-clients and openssl are installed with apt-get when missing.
# Every wait is bounded; each check prints PASS or FAIL; the script exits non-zero if
# any failed. Nothing is skipped.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BROKER=${1:-$TARGET_DIR/release/culex}
WAIT=10

die() { echo "bridge interop: error: $*" >&2; exit 1; }

[ -x "$BROKER" ] || die "broker binary '$BROKER' not found or not executable (build it with: cargo build --release)"
BROKER=$(cd "$(dirname "$BROKER")" && pwd)/$(basename "$BROKER")

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v mosquitto_sub >/dev/null || ! command -v openssl >/dev/null ||
    { ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; }; then
    echo "bridge interop: installing mosquitto, mosquitto-clients and openssl (Debian)"
    apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
    as_root "${apt[@]}" install mosquitto mosquitto-clients openssl ||
        { as_root "${apt[@]}" update && as_root "${apt[@]}" install mosquitto mosquitto-clients openssl; }
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl stop mosquitto.service 2>/dev/null || true
    fi
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || die "mosquitto still missing after apt-get install"
echo "bridge interop: culex $BROKER; cloud $($MOSQUITTO -h 2>&1 | sed -n 1p)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-bridge-interop.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# mosquitto drops root privileges to the user "mosquitto": it must read its files.
chmod 755 "$WORK"

. "$HERE/lib.sh"

# A CA, a server certificate for "localhost" and a client certificate "gateway-7".
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=culex bridge interop CA" \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$WORK/server.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/server.cnf" -out "$WORK/server.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=gateway-7" \
    -keyout "$WORK/client.key" -out "$WORK/client.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$WORK/client.cnf"
openssl x509 -req -in "$WORK/client.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/client.cnf" -out "$WORK/client.crt" 2>/dev/null
chmod 644 "$WORK"/*.crt "$WORK"/*.key

# start_broker NAME BINARY PORT: config in $WORK/NAME.conf; waits until PORT listens.
start_broker() {
    chmod 644 "$WORK/$1.conf"
    spawn "$1" "$3" "$2" -c "$WORK/$1.conf"
}

# wait_up PORT ID: the gateway's retained state notification says 1 within $WAIT s.
wait_up() {
    local port=$1 id=$2 state
    for _ in $(seq 1 "$WAIT"); do
        state=$(mosquitto_sub -p "$port" -h 127.0.0.1 -t "\$SYS/broker/connection/$id/state" \
            -C 1 -W 1 2>/dev/null || true)
        [ "$state" = 1 ] && return 0
        sleep 0.5
    done
    return 1
}

# through NAME SUB_ARGS PUB_ARGS EXPECTED: a subscriber with SUB_ARGS (-v) must print
# EXPECTED after a publisher with PUB_ARGS ran.
through() {
    local name=$1 sub=$2 pub=$3 expected=$4 out="$WORK/$1.out"
    # shellcheck disable=SC2086
    mosquitto_sub $sub -v -C 1 -W "$WAIT" >"$out" 2>&1 &
    local sub_pid=$!
    sleep 0.5
    # shellcheck disable=SC2086
    mosquitto_pub $pub
    wait "$sub_pid" || true
    if [ "$(cat "$out")" = "$expected" ]; then
        pass "$name"
    else
        fail "$name" "expected '$expected', got '$(cat "$out")'"
    fi
}

# ---- plain TCP, MQTT 3.1.1 --------------------------------------------------------------

CLOUD=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$CLOUD" >"$WORK/cloud.conf"
start_broker cloud "$MOSQUITTO" "$CLOUD"

GW=$(free_port)
cat >"$WORK/gw.conf" <<EOF
listener $GW 127.0.0.1
allow_anonymous true
connection cloud
address 127.0.0.1:$CLOUD
remote_clientid gw-plain
restart_timeout 1
topic up/# out 1 gw/ site/
topic down/# in 1 gw/ site/
topic sync/# both 1
EOF
start_broker gw "$BROKER" "$GW"

if wait_up "$GW" gw-plain; then
    pass "plain: the bridge to mosquitto comes up"
else
    fail "plain: the bridge to mosquitto comes up" "no state 1 within $WAIT s"
fi
through "plain: gateway to cloud, prefixes swapped" \
    "-h 127.0.0.1 -p $CLOUD -t site/up/#" "-h 127.0.0.1 -p $GW -q 1 -t gw/up/t1 -m 21.5" \
    "site/up/t1 21.5"
through "plain: cloud to gateway, prefixes swapped" \
    "-h 127.0.0.1 -p $GW -t gw/down/#" "-h 127.0.0.1 -p $CLOUD -q 1 -t site/down/reboot -m now" \
    "gw/down/reboot now"
# both + try_private: mosquitto does not send the bridge its own message back.
mosquitto_sub -h 127.0.0.1 -p "$GW" -t 'sync/#' -v -C 2 -W 3 >"$WORK/echo.out" 2>/dev/null &
ECHO_PID=$!
sleep 0.5
mosquitto_pub -h 127.0.0.1 -p "$GW" -q 1 -t sync/a -m once
wait "$ECHO_PID" || true
if [ "$(cat "$WORK/echo.out")" = "sync/a once" ]; then
    pass "plain: a both topic does not echo (try_private)"
else
    fail "plain: a both topic does not echo (try_private)" "got '$(tr '\n' '|' <"$WORK/echo.out")'"
fi

# ---- TLS with a client certificate ---------------------------------------------------------

CLOUD_TLS=$(free_port)
cat >"$WORK/cloudtls.conf" <<EOF
listener $CLOUD_TLS 127.0.0.1
allow_anonymous true
cafile $WORK/ca.crt
certfile $WORK/server.crt
keyfile $WORK/server.key
require_certificate true
EOF
start_broker cloudtls "$MOSQUITTO" "$CLOUD_TLS"

GW_TLS=$(free_port)
cat >"$WORK/gwtls.conf" <<EOF
listener $GW_TLS 127.0.0.1
allow_anonymous true
connection cloud
address localhost:$CLOUD_TLS
remote_clientid gw-tls
restart_timeout 1
bridge_cafile $WORK/ca.crt
bridge_certfile $WORK/client.crt
bridge_keyfile $WORK/client.key
topic tele/# out 1
topic cmd/# in 1
EOF
start_broker gwtls "$BROKER" "$GW_TLS"

TLS_ARGS="-h localhost -p $CLOUD_TLS --cafile $WORK/ca.crt --cert $WORK/client.crt --key $WORK/client.key"
if wait_up "$GW_TLS" gw-tls; then
    pass "mTLS: the bridge to mosquitto comes up"
else
    fail "mTLS: the bridge to mosquitto comes up" "no state 1 within $WAIT s"
fi
through "mTLS: gateway to cloud" \
    "$TLS_ARGS -t tele/#" "-h 127.0.0.1 -p $GW_TLS -q 1 -t tele/t -m sealed" \
    "tele/t sealed"
through "mTLS: cloud to gateway" \
    "-h 127.0.0.1 -p $GW_TLS -t cmd/#" "$TLS_ARGS -q 1 -t cmd/go -m opened" \
    "cmd/go opened"

# ---- MQTT 5 ----------------------------------------------------------------------------------

GW5=$(free_port)
cat >"$WORK/gw5.conf" <<EOF
listener $GW5 127.0.0.1
allow_anonymous true
connection cloud5
address 127.0.0.1:$CLOUD
remote_clientid gw-v5
restart_timeout 1
bridge_protocol_version mqttv50
topic v5up/# out 2
topic v5down/# in 2
EOF
start_broker gw5 "$BROKER" "$GW5"
if wait_up "$GW5" gw-v5; then
    pass "v5: the MQTT 5 bridge to mosquitto comes up"
else
    fail "v5: the MQTT 5 bridge to mosquitto comes up" "no state 1 within $WAIT s"
fi
through "v5: gateway to cloud, QoS 2" \
    "-h 127.0.0.1 -p $CLOUD -t v5up/#" "-h 127.0.0.1 -p $GW5 -q 2 -t v5up/a -m five" \
    "v5up/a five"
through "v5: cloud to gateway, QoS 2" \
    "-h 127.0.0.1 -p $GW5 -t v5down/#" "-h 127.0.0.1 -p $CLOUD -q 2 -t v5down/b -m back" \
    "v5down/b back"

echo "bridge interop: $PASSED passed, $FAILED failed"
if [ "$FAILED" -ne 0 ]; then
    for f in gw gwtls gw5 cloud cloudtls; do
        echo "---- $f.log ----"
        tail -n 30 "$WORK/$f.log" 2>/dev/null || true
    done
    exit 1
fi
