#!/usr/bin/env bash
# #22 end to end: culex's health figures with real tools, on loopback only.
#
#   bash tests/interop/metrics.sh [BROKER_BINARY]     (default: target/release/culex)
#
# - GET /metrics of a `protocol http_api` listener passes `promtool check metrics`
#   (Debian's prometheus package);
# - a bridge whose cloud (Debian's mosquitto) is stopped: $SYS/broker/connection/cloud/
#   backlog/messages and backlog/oldest_age grow, last_error says why, connected is 0,
#   and /metrics says the same; after mosquitto is started again on the same port the
#   bridge reconnects and backlog and age fall back to 0;
# - a real Prometheus server (its own temporary configuration and data directory)
#   scrapes culex every second; its query API must return up == 1 for the job and a
#   culex_bridge_backlog_messages series for the bridge.
#
# prometheus, mosquitto, mosquitto-clients and curl are installed with apt-get when
# missing (the prometheus service the package may start is stopped). Every wait is
# bounded; each check prints PASS or FAIL; the script exits non-zero if any failed or a
# tool is missing. Nothing is skipped. About 40 s once the packages are installed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BROKER=${1:-$TARGET_DIR/release/culex}
WAIT=15

die() { echo "metrics interop: error: $*" >&2; exit 1; }

[ -x "$BROKER" ] || die "broker binary '$BROKER' not found or not executable (build it with: cargo build --release)"
BROKER=$(cd "$(dirname "$BROKER")" && pwd)/$(basename "$BROKER")

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

PACKAGES=(prometheus mosquitto mosquitto-clients curl)
if ! command -v promtool >/dev/null || ! command -v mosquitto_sub >/dev/null ||
    ! command -v curl >/dev/null || { ! command -v prometheus >/dev/null && [ ! -x /usr/bin/prometheus ]; } ||
    { ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; }; then
    echo "metrics interop: installing ${PACKAGES[*]} (Debian)"
    apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
    as_root "${apt[@]}" install "${PACKAGES[@]}" ||
        { as_root "${apt[@]}" update && as_root "${apt[@]}" install "${PACKAGES[@]}"; }
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl stop prometheus.service mosquitto.service 2>/dev/null || true
    fi
fi
PROMETHEUS=$(command -v prometheus || echo /usr/bin/prometheus)
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
command -v promtool >/dev/null || die "promtool missing after apt-get install prometheus"
[ -x "$PROMETHEUS" ] || die "prometheus missing after apt-get install prometheus"
[ -x "$MOSQUITTO" ] || die "mosquitto missing after apt-get install mosquitto"
echo "metrics interop: culex $BROKER; $("$PROMETHEUS" --version 2>&1 | sed -n 1p); cloud $("$MOSQUITTO" -h 2>&1 | sed -n 1p)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-metrics-interop.XXXXXX")
chmod 755 "$WORK" # mosquitto drops root privileges and must read its configuration
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

. "$HERE/lib.sh"
SPAWN_WAIT=$WAIT

CLOUD_PORT=$(free_port)
MQTT_PORT=$(free_port)
API_PORT=$(free_port)
PROM_PORT=$(free_port)

cat >"$WORK/cloud.conf" <<EOF
listener $CLOUD_PORT 127.0.0.1
allow_anonymous true
EOF
chmod 644 "$WORK/cloud.conf"
cat >"$WORK/gw.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
listener $API_PORT 127.0.0.1
protocol http_api
sys_interval 1
connection cloud
address 127.0.0.1:$CLOUD_PORT
remote_clientid gw-metrics
restart_timeout 1
topic data/# out 1
EOF

spawn cloud "$CLOUD_PORT" "$MOSQUITTO" -c "$WORK/cloud.conf"
CLOUD_PID=$LAST_PID
spawn culex "$MQTT_PORT" "$BROKER" -c "$WORK/gw.conf"

