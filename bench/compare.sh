#!/usr/bin/env bash
# Runs every culex_bench scenario against culex and Mosquitto, started the same way (same
# configuration, broker pinned to one CPU, load to another), alternating which broker goes
# first, for several rounds; prints the median of each figure and the culex/Mosquitto
# ratio, with RSS from /proc and CPU seconds per million messages.
#
# The open-loop rows (culex_bench -b 0: publishers write as fast as their sockets take)
# run against a second start of each broker on its default configuration (listener and
# allow_anonymous only), as a user migrating from Mosquitto would have it: they report
# what is lost, the peak RSS of that broker process (VmHWM), and the fan-through
# throughput with one more subscriber of every topic that never reads (--stalled 1).
#
#   bench/compare.sh                 # 3 rounds, about 8 minutes
#   ROUNDS=1 DURATION=3 bench/compare.sh
#
# QUICK=1 runs only the throughput scenarios (fan-through, fan-in, open loop): for a
# short check on a shared machine.
#
# Environment: ROUNDS (3), DURATION seconds per throughput run (5), CLIENTS idle
# connections (10000), RETAINED messages (100000), BROKER_CPU (0), LOAD_CPU (1),
# WINDOW QoS 1/2 window (64), OUT directory for raw results (a temporary one),
# TARGET a Rust triple to build culex for instead of the host's glibc build (e.g.
# x86_64-unknown-linux-musl, the amd64 package's static build; the load generator is
# always the host build).
# Needs root only to install Mosquitto when it is missing.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CLIENTS=${CLIENTS:-10000}
RETAINED=${RETAINED:-100000}
BROKER_CPU=${BROKER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
WINDOW=${WINDOW:-64}
QUICK=${QUICK:-}
HOLD=3
PORT_BASE=${PORT_BASE:-18840}

root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/culex-compare.XXXXXX)}
mkdir -p "$OUT"
results="$OUT/results.tsv" # broker round metric value
: >"$results"

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "Installing mosquitto from Debian..." >&2
    apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
# The package's service would hold port 1883 and a CPU; we start our own.
systemctl stop mosquitto 2>/dev/null || true

(cd "$root" && cargo build --release --bin culex --bin culex_bench)
CULEX="$root/target/release/culex"
if [ -n "${TARGET:-}" ]; then
    (cd "$root" && cargo build --release --bin culex --target "$TARGET")
    CULEX="$root/target/$TARGET/release/culex"
fi
echo "culex: $CULEX ($(file -b "$CULEX" | cut -d, -f1-2,5))" >&2
BENCH="$root/target/release/culex_bench"

# 10,000 idle clients need as many descriptors, on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CLIENTS + 100)) ]; then
    CLIENTS=$(($(ulimit -n) - 100))
    echo "ulimit -n is $(ulimit -n): using $CLIENTS idle clients" >&2
fi

CLK_TCK=$(getconf CLK_TCK)
broker_pid=""
bench_pid=""
cleanup() {
    [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null || true
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Same configuration for both: loopback listener, anonymous, queues large enough that
# a fan-out or fan-in backlog is not dropped, the inflight window matching the tool's.
write_config() { # port file [default]
    if [ "${3:-}" = default ]; then
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$1" >"$2"
        return
    fi
    cat >"$2" <<EOF
listener $1 127.0.0.1
allow_anonymous true
max_queued_messages 1000000
max_inflight_messages $WINDOW
EOF
}

start_broker() { # name port [default]
    local conf="$OUT/$1.conf"
    write_config "$2" "$conf" "${3:-}"
    case $1 in
    culex) taskset -c "$BROKER_CPU" "$CULEX" -c "$conf" >"$OUT/$1.log" 2>&1 & ;;
    mosquitto) taskset -c "$BROKER_CPU" "$MOSQUITTO" -c "$conf" >"$OUT/$1.log" 2>&1 & ;;
    esac
    broker_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "$1 did not start; see $OUT/$1.log" >&2
    exit 1
}

stop_broker() {
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$broker_pid/status"; }
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$broker_pid/status"; }
# utime + stime in clock ticks (fields 14 and 15; neither name has a space in its comm).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$broker_pid/stat"; }

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }
field() { sed -n "s/.*\"$1\":\\([-0-9.]*\\).*/\\1/p" <<<"$2"; }

