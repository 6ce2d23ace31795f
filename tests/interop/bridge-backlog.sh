#!/usr/bin/env bash
# End-to-end check of a bridge outbox's backlog (issue #21) with real cloud brokers:
# Debian's mosquitto, and RabbitMQ with its MQTT plugin (Debian's rabbitmq-server, a
# clustered broker of the kind a fleet outgrows a single cloud broker into):
#
#   bash tests/interop/bridge-backlog.sh [BROKER_BINARY [CLOUD...]]
#       BROKER_BINARY default target/release/culex; CLOUD: mosquitto, rabbitmq (both
#       by default)
#
# A culex gateway (persistence on) bridges data/#, state/# and live/# with
# bridge_outbox_max_age 8, bridge_latest_only state/# and bridge_replay_rate 20. The
# cloud is stopped (an outage); during it the gateway gets messages that will be too old,
# repeated state messages and a numbered sequence. Then the cloud comes back and:
#   - the aged messages never arrive;
#   - each state topic arrives once, with its newest value;
#   - the sequence arrives once and in order;
#   - the backlog arrives at no more than 20 messages per second (timestamps taken by
#     the cloud's subscriber);
#   - a message published at the gateway after the link came back arrives before the
#     backlog has drained.
# Twice per cloud: once as is, once with the gateway killed (kill -9) during the outage
# and started again, so the outbox comes from its journal (its set, order and ages).
#
# The bridge reaches the cloud through a gate (bridge_gate.py) that is shut while the
# cloud comes back, until the cloud's subscriber has its subscription: the timestamps
# then measure the bridge, not the subscriber's reconnection.
#
# mosquitto, mosquitto-clients and rabbitmq-server are installed with apt-get when
# missing (RabbitMQ: about 50 s). Every wait is bounded; each check prints PASS or FAIL;
# the script exits non-zero if any failed. About 30 s with mosquitto, 70 s with RabbitMQ
# (its three starts take 10 to 20 s each on 2 loaded cores).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BROKER=${1:-$TARGET_DIR/release/culex}
shift || true
CLOUDS=("$@")
[ "${#CLOUDS[@]}" -gt 0 ] || CLOUDS=(mosquitto rabbitmq)
RATE=20
MAX_AGE=8
SEQ=20

die() { echo "bridge backlog: error: $*" >&2; exit 1; }

[ -x "$BROKER" ] || die "broker binary '$BROKER' not found or not executable (build it with: cargo build --release)"
BROKER=$(cd "$(dirname "$BROKER")" && pwd)/$(basename "$BROKER")

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
# install PACKAGE...: apt-get install, with apt-get update first if that fails.
install() {
    echo "bridge backlog: installing $* (Debian)"
    as_root "${apt[@]}" install "$@" || { as_root "${apt[@]}" update && as_root "${apt[@]}" install "$@"; }
}
if ! command -v mosquitto_sub >/dev/null ||
    { ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; }; then
    install mosquitto mosquitto-clients
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || die "mosquitto still missing after apt-get install"
command -v python3 >/dev/null || die "python3 is needed for the checks"
if [[ " ${CLOUDS[*]} " == *" rabbitmq "* ]]; then
    if [ ! -x /usr/sbin/rabbitmq-server ]; then
        install rabbitmq-server
    fi
    [ -x /usr/sbin/rabbitmq-server ] || die "rabbitmq-server still missing after apt-get install"
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl stop mosquitto.service rabbitmq-server.service 2>/dev/null || true
fi
echo "bridge backlog: culex $BROKER; clouds: ${CLOUDS[*]}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-bridge-backlog.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "${KEEP:-0}" = 1 ]; then echo "bridge backlog: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# mosquitto drops root privileges to the user "mosquitto": it must read its files.
chmod 755 "$WORK"

. "$HERE/lib.sh"

