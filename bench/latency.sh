#!/usr/bin/env bash
# p50/p99/p99.9 publish-to-delivery latency at 5,000 msg/s, QoS 0, 64-byte payloads:
# culex and Mosquitto alternating, ROUNDS rounds of DURATION seconds each, broker pinned
# to CPU 0 and culex_bench to CPU 1, a fresh broker per run. Latency tails are the
# machine's as much as the broker's: run it on a quiet machine and read all rounds.
#
#   bench/latency.sh                 # 3 rounds of 30 s
#   ROUNDS=5 DURATION=60 bench/latency.sh
#   CULEX=target/x86_64-unknown-linux-musl/release/culex bench/latency.sh   # another build
#   PAIRED=1 bench/latency.sh        # both brokers at once, see below
#
# PAIRED=1 runs culex and Mosquitto at the same time instead of one after the other: both
# pinned to CPU 0, on two ports, each loaded by its own culex_bench on CPU 1. On a
# virtual machine the tails come mostly from the host taking the CPU away for a
# millisecond or more; run side by side, both brokers sit through the same stalls, so
# their difference is the brokers'. The cost: a message to one broker may wait while
# the other finishes one (a few microseconds at 5,000 msg/s each), for both alike.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-30}
PORT=${PORT:-18898}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
if [ ! -x "$MOSQUITTO" ]; then
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd=sudo
    $sudo_cmd apt-get install -y mosquitto >/dev/null
fi
cargo build --release --bin culex --bin culex_bench >/dev/null
CULEX=${CULEX:-target/release/culex}
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
printf "listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 64\n" \
    "$PORT" >"$conf"
chmod 644 "$conf"
start() { # name conf
    case $1 in
        culex) taskset -c 0 "$CULEX" -c "$2" >/dev/null 2>&1 & ;;
        mosquitto) taskset -c 0 "$MOSQUITTO" -c "$2" >/dev/null 2>&1 & ;;
    esac
}
field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }
row() { # round name json
    echo "| $1 | $2 | $(field p50_us "$3") | $(field p99_us "$3") | $(field p999_us "$3") |"
}
echo "| round | broker | p50 us | p99 us | p99.9 us |"
echo "|---|---|---|---|---|"
if [ "${PAIRED:-0}" = 1 ]; then
    conf2=$(mktemp)
    out=$(mktemp -d)
    trap 'rm -rf "$conf" "$conf2" "$out"' EXIT
    sed "s/^listener $PORT /listener $((PORT + 1)) /" "$conf" >"$conf2"
    chmod 644 "$conf2"
    for round in $(seq "$ROUNDS"); do
        start culex "$conf"
        culex_pid=$!
        start mosquitto "$conf2"
        mosquitto_pid=$!
        sleep 1
        taskset -c 1 target/release/culex_bench -p "$PORT" --json -d "$DURATION" \
            -q 0 -r 5000 latency >"$out/culex" &
        bench_pid=$!
        taskset -c 1 target/release/culex_bench -p "$((PORT + 1))" --json -d "$DURATION" \
            -q 0 -r 5000 latency >"$out/mosquitto"
        wait "$bench_pid"
        kill "$culex_pid" "$mosquitto_pid"
        wait 2>/dev/null || true
        row "$round" culex "$(cat "$out/culex")"
        row "$round" mosquitto "$(cat "$out/mosquitto")"
        sleep 0.5
    done
    exit 0
fi
for round in $(seq "$ROUNDS"); do
    for name in culex mosquitto; do
        start "$name" "$conf"
        pid=$!
        sleep 1
        line=$(taskset -c 1 target/release/culex_bench -p "$PORT" --json -d "$DURATION" \
            -q 0 -r 5000 latency)
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        row "$round" "$name" "$line"
        sleep 0.5
    done
done
