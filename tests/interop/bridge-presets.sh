#!/usr/bin/env bash
# End-to-end check of culex's cloud presets (issue #21) against stand-in clouds
# (tests/interop/bridge_presets.py, TLS servers on loopback):
#
#   bash tests/interop/bridge-presets.sh [BROKER_BINARY]   (default: target/release/culex)
#
# - bridge_preset aws-iot with `address localhost:443`: the TLS handshake carries ALPN
#   x-amzn-mqtt-ca (the server offers only that protocol and records the one selected),
#   and the CONNECT is MQTT 3.1.1 without Mosquitto's bridge bit. Port 443 needs root
#   (CI runs as root); the script fails if it cannot bind it.
# - bridge_preset azure-iot-hub with bridge_azure_sas_key and bridge_azure_sas_ttl 4:
#   the username is HUB/DEVICE/?api-version=2021-04-12, every CONNECT's password is a
#   valid unexpired SAS token (checked as Azure documents the computation; an invalid
#   one would be refused), and the bridge connects again with a fresh token before each
#   expires: at least 3 connections in 11 s, each with a later expiry.
#
# Needs python3 and openssl (installed with apt-get when missing). Every wait is
# bounded; each check prints PASS or FAIL; exits non-zero if any failed. About 15 s.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BROKER=${1:-$TARGET_DIR/release/culex}

die() { echo "bridge presets: error: $*" >&2; exit 1; }

[ -x "$BROKER" ] || die "broker binary '$BROKER' not found or not executable (build it with: cargo build --release)"
BROKER=$(cd "$(dirname "$BROKER")" && pwd)/$(basename "$BROKER")
if ! command -v openssl >/dev/null || ! command -v python3 >/dev/null; then
    apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
    if [ "$(id -u)" -eq 0 ]; then as=(); else as=(sudo); fi
    "${as[@]}" "${apt[@]}" install openssl python3 ||
        { "${as[@]}" "${apt[@]}" update && "${as[@]}" "${apt[@]}" install openssl python3; }
fi
command -v openssl >/dev/null || die "openssl missing after apt-get install"
command -v python3 >/dev/null || die "python3 missing after apt-get install"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-bridge-presets.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "bridge presets: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

. "$HERE/lib.sh"

# A CA and a server certificate for "localhost".
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=culex presets CA" \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$WORK/server.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/server.cnf" -out "$WORK/server.crt" 2>/dev/null

# start_gw NAME: culex with $WORK/NAME.conf.
start_gw() {
    local port
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" | cat - "$WORK/$1.bridge" >"$WORK/$1.conf"
    spawn "$1" "$port" "$BROKER" -c "$WORK/$1.conf"
}

# ---- AWS IoT Core: ALPN on 443 ------------------------------------------------------------

python3 "$HERE/bridge_presets.py" aws 443 "$WORK/server.crt" "$WORK/server.key" "$WORK/aws.out" \
    2>"$WORK/aws.err" &
PIDS+=($!)
for _ in $(seq 1 50); do port_open 443 && break; sleep 0.1; done
port_open 443 || die "the AWS stand-in cannot listen on 127.0.0.1:443 (root needed): $(cat "$WORK/aws.err")"
cat >"$WORK/aws.bridge" <<EOF
connection aws
address localhost:443
remote_clientid gateway-7
bridge_preset aws-iot
bridge_cafile $WORK/ca.crt
restart_timeout 1
topic telemetry/# out 1 "" gateways/gateway-7/
EOF
start_gw aws
for _ in $(seq 1 100); do [ -s "$WORK/aws.out" ] && break; sleep 0.1; done
if python3 - "$WORK/aws.out" <<'PY'; then
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = rows and rows[0]["alpn"] == "x-amzn-mqtt-ca" and rows[0]["level"] == 4 and rows[0]["client_id"] == "gateway-7"
print(f"  first connection: {rows[0] if rows else None}")
sys.exit(0 if ok else 1)
PY
    pass "aws-iot: ALPN x-amzn-mqtt-ca offered on 443, MQTT 3.1.1 without the bridge bit"
else
    fail "aws-iot" "see $WORK/aws.out and $WORK/aws.log"
fi

# ---- Azure IoT Hub: SAS tokens, renewed -----------------------------------------------------

AZ_PORT=$(free_port)
SAS_KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
python3 "$HERE/bridge_presets.py" azure "$AZ_PORT" "$WORK/server.crt" "$WORK/server.key" \
    "$WORK/azure.out" "$SAS_KEY" localhost gw7 2>"$WORK/azure.err" &
PIDS+=($!)
wait_port "$AZ_PORT"
cat >"$WORK/azure.bridge" <<EOF
connection azure
address localhost:$AZ_PORT
remote_clientid gw7
bridge_preset azure-iot-hub
bridge_cafile $WORK/ca.crt
bridge_azure_sas_key $SAS_KEY
bridge_azure_sas_ttl 4
restart_timeout 1
topic telemetry/# out 1 "" devices/gw7/messages/events/
EOF
start_gw azure
sleep 11
if python3 - "$WORK/azure.out" <<'PY'; then
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
problems = []
if len(rows) < 3:
    problems.append(f"{len(rows)} connections in 11 s, expected 3 or more (a renewal every 3.2 s)")
for r in rows:
    if r["username"] != "localhost/gw7/?api-version=2021-04-12":
        problems.append(f"username {r['username']!r}")
    if not r["sas_ok"]:
        problems.append(f"token refused: {r['sas']}")
expiries = [int(r["sas"].split()[1]) for r in rows if r["sas_ok"]]
if expiries != sorted(expiries) or len(set(expiries)) != len(expiries):
    problems.append(f"expiries not fresh: {expiries}")
print(f"  {len(rows)} connections, expiries {expiries}")
if problems:
    print("  " + "; ".join(problems))
    sys.exit(1)
PY
    pass "azure-iot-hub: username, valid SAS tokens, renewed before expiry"
else
    fail "azure-iot-hub" "see $WORK/azure.out and $WORK/azure.log"
fi

summary "bridge presets"