# start NAME BINARY PORT: config in $WORK/NAME.conf; waits until PORT listens; the
# process id is left in LAST_PID.
start() {
    chmod 644 "$WORK/$1.conf"
    spawn "$1" "$3" "$2" -c "$WORK/$1.conf"
}

GATE=$(free_port)
GW=$(free_port)
ID=gw-backlog
GATE_FLAG=$WORK/gate.open

gate_open() { : >"$GATE_FLAG"; }
gate_shut() { rm -f "$GATE_FLAG"; }

# descendant PID NAME: the process named NAME among PID's descendants (Debian's
# rabbitmq-server runs the node through su and sh).
descendant() {
    local queue=("$1") pid child
    while [ "${#queue[@]}" -gt 0 ]; do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        for child in $(pgrep -P "$pid" || true); do
            if [ "$(cat "/proc/$child/comm" 2>/dev/null)" = "$2" ]; then
                echo "$child"
                return 0
            fi
            queue+=("$child")
        done
    done
}

# cloud_start KIND PORT: the cloud broker, listening; its process id in CLOUD_PID.
CLOUD_PID=
EPMD_PID=
cloud_start() {
    local kind=$1 port=$2
    case $kind in
        mosquitto)
            printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$WORK/cloud.conf"
            start cloud "$MOSQUITTO" "$port"
            CLOUD_PID=$LAST_PID
            ;;
        rabbitmq)
            # A node of its own (name, ports, data under $WORK); Debian's script runs it
            # as the user rabbitmq, which must own that data.
            local base=$WORK/rabbitmq epmd_before t0 _
            mkdir -p "$base"
            printf 'listeners.tcp.default = 127.0.0.1:%s\nmqtt.listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' \
                "$RMQ_AMQP" "$port" >"$base/rabbitmq.conf"
            echo '[rabbitmq_mqtt].' >"$base/enabled_plugins"
            chown -R rabbitmq:rabbitmq "$base" 2>/dev/null || true
            epmd_before=$(pgrep -x epmd || true)
            t0=$(date +%s)
            HOME=$base RABBITMQ_NODENAME=$RMQ_NODE RABBITMQ_CONFIG_FILE=$base/rabbitmq.conf \
                RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins RABBITMQ_MNESIA_BASE=$base/mnesia \
                RABBITMQ_LOG_BASE=$base/log RABBITMQ_DIST_PORT=$RMQ_DIST \
                /usr/sbin/rabbitmq-server >>"$WORK/rabbitmq.log" 2>&1 &
            local wrapper=$!
            PIDS+=("$wrapper")
            for _ in $(seq 1 600); do
                port_open "$port" && break
                sleep 0.1
            done
            port_open "$port" || { tail -20 "$WORK/rabbitmq.log" >&2; die "RabbitMQ's MQTT listener not up within 60 s"; }
            # The node's own process (Debian's script runs it as another user): the one
            # to stop for an outage.
            CLOUD_PID=$(descendant "$wrapper" beam.smp)
            [ -n "$CLOUD_PID" ] || die "RabbitMQ's node process not found"
            PIDS+=("$CLOUD_PID")
            # epmd, if this script's first node started it: stopped at the end.
            if [ -z "$epmd_before" ] && [ -z "$EPMD_PID" ]; then
                EPMD_PID=$(pgrep -x epmd || true)
                [ -z "$EPMD_PID" ] || PIDS+=("$EPMD_PID")
            fi
            echo "  RabbitMQ up in $(($(date +%s) - t0)) s"
            ;;
        *) die "unknown cloud '$kind' (mosquitto or rabbitmq)" ;;
    esac
}

mkdir -p "$WORK/gwdata"
cat >"$WORK/gw.conf" <<EOF
listener $GW 127.0.0.1
allow_anonymous true
persistence true
persistence_location $WORK/gwdata/
connection cloud
address 127.0.0.1:$GATE
remote_clientid $ID
restart_timeout 1
try_private false
notifications_local_only true
topic data/# out 1
topic state/# out 1
topic live/# out 1
bridge_outbox_max_age $MAX_AGE
bridge_latest_only state/#
bridge_replay_rate $RATE
EOF
# DEBUG=1: the gateway logs every packet (gw.log, with KEEP=1 to keep it).
[ "${DEBUG:-0}" = 1 ] && echo "log_type all" >>"$WORK/gw.conf"

