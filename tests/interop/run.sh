#!/usr/bin/env bash
# Interop checks: a broker binary against clients we did not write.
#
#   bash tests/interop/run.sh [BROKER_BINARY]     (default: target/release/culex)
#
# The broker is started on a free loopback port with a temporary config
# ("listener PORT 127.0.0.1", "allow_anonymous true") given as `-c FILE`, the way
# mosquitto takes it, so the same script checks culex and, as a reference, Debian's
# mosquitto (`bash tests/interop/run.sh /usr/sbin/mosquitto`).
#
# Clients: Debian's mosquitto_pub/mosquitto_sub (MQTT 3.1.1, 3.1 and 5) and Eclipse
# paho-mqtt 2.x for Python (tests/interop/paho_checks.py for MQTT 3.1.1 and 3.1,
# tests/interop/paho_v5_checks.py for MQTT 5). Whatever is missing is
# installed here (apt-get; pip into target/interop-venv, or $INTEROP_VENV if set); an
# install that fails stops the run. No check is ever skipped: each prints PASS or FAIL,
# and the script exits non-zero if any failed. Every wait is bounded.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BROKER=${1:-$TARGET_DIR/release/culex}
VENV=${INTEROP_VENV:-$TARGET_DIR/interop-venv}

# Seconds a subscriber waits for what it expects before it gives up (mosquitto_sub -W).
WAIT=10

die() { echo "interop: error: $*" >&2; exit 1; }

[ -x "$BROKER" ] || die "broker binary '$BROKER' not found or not executable (build it with: cargo build --release)"
BROKER=$(cd "$(dirname "$BROKER")" && pwd)/$(basename "$BROKER")

# ---------------------------------------------------------------------------------------
# Tools

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    # Lock timeout: another apt may be running on a shared machine; wait for it.
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
    if ! as_root "${apt[@]}" install "$@"; then
        echo "interop: apt-get install failed; running apt-get update and trying again" >&2
        as_root "${apt[@]}" update
        as_root "${apt[@]}" install "$@"
    fi
}

# apt may start mosquitto as a system service when it installs it (where no policy-rc.d
# forbids it). This script never uses port 1883, but a service that the install started
# would hold it for everyone else, so stop the service that we just caused to start.
stop_mosquitto_service() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl stop mosquitto.service 2>/dev/null || true
        systemctl disable mosquitto.service 2>/dev/null || true
    elif [ -x /etc/init.d/mosquitto ] && [ -s /run/mosquitto/mosquitto.pid ]; then
        /etc/init.d/mosquitto stop || true
    fi
}

ensure_mosquitto_clients() {
    if command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null; then
        return
    fi
    echo "interop: installing mosquitto and mosquitto-clients (Debian)"
    apt_install mosquitto mosquitto-clients
    stop_mosquitto_service
    if ! command -v mosquitto_pub >/dev/null || ! command -v mosquitto_sub >/dev/null; then
        die "mosquitto_pub/mosquitto_sub still missing after apt-get install"
    fi
}