bench() { # broker round tag args...: one JSON line; CPU per million delivered recorded
    local name=$1 round=$2 tag=$3
    shift 3
    local before after line
    before=$(cpu_ticks)
    # The tool's own user+system and wall-clock seconds, to show it is not the bottleneck.
    local TIMEFORMAT='%U %S %R'
    { time taskset -c "$LOAD_CPU" "$BENCH" -p "$port" --json "$@" >"$OUT/line" 2>>"$OUT/$name.bench.err" || true; } 2>"$OUT/time"
    after=$(cpu_ticks)
    line=$(cat "$OUT/line")
    local tu ts tr
    read -r tu ts tr <"$OUT/time"
    record "$name" "$round" "${tag}_tool_cpu" "$(awk -v u="$tu" -v s="$ts" -v r="$tr" 'BEGIN { printf "%.2f", (u + s) / r }')"
    record "$name" "$round" "${tag}_broker_cpu" "$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v r="$tr" 'BEGIN { printf "%.2f", t / hz / r }')"
    echo "$name round $round $tag: $line" >>"$OUT/raw.jsonl"
    [ -n "$line" ] || {
        echo "$name $tag: no output" >&2
        return
    }
    if ! grep -q '"ok":true' <<<"$line"; then
        echo "WARNING: $name $tag: $(sed -n 's/.*"error":\(".*"\).*/\1/p' <<<"$line")" >&2
    fi
    record "$name" "$round" "${tag}_rate" "$(field rate "$line")"
    record "$name" "$round" "${tag}_lost" "$(field lost "$line")"
    local msgs
    msgs=$(field msgs "$line")
    if [ "${msgs:-0}" != 0 ]; then
        record "$name" "$round" "${tag}_cpu_s_per_M" \
            "$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v m="$msgs" 'BEGIN { printf "%.3f", t / hz / m * 1e6 }')"
    fi
    for p in p50_us p99_us p999_us; do
        local v
        v=$(field $p "$line")
        [ -z "$v" ] || record "$name" "$round" "${tag}_$p" "$v"
    done
    local s
    s=$(field seconds "$line")
    record "$name" "$round" "${tag}_seconds" "$s"
}

# Runs culex_bench in the background with --hold, reads RSS while it holds, then again
# after it has disconnected.
held() { # broker round tag count-metric args...
    local name=$1 round=$2 tag=$3
    shift 3
    local err="$OUT/$name.$tag.$round.err"
    local before
    before=$(rss_kb)
    taskset -c "$LOAD_CPU" "$BENCH" -p "$port" --json --hold "$HOLD" "$@" >"$OUT/$tag.out" 2>"$err" &
    bench_pid=$!
    for _ in $(seq 1200); do
        grep -qs 'culex_bench: holding' "$err" && break
        kill -0 "$bench_pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    local during
    during=$(rss_kb)
    wait "$bench_pid" || true
    bench_pid=""
    sleep 1
    local line
    line=$(cat "$OUT/$tag.out")
    echo "$name round $round $tag: $line" >>"$OUT/raw.jsonl"
    grep -q '"ok":true' <<<"$line" || echo "WARNING: $name $tag: $line $(cat "$err")" >&2
    record "$name" "$round" "${tag}_rss_before_kb" "$before"
    record "$name" "$round" "${tag}_rss_held_kb" "$during"
    record "$name" "$round" "${tag}_rss_after_kb" "$(rss_kb)"
    record "$name" "$round" "${tag}_rate" "$(field rate "$line")"
    record "$name" "$round" "${tag}_seconds" "$(field seconds "$line")"
    record "$name" "$round" "${tag}_lost" "$(field lost "$line")"
}

run_broker() { # name round
    local name=$1 round=$2
    local offset=0
    [ "$name" = culex ] || offset=1
    port=$((PORT_BASE + round * 2 + offset))
    echo "== round $round: $name" >&2
    start_broker "$name" "$port"
    sleep 1
    record "$name" "$round" idle_rss_kb "$(rss_kb)"
    local d=(-d "$DURATION" -n 100000000 -w "$WINDOW")
    bench "$name" "$round" ft0 "${d[@]}" -q 0 fan-through
    bench "$name" "$round" ft1 "${d[@]}" -q 1 fan-through
    [ -n "$QUICK" ] || bench "$name" "$round" fo0 "${d[@]}" -q 0 fan-out
    bench "$name" "$round" fi0 "${d[@]}" -q 0 fan-in
    if [ -z "$QUICK" ]; then
        bench "$name" "$round" lat0 "${d[@]}" -q 0 -r 5000 latency
        held "$name" "$round" conn -c "$CLIENTS" connections
        held "$name" "$round" ret --retained "$RETAINED" retained
    fi
    stop_broker
    # Open loop, default configuration, a fresh process (its peak RSS is these runs').
    port=$((port + 100))
    start_broker "$name" "$port" default
    sleep 1
    bench "$name" "$round" ft0open -d "$DURATION" -n 100000000 -b 0 -q 0 fan-through
    bench "$name" "$round" ft1open -d "$DURATION" -n 100000000 -b 0 -q 1 fan-through
    bench "$name" "$round" fi0open -d "$DURATION" -n 100000000 -b 0 -q 0 fan-in
    bench "$name" "$round" ft0stall -d "$DURATION" -n 100000000 -b 0 -q 0 --stalled 1 fan-through
    record "$name" "$round" open_peak_rss_kb "$(peak_rss_kb)"
    stop_broker
}

for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        run_broker culex "$round"
        run_broker mosquitto "$round"
    else
        run_broker mosquitto "$round"
        run_broker culex "$round"
    fi
done