# gw_state: the gateway's retained bridge state ("1" up, "0" down), or "" after 1 s.
gw_state() {
    mosquitto_sub -h 127.0.0.1 -p "$GW" -t "\$SYS/broker/connection/$ID/state" -C 1 -W 1 2>/dev/null || true
}

# wait_gw_state STATE SECONDS
wait_gw_state() {
    local want=$1 limit=$2 end
    end=$(($(date +%s) + limit))
    while [ "$(date +%s)" -lt "$end" ]; do
        [ "$(gw_state)" = "$want" ] && return 0
        sleep 0.1
    done
    return 1
}

pub_gw() { mosquitto_pub -h 127.0.0.1 -p "$GW" -q 1 -t "$1" -m "$2"; }

# The messages of an outage, in two parts: those that will be too old, then the rest.
publish_old() {
    pub_gw data/old a1
    pub_gw data/old a2
    pub_gw state/valve stale
}
publish_rest() {
    local i
    for i in $(seq 0 $((SEQ - 1))); do
        pub_gw data/seq "$i"
        case $i in
            2) pub_gw state/valve open ;;
            5) pub_gw state/fw 1.0 ;;
            9) pub_gw state/valve closed ;;
            14) pub_gw state/fw 1.1 ;;
            17) pub_gw state/valve half ;;
        esac
    done
}