venv_has_paho() {
    [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c 'import sys, paho.mqtt; sys.exit(0 if paho.mqtt.__version__.startswith("2.") else 1)' 2>/dev/null
}

ensure_paho() {
    if venv_has_paho; then
        return
    fi
    echo "interop: installing paho-mqtt 2.x into $VENV"
    if ! python3 -m venv "$VENV"; then
        # Debian's own python3 ships venv separately.
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q 'paho-mqtt==2.*'
    venv_has_paho || die "paho-mqtt 2.x is not importable from $VENV after pip install"
}

ensure_mosquitto_clients
ensure_paho

echo "interop: broker under test: $BROKER"
echo "interop: $(mosquitto_sub --help 2>/dev/null | sed -n 2p)"
echo "interop: paho-mqtt $("$VENV/bin/python" -c 'import paho.mqtt; print(paho.mqtt.__version__)')"

# ---------------------------------------------------------------------------------------
# The broker under test

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-interop.XXXXXX")
BROKER_PID=

cleanup() {
    # Subscribers a failed check left behind end by themselves (-W) or when the
    # broker goes away.
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        # Give it a moment for a clean stop, then make sure.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PORT=$(free_port)
cat >"$WORK/broker.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
EOF

# mosquitto drops root privileges to the user "mosquitto"; make sure it can still read
# what it needs (nothing else is written by it: it logs to stderr).
chmod 755 "$WORK"
chmod 644 "$WORK/broker.conf"

"$BROKER" -c "$WORK/broker.conf" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!

broker_log_tail() {
    echo "---- broker log (last 40 lines) ----" >&2
    tail -n 40 "$WORK/broker.log" >&2 || true
    echo "------------------------------------" >&2
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

for _ in $(seq 1 100); do
    port_open && break
    kill -0 "$BROKER_PID" 2>/dev/null || { broker_log_tail; die "broker exited before it listened on 127.0.0.1:$PORT"; }
    sleep 0.1
done
port_open || { broker_log_tail; die "broker did not listen on 127.0.0.1:$PORT within 10 s"; }
echo "interop: broker pid $BROKER_PID listening on 127.0.0.1:$PORT"

# ---------------------------------------------------------------------------------------
# Helpers for checks. Each check runs in a subshell with `set -e`: any failing command
# fails the check (and only that check); its output goes to a log shown on failure.

PASSED=0
FAILED=0
FAILED_NAMES=()

run_check() {
    local name=$1
    shift
    local log="$WORK/check-$name.log" rc
    set +e
    mkdir "$WORK/$name"
    (
        set -e
        cd "$WORK/$name"
        "$@"
    ) >"$log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        echo "PASS $name"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL $name (exit $rc)"
        sed 's/^/    | /' "$log"
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$name")
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        broker_log_tail
        die "broker died during check '$name'"
    fi
}

# fail WHY: end the check, showing what its clients printed.
fail() {
    local f
    for f in *.out; do
        [ -e "$f" ] || continue
        echo "-- $f:"
        cat "$f"
    done
    echo "check failed: $*" >&2
    exit 1
}

# Foreground clients, bounded: a broker that never answers must not hang the run.
pub() { timeout $((WAIT + 5)) mosquitto_pub -h 127.0.0.1 -p "$PORT" "$@"; }
sub() { timeout $((WAIT + 5)) mosquitto_sub -h 127.0.0.1 -p "$PORT" "$@"; }

# hex of stdin, one line, lowercase: the form of mosquitto_sub's %x
hex() { od -An -tx1 -v | tr -d ' \n'; }

# sub_start OUT ARGS...: start mosquitto_sub in the background, its messages in OUT as
# lines "MSG <retain> <qos> <topic> <payload-hex>", and return once the broker has
# acknowledged the subscription (mosquitto_sub -d prints "received SUBACK").
# Sets SUB_PID. ARGS should include -C and -W so the subscriber ends by itself.
# SUB_FORMAT, if set, replaces that -F format; it must start with "MSG ".
sub_start() {
    local out=$1
    shift
    : >"$out" # truncated here, not in the background job, so no stale SUBACK is seen
    # stdbuf: mosquitto_sub's stdout is block-buffered when it is a file.
    stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$PORT" -d -F "${SUB_FORMAT:-MSG %r %q %t %x}" "$@" >"$out" 2>&1 &
    SUB_PID=$!
    for _ in $(seq 1 100); do
        grep -q 'received SUBACK' "$out" && return 0
        kill -0 "$SUB_PID" 2>/dev/null || { cat "$out"; fail "mosquitto_sub $* exited before SUBACK"; }
        sleep 0.1
    done
    cat "$out"
    fail "no SUBACK within 10 s for mosquitto_sub $*"
}

# sub_wait: wait for the subscriber started by sub_start; fails if it timed out (-W).
sub_wait() {
    local rc=0
    wait "$SUB_PID" || rc=$?
    [ "$rc" -eq 0 ] || fail "mosquitto_sub exited with $rc (27: -W timed out before -C messages; 124: killed by timeout)"
}

# messages OUT: the "MSG ..." lines of OUT without the prefix
messages() { sed -n 's/^MSG //p' "$1"; }

# expect_lines NAME EXPECTED_FILE ACTUAL_FILE
expect_same() {
    if ! diff -u "$2" "$3"; then
        fail "$1: received messages differ from those expected (diff above: - expected, + received)"
    fi
}

# ---------------------------------------------------------------------------------------
# (a) mosquitto_pub / mosquitto_sub

# QoS N both ways: 5 messages (one mosquitto_pub -l connection), including an empty line
# and non-ASCII text, received once each, in order, at min(pub QoS, sub QoS).
check_cli_qos() {
    local v=$1 q=$2 topic="interop/cli/v$1/qos$2"
    printf '%s\n' "first message" "" "second: äöü ✓" "third with  spaces " "last" >sent.txt
    sub_start sub.out -V "$v" -q "$q" -t "$topic" -C 5 -W "$WAIT"
    pub -V "$v" -q "$q" -t "$topic" -l <sent.txt
    sub_wait
    local line
    while IFS= read -r line; do
        printf '0 %s %s %s\n' "$q" "$topic" "$(printf '%s' "$line" | hex)"
    done <sent.txt >expected.txt
    messages sub.out >received.txt
    expect_same "qos $q v$v" expected.txt received.txt
}

# A subscription at QoS 0 downgrades a QoS 2 publish; at QoS 2 a QoS 1 publish stays 1.
check_cli_qos_downgrade() {
    local topic="interop/cli/downgrade"
    sub_start sub0.out -q 0 -t "$topic" -C 1 -W "$WAIT"
    local sub0=$SUB_PID
    sub_start sub2.out -q 2 -t "$topic" -C 1 -W "$WAIT"
    pub -q 2 -t "$topic" -m qos2-to-qos0-sub
    sub_wait
    SUB_PID=$sub0 sub_wait
    [ "$(messages sub0.out)" = "0 0 $topic $(printf qos2-to-qos0-sub | hex)" ] || fail "QoS 0 subscriber got: $(messages sub0.out)"
    [ "$(messages sub2.out)" = "0 2 $topic $(printf qos2-to-qos0-sub | hex)" ] || fail "QoS 2 subscriber got: $(messages sub2.out)"
}

check_cli_retained() {
    local v=$1 topic="interop/cli/v$1/retained"
    pub -V "$v" -q 1 -r -t "$topic" -m "retained for v$v"
    # A subscriber that arrives later gets it, flagged retained.
    sub -V "$v" -t "$topic" -C 1 -W "$WAIT" -F '%r %t %p' >got.txt
    [ "$(cat got.txt)" = "1 $topic retained for v$v" ] || fail "late subscriber got '$(cat got.txt)'"
    # A live subscriber gets a retained publish without the flag ([MQTT-3.3.1-9]).
    sub_start live.out -V "$v" -t "$topic" -C 2 -W "$WAIT"
    pub -V "$v" -r -t "$topic" -m "second retained"
    pub -V "$v" -r -t "$topic" -m "third retained"
    sub_wait
    # first line: the stored retained message delivered on subscribe, flagged
    printf '1 0 %s %s\n0 0 %s %s\n' "$topic" "$(printf 'retained for v%s' "$v" | hex)" \
        "$topic" "$(printf 'second retained' | hex)" >expected.txt
    messages live.out >received.txt
    expect_same "retained v$v" expected.txt received.txt
    # The newest retained message replaced the older ones.
    sub -V "$v" -t "$topic" -C 1 -W "$WAIT" -F '%r %t %p' >got.txt
    [ "$(cat got.txt)" = "1 $topic third retained" ] || fail "after replace got '$(cat got.txt)'"
    # Clear it with an empty retained message: a new subscriber then gets nothing. To
    # know "nothing" without a long sleep, subscribe to the topic and to a sentinel
    # topic in one SUBSCRIBE, then publish the sentinel: it must be the only message.
    pub -V "$v" -r -n -t "$topic"
    sub_start clear.out -V "$v" -t "$topic" -t "$topic/sentinel" -C 1 -W "$WAIT"
    pub -V "$v" -t "$topic/sentinel" -m sentinel
    sub_wait
    [ "$(messages clear.out)" = "0 0 $topic/sentinel $(printf sentinel | hex)" ] ||
        fail "after clearing, new subscriber got: $(messages clear.out)"
}

# Every byte value, NULs and invalid UTF-8 included, sent from a file and written out raw.
check_cli_binary() {
    local topic="interop/cli/binary"
    python3 -c 'import os, sys; sys.stdout.buffer.write(bytes(range(256)) * 64 + os.urandom(3000) + b"\0\r\n\xff")' >payload.bin
    # A persistent session subscribed at QoS 1 beforehand, so nothing can be published
    # before the subscription exists (mosquitto_sub -N writes payloads raw, so its debug
    # output cannot be used to wait for SUBACK here).
    sub -c -i interop-binary -q 1 -t "$topic" -E
    sub -c -i interop-binary -q 1 -t "$topic" -C 1 -W "$WAIT" -N >received.bin &
    SUB_PID=$!
    pub -q 1 -t "$topic" -f payload.bin
    sub_wait
    cmp payload.bin received.bin || fail "binary payload changed in transit ($(stat -c %s payload.bin) bytes sent, $(stat -c %s received.bin) received)"
    # leave no session behind
    sub -i interop-binary -t "$topic" -E
}

# A client that dies without DISCONNECT (SIGKILL) has its will published.
check_cli_will() {
    local v=$1 topic="interop/cli/v$1/will"
    sub_start watcher.out -V "$v" -q 1 -t "$topic" -C 1 -W "$WAIT"
    local watcher=$SUB_PID
    sub_start doomed.out -V "$v" -i "doomed-v$v" -t "interop/cli/v$v/doomed" -W 60 \
        --will-topic "$topic" --will-payload "doomed-v$v went away" --will-qos 1
    kill -9 "$SUB_PID"
    wait "$SUB_PID" 2>/dev/null || true
    SUB_PID=$watcher sub_wait
    [ "$(messages watcher.out)" = "0 1 $topic $(printf 'doomed-v%s went away' "$v" | hex)" ] ||
        fail "watcher got: $(messages watcher.out)"
}

# A clean DISCONNECT discards the will ([MQTT-3.14.4-3]).
check_cli_will_not_sent_on_disconnect() {
    local topic="interop/cli/will-clean"
    sub_start watcher.out -t "$topic" -t "$topic/sentinel" -C 1 -W "$WAIT"
    sub -t "$topic/x" -E --will-topic "$topic" --will-payload "must not be sent"
    pub -t "$topic/sentinel" -m sentinel
    sub_wait
    [ "$(messages watcher.out)" = "0 0 $topic/sentinel $(printf sentinel | hex)" ] ||
        fail "watcher got: $(messages watcher.out)"
}

# Subscribe with a persistent session, disconnect, publish QoS 1 and 2 while it is
# offline, reconnect and receive them all.
check_cli_persistent() {
    local v=$1 id="persist-v$1" topic="interop/cli/v$1/persist"
    sub -V "$v" -c -i "$id" -q 2 -t "$topic" -E
    pub -V "$v" -q 1 -t "$topic" -m "offline 1 (qos 1)"
    pub -V "$v" -q 2 -t "$topic" -m "offline 2 (qos 2)"
    pub -V "$v" -q 1 -t "$topic" -m "offline 3 (qos 1)"
    sub -V "$v" -c -i "$id" -q 2 -t "$topic" -C 3 -W "$WAIT" \
        -F '%q %p' >received.txt
    # Order is kept per QoS level only ([MQTT-4.6.0-6] and mosquitto delivers a queue
    # of QoS 1 messages before its QoS 2 ones), so compare each level on its own.
    printf '%s\n' "1 offline 1 (qos 1)" "1 offline 3 (qos 1)" >expected1.txt
    printf '%s\n' "2 offline 2 (qos 2)" >expected2.txt
    grep '^1 ' received.txt >received1.txt || true
    grep '^2 ' received.txt >received2.txt || true
    expect_same "persistent v$v, QoS 1" expected1.txt received1.txt
    expect_same "persistent v$v, QoS 2" expected2.txt received2.txt
    [ "$(wc -l <received.txt)" -eq 3 ] || fail "expected 3 messages, got: $(cat received.txt)"
    # Clean up: a clean-session connect with the same id discards the session.
    sub -V "$v" -i "$id" -t "$topic" -E
    pub -V "$v" -q 1 -t "$topic" -m "after clean"
    sub_start after.out -V "$v" -c -i "$id" -q 1 -t "$topic/sentinel" -C 1 -W "$WAIT"
    pub -V "$v" -q 1 -t "$topic/sentinel" -m sentinel
    sub_wait
    [ "$(messages after.out)" = "0 1 $topic/sentinel $(printf sentinel | hex)" ] ||
        fail "session was not discarded by a clean-session connect; got: $(messages after.out)"
    sub -V "$v" -i "$id" -t "$topic" -E
}

check_cli_wildcards() {
    local base="interop/cli/wild"
    sub_start wild.out -t "$base/+/temp" -t "$base/b/#" -C 3 -W "$WAIT"
    pub -t "$base/a/temp" -m 1
    pub -t "$base/a/humidity" -m no
    pub -t "$base/a/temp/x" -m no
    pub -t "$base/b" -m 2
    pub -t "$base/b/c/d" -m 3
    sub_wait
    printf '0 0 %s %s\n' "$base/a/temp" 31 "$base/b" 32 "$base/b/c/d" 33 >expected.txt
    messages wild.out >received.txt
    expect_same wildcards expected.txt received.txt
}

echo
echo "== mosquitto_pub / mosquitto_sub =="
for v in 311 31; do
    for q in 0 1 2; do
        run_check "cli-v$v-qos$q" check_cli_qos "$v" "$q"
    done
done
run_check cli-qos-downgrade check_cli_qos_downgrade
run_check cli-wildcards check_cli_wildcards
for v in 311 31; do
    run_check "cli-v$v-retained" check_cli_retained "$v"
done
run_check cli-binary-payload check_cli_binary
for v in 311 31; do
    run_check "cli-v$v-will-on-sigkill" check_cli_will "$v"
done
run_check cli-no-will-on-disconnect check_cli_will_not_sent_on_disconnect
for v in 311 31; do
    run_check "cli-v$v-persistent-session" check_cli_persistent "$v"
done

# ---------------------------------------------------------------------------------------
# (a2) mosquitto_pub / mosquitto_sub with MQTT 5 properties (-D), shown by mosquitto_sub's
# -F specifiers: %P user properties ("key:value" separated by spaces), %C content type,
# %D correlation data, %R response topic, %F payload format indicator, %E message expiry
# interval, %S subscription identifier.

# User properties (in order, a key repeated), content type, correlation data, response
# topic and payload format indicator reach the subscriber unaltered ([MQTT-3.3.2-17]
# [MQTT-3.3.2-18] [MQTT-3.3.2-20] [MQTT-3.3.2-4]).
check_cli_v5_properties() {
    local topic="interop/cli/v5/properties"
    SUB_FORMAT='MSG P=[%P] C=[%C] D=[%D] R=[%R] F=[%F] %q %t %p' \
        sub_start sub.out -V 5 -q 1 -t "$topic" -C 1 -W "$WAIT"
    pub -V 5 -q 1 -t "$topic" -m '{"t": 21}' \
        -D publish user-property site north \
        -D publish user-property unit "°C" \
        -D publish user-property site south \
        -D publish content-type application/json \
        -D publish correlation-data req-42 \
        -D publish response-topic "$topic/reply" \
        -D publish payload-format-indicator 1
    sub_wait
    local expected='P=[site:north unit:°C site:south] C=[application/json] D=[req-42]'
    expected+=" R=[$topic/reply] F=[1] 1 $topic {\"t\": 21}"
    [ "$(messages sub.out)" = "$expected" ] || fail "expected '$expected', got '$(messages sub.out)'"
}

# The Subscription Identifier given with -D subscribe comes back with each message
# ([MQTT-3.3.4-3]); a message of another subscriber's subscription has none.
check_cli_v5_subscription_identifier() {
    local topic="interop/cli/v5/subid"
    SUB_FORMAT='MSG S=[%S] %t %p' \
        sub_start ided.out -V 5 -t "$topic" -C 1 -W "$WAIT" -D subscribe subscription-identifier 42
    local ided=$SUB_PID
    SUB_FORMAT='MSG S=[%S] %t %p' sub_start plain.out -V 5 -t "$topic" -C 1 -W "$WAIT"
    pub -V 5 -t "$topic" -m identified
    sub_wait
    SUB_PID=$ided sub_wait
    [ "$(messages ided.out)" = "S=[42] $topic identified" ] || fail "with identifier got '$(messages ided.out)'"
    [ "$(messages plain.out)" = "S=[] $topic identified" ] || fail "without identifier got '$(messages plain.out)'"
}

# Message Expiry Interval: sent on with a live message ([MQTT-3.3.2-6]: minus the time it
# waited, here none or less than a second); a queued message that expired is not
# delivered ([MQTT-3.3.2-5]) and one that has not is, with its interval counted down.
check_cli_v5_message_expiry() {
    local topic="interop/cli/v5/expiry" id="interop-v5-expiry"
    SUB_FORMAT='MSG E=[%E] %t %p' sub_start live.out -V 5 -q 1 -t "$topic" -C 1 -W "$WAIT"
    pub -V 5 -q 1 -t "$topic" -m live -D publish message-expiry-interval 30
    sub_wait
    case "$(messages live.out)" in
        "E=[30] $topic live" | "E=[29] $topic live") ;;
        *) fail "live message: got '$(messages live.out)'" ;;
    esac
    # A session that lasts 60 s after its connection ends, subscribed at QoS 1.
    sub -V 5 -c -x 60 -i "$id" -q 1 -t "$topic" -E
    pub -V 5 -q 1 -t "$topic" -m stale -D publish message-expiry-interval 1
    pub -V 5 -q 1 -t "$topic" -m fresh -D publish message-expiry-interval 60
    sleep 2.2
    # Queued in order: if "stale" were still there it would come first.
    sub -V 5 -c -x 60 -i "$id" -q 1 -t "$topic" -C 1 -W "$WAIT" -F 'E=[%E] %p' >got.txt
    case "$(cat got.txt)" in
        "E=[5"[0-8]"] fresh") ;;
        *) fail "after 2.2 s offline got '$(cat got.txt)', expected 'E=[50..58] fresh'" ;;
    esac
    # leave no session behind
    sub -V 5 -i "$id" -t "$topic" -E
}

