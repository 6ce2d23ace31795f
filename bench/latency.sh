#!/usr/bin/env bash
# p50/p99/p99.9 publish-to-delivery latency at 5,000 msg/s, QoS 0, 64-byte payloads:
# culex and Mosquitto alternating, ROUNDS rounds of DURATION seconds each, broker pinned
# to CPU 0 and culex_bench to CPU 1, a fresh broker per run. Latency tails are the
# machine's as much as the broker's: run it on a quiet machine and read all rounds.
#
#   bench/latency.sh                 # 3 rounds of 30 s
#   ROUNDS=5 DURATION=60 bench/latency.sh
#   CULEX=target/x86_64-unknown-linux-musl/release/culex bench/latency.sh   # another build
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
echo "| round | broker | p50 us | p99 us | p99.9 us |"
echo "|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    for name in culex mosquitto; do
        case $name in
            culex) taskset -c 0 "$CULEX" -c "$conf" >/dev/null 2>&1 & ;;
            mosquitto) taskset -c 0 "$MOSQUITTO" -c "$conf" >/dev/null 2>&1 & ;;
        esac
        pid=$!
        sleep 1
        line=$(taskset -c 1 target/release/culex_bench -p "$PORT" --json -d "$DURATION" \
            -q 0 -r 5000 latency)
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        field() { grep -o "\"$1\":[0-9.]*" <<<"$line" | cut -d: -f2; }
        echo "| $round | $name | $(field p50_us) | $(field p99_us) | $(field p999_us) |"
        sleep 0.5
    done
done