# sys NAME: the retained $SYS/broker/connection/cloud/NAME now ("" if none within 2 s).
sys() {
    mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "\$SYS/broker/connection/cloud/$1" -C 1 -W 2 2>/dev/null || true
}
# wait_sys NAME TEST: until TEST (a shell condition on $v) holds for NAME, within $WAIT s.
wait_sys() {
    local name=$1 test=$2 deadline=$((SECONDS + WAIT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        v=$(sys "$name")
        if eval "$test"; then return 0; fi
        sleep 0.5
    done
    return 1
}
metrics() { curl -sS --max-time 5 "http://127.0.0.1:$API_PORT/metrics"; }
# sample SERIES: the value of one series line of /metrics ("" if absent).
sample() { metrics | awk -v s="$1" '$1 == s { print $2 }'; }

# ---- the text format ------------------------------------------------------------------
if wait_sys connected '[ "$v" = 1 ]'; then pass bridge-connects-to-mosquitto; else fail bridge-connects-to-mosquitto "connected=$v"; fi
metrics >"$WORK/metrics.txt"
if promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1; then
    pass promtool-check-metrics
else
    fail promtool-check-metrics "$(cat "$WORK/promtool.out")"
fi
for series in culex_clients_connected 'culex_bridge_up{bridge="cloud"}' process_resident_memory_bytes; do
    grep -q "^$series " "$WORK/metrics.txt" && pass "metrics-has-$series" || fail "metrics-has-$series" "absent"
done
for path in /api/v1/version /api/v1/listeners /api/v1/systree; do
    code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT$path")
    [ "$code" = 200 ] && pass "http-api-$path" || fail "http-api-$path" "status $code"
done
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/api/v1/nothing")
[ "$code" = 404 ] && pass http-api-unknown-path-404 || fail http-api-unknown-path-404 "status $code"

# ---- a real Prometheus scrapes culex ---------------------------------------------------
mkdir -p "$WORK/prom-data"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: culex
    static_configs:
      - targets: ["127.0.0.1:$API_PORT"]
EOF
promtool check config "$WORK/prometheus.yml" >/dev/null || die "promtool rejects the scrape configuration"
spawn prometheus "$PROM_PORT" "$PROMETHEUS" --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$WORK/prom-data" --web.listen-address="127.0.0.1:$PROM_PORT"
# query EXPR: the first sample's value of an instant query ("" if none).
query() {
    curl -sS --max-time 5 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
wait_query() {
    local expr=$1 want=$2 deadline=$((SECONDS + WAIT)) got
    while [ "$SECONDS" -lt "$deadline" ]; do
        got=$(query "$expr")
        if [ -n "$got" ] && { [ -z "$want" ] || [ "$got" = "$want" ]; }; then return 0; fi
        sleep 1
    done
    echo "$expr = '$got'" >&2
    return 1
}
wait_query 'up{job="culex"}' 1 && pass prometheus-scrapes-culex-up || fail prometheus-scrapes-culex-up "up != 1"
wait_query 'culex_bridge_backlog_messages{job="culex",bridge="cloud"}' "" &&
    pass prometheus-has-bridge-backlog-series || fail prometheus-has-bridge-backlog-series "no series"

# ---- the cloud goes away: the backlog grows and ages -----------------------------------
stop_pid "$CLOUD_PID"
wait_sys connected '[ "$v" = 0 ]' && pass bridge-down-when-cloud-stops || fail bridge-down-when-cloud-stops "connected=$v"
for i in 1 2 3 4 5; do
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t data/reading -m "$i"
done
wait_sys backlog/messages '[ "$v" = 5 ]' && pass backlog-counts-waiting-messages || fail backlog-counts-waiting-messages "backlog/messages=$v"
wait_sys backlog/bytes '[ "$v" = 5 ]' && pass backlog-counts-their-bytes || fail backlog-counts-their-bytes "backlog/bytes=$v"
first=$(sys backlog/oldest_age)
sleep 3
if wait_sys backlog/oldest_age '[ -n "$v" ] && [ -n "$first" ] && [ "$v" -gt "$first" ]'; then
    pass oldest-age-grows
else
    fail oldest-age-grows "from '$first' to '$v'"
fi
error=$(sys last_error)
[ -n "$error" ] && pass "last-error-says-why ($error)" || fail last-error-says-why "empty"
[ "$(sample 'culex_bridge_up{bridge="cloud"}')" = 0 ] && pass metrics-bridge-down || fail metrics-bridge-down "culex_bridge_up != 0"
[ "$(sample 'culex_bridge_backlog_messages{bridge="cloud"}')" = 5 ] && pass metrics-backlog-5 || fail metrics-backlog-5 "$(sample 'culex_bridge_backlog_messages{bridge="cloud"}')"
age=$(sample 'culex_bridge_backlog_oldest_age_seconds{bridge="cloud"}')
[ -n "$age" ] && [ "$age" -ge 3 ] && pass metrics-oldest-age || fail metrics-oldest-age "'$age'"
wait_query 'culex_bridge_backlog_messages{job="culex",bridge="cloud"}' 5 &&
    pass prometheus-sees-the-backlog || fail prometheus-sees-the-backlog "not 5"

# ---- the cloud comes back: the backlog drains ------------------------------------------
spawn cloud-again "$CLOUD_PORT" "$MOSQUITTO" -c "$WORK/cloud.conf"
wait_sys connected '[ "$v" = 1 ]' && pass bridge-reconnects || fail bridge-reconnects "connected=$v"
wait_sys backlog/messages '[ "$v" = 0 ]' && pass backlog-drains || fail backlog-drains "backlog/messages=$v"
wait_sys backlog/oldest_age '[ "$v" = 0 ]' && pass oldest-age-back-to-0 || fail oldest-age-back-to-0 "$v"
wait_sys reconnects '[ "$v" = 1 ]' && pass reconnects-counted || fail reconnects-counted "reconnects=$v"
[ "$(sample 'culex_bridge_up{bridge="cloud"}')" = 1 ] && pass metrics-bridge-up-again || fail metrics-bridge-up-again "culex_bridge_up != 1"

summary "metrics interop"