echo
echo "== mosquitto_pub / mosquitto_sub, MQTT 5 =="
for q in 0 1 2; do
    run_check "cli-v5-qos$q" check_cli_qos 5 "$q"
done
run_check cli-v5-properties check_cli_v5_properties
run_check cli-v5-subscription-identifier check_cli_v5_subscription_identifier
run_check cli-v5-message-expiry check_cli_v5_message_expiry

# ---------------------------------------------------------------------------------------
# (b) paho-mqtt

# run_paho SCRIPT: run one of the paho scripts, which print PASS/FAIL per check and a
# summary line; count its checks one by one in the summary.
run_paho() {
    local script=$1 out="$WORK/$1.out" rc passed failed
    set +e
    "$VENV/bin/python" "$HERE/$script" --host 127.0.0.1 --port "$PORT" | tee "$out"
    rc=${PIPESTATUS[0]}
    set -e
    passed=$(grep -c '^PASS ' "$out" || true)
    failed=$(grep -c '^FAIL ' "$out" || true)
    PASSED=$((PASSED + passed))
    FAILED=$((FAILED + failed))
    while read -r _ name _; do
        FAILED_NAMES+=("${name%:}")
    done < <(grep '^FAIL ' "$out" || true)
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        # It failed without naming a check (crashed, or could not start).
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$script(exit $rc)")
    fi
}