# Medians per broker and metric, then the table.
median() { # broker metric
    awk -F'\t' -v b="$1" -v m="$2" '$1 == b && $3 == m && $4 != "" { print $4 }' "$results" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
derived() { # per-item bytes: (held - before) KiB * 1024 / count
    awk -v h="$1" -v b="$2" -v n="$3" 'BEGIN { if (h == "" || b == "") print ""; else printf "%.0f", (h - b) * 1024 / n }'
}
row() { # label culex mosquitto
    local ratio
    ratio=$(awk -v c="$2" -v m="$3" 'BEGIN { if (c == "" || m == "" || m + 0 == 0) print "-"; else printf "%.2f", c / m }')
    printf '| %-52s | %12s | %12s | %7s |\n' "$1" "${2:--}" "${3:--}" "$ratio"
}
both() { row "$1" "$(median culex "$2")" "$(median mosquitto "$2")"; }

echo
echo "Medians of $ROUNDS round(s); broker on CPU $BROKER_CPU, load on CPU $LOAD_CPU; $(nproc) CPUs; raw results in $OUT"
echo
printf '| %-52s | %12s | %12s | %7s |\n' figure culex mosquitto ratio
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 54))" "--------------" "--------------" "---------"
both "fan-through 4->4 QoS 0, msg/s" ft0_rate
both "fan-through 4->4 QoS 0, lost" ft0_lost
both "fan-through 4->4 QoS 1 (window $WINDOW), msg/s" ft1_rate
both "fan-out 1->100 QoS 0, deliveries/s" fo0_rate
both "fan-out 1->100 QoS 0, lost" fo0_lost
both "fan-in 20->1 QoS 0, msg/s" fi0_rate
both "fan-in 20->1 QoS 0, lost" fi0_lost
both "open loop, default config: fan-through QoS 0, msg/s" ft0open_rate
both "open loop, default config: fan-through QoS 0, lost" ft0open_lost
both "open loop, default config: fan-through QoS 1, msg/s" ft1open_rate
both "open loop, default config: fan-through QoS 1, lost" ft1open_lost
both "open loop, default config: fan-in 20->1 QoS 0, msg/s" fi0open_rate
both "open loop, default config: fan-in 20->1 QoS 0, lost" fi0open_lost
both "open loop, fan-through QoS 0 + 1 stalled sub, msg/s" ft0stall_rate
both "open loop, fan-through QoS 0 + 1 stalled sub, lost" ft0stall_lost
row "open loop: healthy throughput kept beside a stalled sub" \
    "$(awk -v a="$(median culex ft0stall_rate)" -v b="$(median culex ft0open_rate)" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.2f", a / b }')" \
    "$(awk -v a="$(median mosquitto ft0stall_rate)" -v b="$(median mosquitto ft0open_rate)" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.2f", a / b }')"
both "open loop runs: peak RSS (VmHWM), KiB" open_peak_rss_kb
both "latency at 5,000 msg/s QoS 0, p50 us" lat0_p50_us
both "latency at 5,000 msg/s QoS 0, p99 us" lat0_p99_us
both "latency at 5,000 msg/s QoS 0, p99.9 us" lat0_p999_us
both "CPU s per million messages, fan-through QoS 0" ft0_cpu_s_per_M
both "CPU s per million messages, fan-through QoS 1" ft1_cpu_s_per_M
both "CPU s per million deliveries, fan-out QoS 0" fo0_cpu_s_per_M
both "broker CPU share (cores), fan-through QoS 0" ft0_broker_cpu
both "tool CPU share (cores), fan-through QoS 0" ft0_tool_cpu
both "broker CPU share (cores), fan-out QoS 0" fo0_broker_cpu
both "tool CPU share (cores), fan-out QoS 0" fo0_tool_cpu
both "broker CPU share (cores), fan-in QoS 0" fi0_broker_cpu
both "tool CPU share (cores), fan-in QoS 0" fi0_tool_cpu
both "idle RSS, KiB" idle_rss_kb
both "connect rate, $CLIENTS clients, conn/s" conn_rate
both "RSS with $CLIENTS idle clients, KiB" conn_rss_held_kb
row "memory per idle connection with one subscription, B" \
    "$(derived "$(median culex conn_rss_held_kb)" "$(median culex conn_rss_before_kb)" "$CLIENTS")" \
    "$(derived "$(median mosquitto conn_rss_held_kb)" "$(median mosquitto conn_rss_before_kb)" "$CLIENTS")"
both "RSS after the $CLIENTS clients disconnect, KiB" conn_rss_after_kb
both "RSS before storing retained messages, KiB" ret_rss_before_kb
both "RSS with $RETAINED retained messages, KiB" ret_rss_held_kb
row "memory per retained message (64 B payload), B" \
    "$(derived "$(median culex ret_rss_held_kb)" "$(median culex ret_rss_before_kb)" "$RETAINED")" \
    "$(derived "$(median mosquitto ret_rss_held_kb)" "$(median mosquitto ret_rss_before_kb)" "$RETAINED")"
both "new '#' subscriber gets $RETAINED retained, seconds" ret_seconds
both "retained messages not delivered" ret_lost
