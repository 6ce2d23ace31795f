#!/usr/bin/env bash
# What MQTT over WebSockets costs in culex against plain TCP: one culex with a TCP and a
# `protocol websockets` listener, the same culex_bench scenarios over each (`--ws`), the
# transports alternating within each round, medians over the rounds.
#
#   bash bench/ws.sh                        # ROUNDS=3 DURATION=4
#   ROUNDS=1 DURATION=2 bash bench/ws.sh    # a quick look
#
# The broker runs on CPU 0 (taskset), the tool on CPU 1, as in bench/compare.sh. Raw
# JSON lines and a TSV of every figure are kept in $OUT (printed at the end).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
WINDOW=${WINDOW:-64}
CLIENTS=${CLIENTS:-5000}
BROKER_CPU=${BROKER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/culex-ws-bench.XXXXXX")}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

(cd "$root" && cargo build --release --bin culex --bin culex_bench)
CULEX="$root/target/release/culex"
BENCH="$root/target/release/culex_bench"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CLIENTS + 100)) ]; then
    CLIENTS=$(($(ulimit -n) - 100))
fi
CLK_TCK=$(getconf CLK_TCK)
results="$OUT/results.tsv"
: >"$results"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TCP_PORT=$(free_port)
WS_PORT=$(free_port)
cat >"$OUT/culex.conf" <<EOF
listener $TCP_PORT 127.0.0.1
listener $WS_PORT 127.0.0.1
protocol websockets
allow_anonymous true
max_queued_messages 1000000
max_inflight_messages $WINDOW
EOF

broker_pid=""
cleanup() { [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$broker_pid/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$broker_pid/stat"; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }
field() { sed -n "s/.*\"$1\":\\([-0-9.]*\\).*/\\1/p" <<<"$2"; }

bench() { # transport tag args...
    local transport=$1 tag=$2
    shift 2
    local port=$TCP_PORT flag=()
    [ "$transport" = ws ] && { port=$WS_PORT; flag=(--ws); }
    local before after line msgs
    before=$(cpu_ticks)
    line=$(taskset -c "$LOAD_CPU" "$BENCH" "${flag[@]}" -p "$port" --json "$@" 2>>"$OUT/bench.err" || true)
    after=$(cpu_ticks)
    echo "$transport $tag: $line" >>"$OUT/raw.jsonl"
    grep -q '"ok":true' <<<"$line" || echo "WARNING: $transport $tag: $line" >&2
    record "$transport" "${tag}_rate" "$(field rate "$line")"
    record "$transport" "${tag}_lost" "$(field lost "$line")"
    msgs=$(field msgs "$line")
    if [ "${msgs:-0}" != 0 ]; then
        record "$transport" "${tag}_cpu_s_per_M" \
            "$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v m="$msgs" 'BEGIN { printf "%.3f", t / hz / m * 1e6 }')"
    fi
    for p in p50_us p99_us p999_us; do
        local v
        v=$(field $p "$line")
        [ -z "$v" ] || record "$transport" "${tag}_$p" "$v"
    done
}

start_broker() {
    taskset -c "$BROKER_CPU" "$CULEX" -c "$OUT/culex.conf" >"$OUT/culex.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$WS_PORT") 2>/dev/null && break; sleep 0.05; done
}
stop_broker() {
    kill "$broker_pid"
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
}

held() { # transport: RSS per idle connection with one subscription, on a fresh broker
    local transport=$1 port=$TCP_PORT flag=()
    [ "$transport" = ws ] && { port=$WS_PORT; flag=(--ws); }
    local before during err="$OUT/held.err"
    sleep 1
    before=$(rss_kb)
    taskset -c "$LOAD_CPU" "$BENCH" "${flag[@]}" -p "$port" --json --hold 3 -c "$CLIENTS" connections >"$OUT/held.out" 2>"$err" &
    local pid=$!
    for _ in $(seq 1200); do
        grep -qs 'culex_bench: holding' "$err" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    during=$(rss_kb)
    wait "$pid" || true
    local line
    line=$(cat "$OUT/held.out")
    echo "$transport held: $line" >>"$OUT/raw.jsonl"
    grep -q '"ok":true' <<<"$line" || echo "WARNING: $transport connections: $line $(cat "$err")" >&2
    record "$transport" conn_rate "$(field rate "$line")"
    record "$transport" conn_bytes "$(awk -v h="$during" -v b="$before" -v n="$CLIENTS" 'BEGIN { printf "%.0f", (h - b) * 1024 / n }')"
}

for round in $(seq "$ROUNDS"); do
    echo "== round $round" >&2
    start_broker
    order=(tcp ws)
    [ $((round % 2)) = 1 ] || order=(ws tcp)
    d=(-d "$DURATION" -n 100000000 -w "$WINDOW")
    for t in "${order[@]}"; do bench "$t" ft0 "${d[@]}" -q 0 fan-through; done
    for t in "${order[@]}"; do bench "$t" ft1 "${d[@]}" -q 1 fan-through; done
    for t in "${order[@]}"; do bench "$t" fo0 "${d[@]}" -q 0 fan-out; done
    for t in "${order[@]}"; do bench "$t" fi0 "${d[@]}" -q 0 fan-in; done
    for t in "${order[@]}"; do bench "$t" lat0 "${d[@]}" -q 0 -r 5000 latency; done
    for t in "${order[@]}"; do bench "$t" fo0big -d "$DURATION" -n 100000000 -s 16384 -q 0 fan-out; done
    stop_broker
    for t in "${order[@]}"; do
        start_broker
        held "$t"
        stop_broker
    done
done

median() { # transport metric
    awk -F'\t' -v t="$1" -v m="$2" '$1 == t && $2 == m && $3 != "" { print $3 }' "$results" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
row() { # label metric
    local t w ratio
    t=$(median tcp "$2")
    w=$(median ws "$2")
    ratio=$(awk -v a="$w" -v b="$t" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }')
    printf '| %-50s | %12s | %12s | %6s |\n' "$1" "${t:--}" "${w:--}" "$ratio"
}
echo
echo "Medians of $ROUNDS round(s), ${DURATION} s runs; broker on CPU $BROKER_CPU, tool on CPU $LOAD_CPU; raw results in $OUT"
echo
printf '| %-50s | %12s | %12s | %6s |\n' figure TCP WebSockets "WS/TCP"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 52))" "--------------" "--------------" "--------"
row "fan-through 4->4 QoS 0, msg/s" ft0_rate
row "fan-through 4->4 QoS 1 (window $WINDOW), msg/s" ft1_rate
row "fan-out 1->100 QoS 0, deliveries/s" fo0_rate
row "fan-out 1->100 QoS 0, 16 KiB payloads, deliveries/s" fo0big_rate
row "fan-in 20->1 QoS 0, msg/s" fi0_rate
row "latency at 5,000 msg/s QoS 0, p50 us" lat0_p50_us
row "latency at 5,000 msg/s QoS 0, p99 us" lat0_p99_us
row "broker CPU s per million messages, fan-through QoS 0" ft0_cpu_s_per_M
row "broker CPU s per million messages, fan-through QoS 1" ft1_cpu_s_per_M
row "broker CPU s per million deliveries, fan-out QoS 0" fo0_cpu_s_per_M
row "broker CPU s per million deliveries, fan-out 16 KiB" fo0big_cpu_s_per_M
row "broker CPU s per million messages, fan-in QoS 0" fi0_cpu_s_per_M
row "messages lost, all scenarios (fan-through QoS 0)" ft0_lost
row "connect rate, $CLIENTS clients, conn/s" conn_rate
row "memory per idle connection with one subscription, B" conn_bytes