echo
echo "== paho-mqtt (Python), MQTT 3.1.1 and 3.1 =="
run_paho paho_checks.py
echo
echo "== paho-mqtt (Python), MQTT 5 =="
run_paho paho_v5_checks.py

kill -0 "$BROKER_PID" 2>/dev/null || { broker_log_tail; die "broker died during the paho checks"; }

bash "$HERE/tools.sh" "$BROKER" || { FAILED=$((FAILED + 1)); FAILED_NAMES+=("tools.sh"); }
bash "$HERE/security.sh" "$BROKER" || { FAILED=$((FAILED + 1)); FAILED_NAMES+=("security.sh"); }
bash "$HERE/bridge.sh" "$BROKER" || { FAILED=$((FAILED + 1)); FAILED_NAMES+=("bridge.sh"); }
bash "$HERE/standalone.sh" "$BROKER" || { FAILED=$((FAILED + 1)); FAILED_NAMES+=("standalone.sh"); }

# ---------------------------------------------------------------------------------------

echo
if [ "$FAILED" -ne 0 ]; then
    broker_log_tail
    echo "interop: failed checks: ${FAILED_NAMES[*]}"
    echo "interop: $PASSED passed, $FAILED failed"
    exit 1
fi
echo "interop: $PASSED passed, 0 failed"
