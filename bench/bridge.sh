#!/usr/bin/env bash
# The bridge's outbox, culex against Mosquitto's own bridge in the same setup:
#
#   bench/bridge.sh [CULEX_BINARY]      (default: target/release/culex)
#
# For each gateway broker (culex, then mosquitto): the cloud (a mosquitto) is down; N
# QoS 1 messages (PAYLOAD bytes each) are published to the gateway and wait in
# its bridge outbox; the gateway's RSS is read from /proc before and after; then the
# cloud starts and a subscriber there counts the messages; the time until the last
# arrives gives the forwarding rate. Prints one line per broker.
# Environment: N (20000), PAYLOAD (64). Needs mosquitto and mosquitto-clients, and
# python3 for the publisher (mosquitto_pub -l stopped after about 34,500 messages).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CULEX=${1:-$root/target/release/culex}
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
N=${N:-20000}
PAYLOAD=${PAYLOAD:-64}
WORK=$(mktemp -d /tmp/culex-bench-bridge.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
    echo "port $1 did not open" >&2
    exit 1
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

python3 -c "import sys; [print('%06d' % i + 'x' * ($PAYLOAD - 6)) for i in range($N)]" >"$WORK/lines"

run() {
    local name=$1 binary=$2
    local cloud gw
    cloud=$(free_port)
    gw=$(free_port)
    cat >"$WORK/$name-gw.conf" <<EOF
listener $gw 127.0.0.1
allow_anonymous true
max_queued_messages $((N * 2))
max_inflight_messages 20
set_tcp_nodelay true
sys_interval 1
connection cloud
address 127.0.0.1:$cloud
remote_clientid bench-$name
restart_timeout 1
cleansession false
topic data/# out 1
EOF
    chmod 644 "$WORK/$name-gw.conf"
    "$binary" -c "$WORK/$name-gw.conf" >"$WORK/$name-gw.log" 2>&1 &
    local gw_pid=$!
    PIDS+=("$gw_pid")
    wait_port "$gw"
    sleep 1
    local before
    before=$(rss_kb "$gw_pid")
    # QoS 1, 1,000 in flight, every PUBACK awaited (bench/persistence.py's client).
    python3 - "$gw" "$WORK/lines" "$root/bench" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from persistence import connect, publish_batch
s = connect(int(sys.argv[1]), "bench-publisher")
lines = [l.rstrip("\n").encode() for l in open(sys.argv[2])]
for i in range(0, len(lines), 1000):
    publish_batch(s, [("data/x", p) for p in lines[i:i + 1000]], retain=False)
s.close()
PY
    sleep 2
    local after
    after=$(rss_kb "$gw_pid")
    # What waits in the outbox, as the gateway says in $SYS (Mosquitto: its client count
    # of stored messages).
    local queued
    queued=$(mosquitto_sub -h 127.0.0.1 -p "$gw" -W 3 -C 1 -t "\$SYS/broker/connection/cloud/messages/queued" -t "\$SYS/broker/store/messages/count" 2>/dev/null || true)
    echo "$name: outbox reports $queued" >&2

    # set_tcp_nodelay: without it Mosquitto's small writes to the subscriber wait for
    # delayed ACKs and cap both runs near 115 msg/s.
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages %s\n' \
        "$cloud" $((N * 2)) >"$WORK/$name-cloud.conf"
    chmod 644 "$WORK/$name-cloud.conf"
    "$MOSQUITTO" -c "$WORK/$name-cloud.conf" >"$WORK/$name-cloud.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$cloud"
    local start end
    start=$(date +%s.%N)
    timeout 120 mosquitto_sub -h 127.0.0.1 -p "$cloud" -q 1 -t 'data/#' -C "$N" >"$WORK/$name-got" || true
    end=$(date +%s.%N)
    local got
    got=$(wc -l <"$WORK/$name-got")
    # Order: the payloads' sequence numbers must rise (duplicates allowed).
    local in_order
    in_order=$(cut -c1-6 "$WORK/$name-got" | awk 'BEGIN{ok="yes"; last=-1} {n=$1+0; if (n < last) ok="no"; last=n} END{print ok}')
    awk -v name="$name" -v n="$N" -v got="$got" -v b="$before" -v a="$after" -v s="$start" -v e="$end" -v o="$in_order" \
        'BEGIN { printf "%-9s outbox %d msgs: RSS %.1f -> %.1f MB (+%.1f MB, %.0f B/msg); delivered %d in %.1f s (includes the reconnect delay) = %.0f msg/s; in order: %s\n",
                 name, n, b/1024, a/1024, (a-b)/1024, (a-b)*1024/n, got, e-s, got/(e-s), o }'
}

run culex "$CULEX"
run mosquitto "$MOSQUITTO"