# scenario KIND NAME KILL: one outage of the running cloud; KILL=1 kills the gateway
# (-9) during it.
scenario() {
    local kind=$1 name="$1: $2" kill_gw=$3 out="$WORK/$1-$2.out" start sub_pid _
    gate_open
    wait_gw_state 1 15 || { fail "$name: the bridge comes up" "no state 1 within 15 s"; return; }

    # The outage.
    stop_pid "$CLOUD_PID"
    wait_gw_state 0 10 || { fail "$name: the outage is seen" "no state 0 within 10 s"; return; }
    gate_shut
    start=$(date +%s)
    publish_old
    # The cloud comes back while the gate keeps the bridge out (the outage goes on for
    # it): its start (10 to 20 s for RabbitMQ) overlaps the aging, and its subscriber
    # is ready before the bridge gets in.
    cloud_start "$kind" "$CLOUD"
    mosquitto_sub -h 127.0.0.1 -p "$CLOUD" -q 1 -t 'data/#' -t 'state/#' -t 'live/#' -t probe \
        -F '%U %t %p' -W 90 >"$out" 2>"$out.err" &
    sub_pid=$!
    for _ in $(seq 1 50); do
        mosquitto_pub -h 127.0.0.1 -p "$CLOUD" -q 1 -t probe -m p 2>/dev/null || true
        grep -q ' probe ' "$out" && break
        sleep 0.2
    done
    if ! grep -q ' probe ' "$out"; then
        fail "$name" "the cloud's subscriber got nothing within 10 s"
        stop_pid "$sub_pid"
        return
    fi
    if [ "$kill_gw" = 1 ]; then
        # The rest while the old ones are still young (unless the cloud's start took
        # longer than MAX_AGE), then the gateway killed and started again: the
        # restored outbox goes on aging from the journaled times.
        while [ $(($(date +%s) - start)) -lt 5 ]; do sleep 0.2; done
        publish_rest
        kill -9 "$GW_PID"
        wait "$GW_PID" 2>/dev/null || true
        start gw "$BROKER" "$GW"
        GW_PID=$LAST_PID
    fi
    # The old messages pass MAX_AGE while the bridge is out.
    while [ $(($(date +%s) - start)) -le $((MAX_AGE + 1)) ]; do sleep 0.2; done
    [ "$kill_gw" = 1 ] || publish_rest

    # The bridge is let in.
    gate_open
    wait_gw_state 1 15 || { fail "$name: the bridge comes back" "no state 1 within 15 s"; stop_pid "$sub_pid"; return; }
    pub_gw live/now L
    # The backlog (SEQ + 2 state messages) drains in about (SEQ + 1) / RATE s.
    local expected=$((SEQ + 3))
    for _ in $(seq 1 100); do
        [ "$(grep -vc ' probe ' "$out")" -ge "$expected" ] && break
        sleep 0.1
    done
    sleep 0.5
    stop_pid "$sub_pid"
    if python3 - "$out" "$SEQ" "$RATE" <<'PY'; then
import sys
path, seq, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = []
for line in open(path):
    ts, topic, payload = line.rstrip("\n").split(" ", 2)
    if topic != "probe":
        rows.append((float(ts), topic, payload))
names = [f"{t}={p}" for _, t, p in rows]
problems = []
if any(t == "data/old" or p == "stale" for _, t, p in rows):
    problems.append("an aged message arrived")
for topic, newest in (("state/valve", "half"), ("state/fw", "1.1")):
    got = [p for _, t, p in rows if t == topic]
    if got != [newest]:
        problems.append(f"{topic}: expected only {newest}, got {got}")
got_seq = [int(p) for _, t, p in rows if t == "data/seq"]
if got_seq != list(range(seq)):
    problems.append(f"data/seq not once and in order: {got_seq}")
live = [i for i, (_, t, _) in enumerate(rows) if t == "live/now"]
backlog = [r for r in rows if r[1] != "live/now"]
if len(live) != 1:
    problems.append(f"live/now arrived {len(live)} times")
elif live[0] >= len(rows) - 1:
    problems.append("live/now arrived after the whole backlog")
if len(backlog) >= 2:
    span = backlog[-1][0] - backlog[0][0]
    least = (len(backlog) - 1) / rate
    # 10 % for the subscriber's own reading; never faster than the rate beyond that.
    if span < least * 0.9:
        problems.append(f"backlog of {len(backlog)} took {span:.2f} s, faster than {rate}/s ({least:.2f} s)")
    print(f"  backlog of {len(backlog)} in {span:.2f} s (at least {least:.2f} s at {rate}/s); live/now at position {live[0] + 1 if live else '-'} of {len(rows)}")
if problems:
    print("  " + "; ".join(problems))
    print("  received: " + ", ".join(names))
    sys.exit(1)
PY
        pass "$name: aged gone, newest state once, sequence once in order, paced at $RATE/s, live first"
    else
        fail "$name" "see above ($out)"
    fi
}

GATE_PID=
GW_PID=
RMQ_NODE=culexci$$@localhost
for kind in "${CLOUDS[@]}"; do
    step_start=$(date +%s)
    CLOUD=$(free_port)
    RMQ_AMQP=$(free_port)
    RMQ_DIST=$(free_port)
    # The gate leads to this cloud's port.
    [ -z "$GATE_PID" ] || stop_pid "$GATE_PID"
    python3 "$HERE/bridge_gate.py" "$GATE" "$CLOUD" "$GATE_FLAG" >>"$WORK/gate.log" 2>&1 &
    GATE_PID=$!
    PIDS+=("$GATE_PID")
    for _ in $(seq 1 50); do port_open "$GATE" && break; sleep 0.1; done
    cloud_start "$kind" "$CLOUD"
    if [ -z "$GW_PID" ]; then
        start gw "$BROKER" "$GW"
        GW_PID=$LAST_PID
    fi
    scenario "$kind" outage 0
    scenario "$kind" outage-kill9 1
    stop_pid "$CLOUD_PID"
    echo "  $kind: $(($(date +%s) - step_start)) s"
done
stop_pid "$GW_PID"

summary "bridge backlog"
