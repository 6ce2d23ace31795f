#!/usr/bin/env bash
# Interop checks of culex's client tools (culex_pub, culex_sub, culex_rr):
#
#   bash tests/interop/tools.sh [BROKER_BINARY]     (default: target/release/culex)
#
# - culex_pub/culex_sub/culex_rr against Debian's mosquitto broker, MQTT 3.1, 3.1.1 and
#   5.0 (-D properties, request/response), TLS, a Unix socket, refused connections;
# - mosquitto_pub/mosquitto_sub/mosquitto_rr and the culex tools side by side against
#   the culex broker under test and against mosquitto, their outputs compared byte for
#   byte for the same -F formats and payloads.
#
# The tools are taken from the broker binary's directory (cargo build --release builds
# them all), or from $CULEX_TOOLS_DIR. mosquitto, mosquitto-clients and openssl are
# installed with apt-get when missing. Every wait is bounded; each check prints PASS
# or FAIL; the script exits non-zero if any failed. Nothing is skipped.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BROKER=${1:-$TARGET_DIR/release/culex}
WAIT=10

die() { echo "tools interop: error: $*" >&2; exit 1; }

[ -x "$BROKER" ] || die "broker binary '$BROKER' not found or not executable (build it with: cargo build --release)"
BROKER=$(cd "$(dirname "$BROKER")" && pwd)/$(basename "$BROKER")
TOOLS=${CULEX_TOOLS_DIR:-$(dirname "$BROKER")}
for t in culex_pub culex_sub culex_rr; do
    [ -x "$TOOLS/$t" ] || die "$TOOLS/$t not found (build it with: cargo build --release)"
done

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
    if ! as_root "${apt[@]}" install "$@"; then
        as_root "${apt[@]}" update
        as_root "${apt[@]}" install "$@"
    fi
}

if ! command -v mosquitto_rr >/dev/null || ! command -v openssl >/dev/null ||
    { ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; }; then
    echo "tools interop: installing mosquitto, mosquitto-clients and openssl (Debian)"
    apt_install mosquitto mosquitto-clients openssl
    # A service the install started would hold port 1883 for everyone: stop it.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl stop mosquitto.service 2>/dev/null || true
        systemctl disable mosquitto.service 2>/dev/null || true
    elif [ -x /etc/init.d/mosquitto ] && [ -s /run/mosquitto/mosquitto.pid ]; then
        /etc/init.d/mosquitto stop || true
    fi
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || die "mosquitto still missing after apt-get install"
command -v mosquitto_rr >/dev/null || die "mosquitto_rr still missing after apt-get install"

echo "tools interop: tools from $TOOLS"
echo "tools interop: culex broker $BROKER; reference $($MOSQUITTO -h 2>&1 | sed -n 1p)"

# ---------------------------------------------------------------------------------------
# Brokers: culex (anonymous), mosquitto (anonymous, TCP + TLS + Unix socket), and
# mosquitto refusing anonymous clients.

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-tools-interop.XXXXXX")
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
# mosquitto drops root privileges to the user "mosquitto": it must read its files and
# create its Unix socket here.
chmod 755 "$WORK"
mkdir -m 777 "$WORK/sock"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A CA and a server certificate for "localhost" (not for 127.0.0.1).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=culex interop CA" \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/server.crt" 2>/dev/null
chmod 644 "$WORK"/*.crt "$WORK"/*.key

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_broker NAME BINARY PORT: config in $WORK/NAME.conf; waits until PORT listens.
start_broker() {
    local name=$1 binary=$2 port=$3 pid
    chmod 644 "$WORK/$name.conf"
    "$binary" -c "$WORK/$name.conf" >"$WORK/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do
        port_open "$port" && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited before listening"; }
        sleep 0.1
    done
    cat "$WORK/$name.log" >&2
    die "$name did not listen on $port within 10 s"
}

CULEX_PORT=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$CULEX_PORT" >"$WORK/culex.conf"
start_broker culex "$BROKER" "$CULEX_PORT"

MQ_PORT=$(free_port)
MQ_TLS_PORT=$(free_port)
MQ_SOCK=$WORK/sock/mosquitto.sock
cat >"$WORK/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
listener $MQ_PORT 127.0.0.1
listener $MQ_TLS_PORT 127.0.0.1
cafile $WORK/ca.crt
certfile $WORK/server.crt
keyfile $WORK/server.key
listener 0 $MQ_SOCK
EOF
start_broker mosquitto "$MOSQUITTO" "$MQ_PORT"

MQ_AUTH_PORT=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous false\n' "$MQ_AUTH_PORT" >"$WORK/mosquitto-auth.conf"
start_broker mosquitto-auth "$MOSQUITTO" "$MQ_AUTH_PORT"

# ---------------------------------------------------------------------------------------
# Checks: each runs in a subshell with `set -e` in its own directory.

PASSED=0
FAILED=0
FAILED_NAMES=()

run_check() {
    local name=$1 log rc
    shift
    log="$WORK/check-$name.log"
    mkdir "$WORK/$name"
    set +e
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
}

fail() {
    local f
    for f in *.out; do
        [ -e "$f" ] || continue
        echo "-- $f:"
        cat -A "$f"
    done
    echo "check failed: $*" >&2
    exit 1
}

# Bounded foreground tools. $P is the port of the broker a check talks to.
cpub() { timeout $((WAIT + 5)) "$TOOLS/culex_pub" -h 127.0.0.1 -p "$P" "$@"; }
csub() { timeout $((WAIT + 5)) "$TOOLS/culex_sub" -h 127.0.0.1 -p "$P" "$@"; }
crr() { timeout $((WAIT + 5)) "$TOOLS/culex_rr" -h 127.0.0.1 -p "$P" "$@"; }
mpub() { timeout $((WAIT + 5)) mosquitto_pub -h 127.0.0.1 -p "$P" "$@"; }
msub() { timeout $((WAIT + 5)) mosquitto_sub -h 127.0.0.1 -p "$P" "$@"; }

# sub_start OUT TOOL ARGS...: a subscriber in the background (TOOL culex_sub or
# mosquitto_sub) with -d; returns once its SUBACK arrived. Sets SUB_PID.
sub_start() {
    local out=$1 tool=$2
    shift 2
    local bin=$tool
    [ "$tool" = culex_sub ] && bin=$TOOLS/culex_sub
    : >"$out.raw"
    stdbuf -oL "$bin" -h 127.0.0.1 -p "$P" -d "$@" >"$out.raw" 2>&1 &
    SUB_PID=$!
    for _ in $(seq 1 100); do
        grep -q '^Subscribed (mid' "$out.raw" && return 0
        kill -0 "$SUB_PID" 2>/dev/null || { cat "$out.raw"; fail "$tool $* exited before SUBACK"; }
        sleep 0.1
    done
    cat "$out.raw"
    fail "no SUBACK within 10 s for $tool $*"
}

# sub_wait OUT [PID]: waits for the subscriber; OUT gets its output without debug lines.
sub_wait() {
    local out=$1 pid=${2:-$SUB_PID} rc=0
    wait "$pid" || rc=$?
    grep -v -e '^Client ' -e '^Subscribed (mid' "$out.raw" >"$out" || true
    [ "$rc" -eq 0 ] || fail "subscriber for $out exited with $rc (27: -W timed out)"
}

expect_file() {
    if ! diff -u "$2" "$3"; then
        fail "$1 (diff above: - expected, + got)"
    fi
}

# hex of stdin, one line
hex() { od -An -tx1 -v | tr -d ' \n'; }

# Deterministic -F formats (no times) and the JSON ones with the timestamp removed.
FORMAT_V3='%t|%p|%q|%r|%l|%x|%X|%5l|%-5l|%05l|%10.3p|%-8t|%.2t|%%|@@|\t|%I'
FORMAT_V5="$FORMAT_V3|%C|%E|%F|%P|%R|%D|%3E|%-4F|"
strip_times() { sed -E 's/"tst":"[^"]*"/"tst":""/; s/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{4}/TIME/'; }

# ---------------------------------------------------------------------------------------
# (a) the culex tools against mosquitto

check_roundtrip() {
    local v=$1 q=$2 topic="tools/rt/v$1/q$2"
    sub_start sub.out culex_sub -V "$v" -q "$q" -t "$topic" -C 3 -W "$WAIT" -F '%q %r %t %x'
    printf '%s\n' "line one" "" "äöü ✓" | cpub -V "$v" -q "$q" -t "$topic" -l
    sub_wait sub.out
    {
        printf '%s 0 %s %s\n' "$q" "$topic" "$(printf 'line one' | hex)"
        printf '%s 0 %s \n' "$q" "$topic"
        printf '%s 0 %s %s\n' "$q" "$topic" "$(printf 'äöü ✓' | hex)"
    } >expected.out
    expect_file "round trip v$v q$q" expected.out sub.out
}

check_binary() {
    local topic="tools/binary"
    python3 -c 'import os, sys; sys.stdout.buffer.write(bytes(range(256)) * 64 + os.urandom(3000) + b"\0\r\n\xff")' >payload.bin
    csub -c -i tools-binary -q 1 -t "$topic" -E
    cpub -q 1 -t "$topic" -f payload.bin
    cpub -q 1 -t "$topic" -s <payload.bin
    csub -c -i tools-binary -q 1 -t "$topic" -C 2 -W "$WAIT" -N >received.bin
    cat payload.bin payload.bin >expected.bin
    cmp expected.bin received.bin || fail "binary payload changed"
    csub -i tools-binary -t "$topic" -E
}

# -D properties in PUBLISH as mosquitto_sub prints them, and culex_sub prints the same.
check_v5_properties() {
    local topic="tools/v5/props"
    local f='%C|%E|%F|%P|%R|%D|%p'
    sub_start m.out mosquitto_sub -V 5 -t "$topic" -C 1 -W "$WAIT" -F "$f"
    local m_pid=$SUB_PID
    sub_start c.out culex_sub -V 5 -t "$topic" -C 1 -W "$WAIT" -F "$f"
    cpub -V 5 -t "$topic" -m payload -D publish content-type text/plain \
        -D publish message-expiry-interval 30 -D publish payload-format-indicator 1 \
        -D publish user-property k1 v1 -D publish user-property k2 v2 \
        -D publish response-topic resp/t -D publish correlation-data corr
    sub_wait c.out
    sub_wait m.out "$m_pid"
    echo 'text/plain|30|1|k1:v1 k2:v2|resp/t|corr|payload' >expected.out
    expect_file "properties seen by mosquitto_sub" expected.out m.out
    expect_file "properties seen by culex_sub" expected.out c.out
}

# -x / -D connect session-expiry-interval: a v5 persistent session keeps QoS 1 messages.
check_v5_session_expiry() {
    local topic="tools/v5/session"
    csub -V 5 -c -i tools-v5-session -x 60 -q 1 -t "$topic" -E
    cpub -V 5 -q 1 -t "$topic" -m kept
    csub -V 5 -c -i tools-v5-session -x 60 -q 1 -t "$topic" -C 1 -W "$WAIT" >got.out
    [ "$(cat got.out)" = kept ] || fail "offline message not kept: $(cat got.out)"
    csub -V 5 -i tools-v5-session -D connect session-expiry-interval 0 -t "$topic" -E
}

# culex_rr's request carries the Response Topic and Correlation Data; the response is
# printed; a response with other Correlation Data is not taken.
check_v5_rr() {
    sub_start req.out culex_sub -V 5 -t tools/rr/req -C 1 -W "$WAIT" -F '%R %D %p'
    crr -t tools/rr/req -e tools/rr/resp -m question -D publish correlation-data c-42 \
        -W "$WAIT" -F '%t %D %p' >rr.out &
    local rr_pid=$!
    sub_wait req.out
    [ "$(cat req.out)" = "tools/rr/resp c-42 question" ] || fail "request was: $(cat req.out)"
    mpub -V 5 -t tools/rr/resp -D publish correlation-data other -m "not ours"
    mpub -V 5 -t tools/rr/resp -D publish correlation-data c-42 -m answer
    wait "$rr_pid" || fail "culex_rr exited with $?"
    [ "$(cat rr.out)" = "tools/rr/resp c-42 answer" ] || fail "culex_rr printed: $(cat rr.out)"
    # And mosquitto_rr's request as culex_sub sees it, answered by culex_pub.
    sub_start req2.out culex_sub -V 5 -t tools/rr/req2 -C 1 -W "$WAIT" -F '%R'
    timeout $((WAIT + 5)) mosquitto_rr -h 127.0.0.1 -p "$P" -t tools/rr/req2 -e tools/rr/resp2 \
        -m q -W "$WAIT" >mrr.out &
    rr_pid=$!
    sub_wait req2.out
    cpub -V 5 -t "$(cat req2.out)" -m pong
    wait "$rr_pid" || fail "mosquitto_rr exited with $?"
    [ "$(cat mrr.out)" = pong ] || fail "mosquitto_rr printed: $(cat mrr.out)"
}

check_will() {
    local v=$1 topic="tools/will/v$1"
    sub_start watcher.out culex_sub -V "$v" -q 1 -t "$topic" -C 1 -W "$WAIT" -F '%q %p'
    local watcher=$SUB_PID
    sub_start doomed.out culex_sub -V "$v" -t "$topic/x" --will-topic "$topic" \
        --will-payload "gone v$v" --will-qos 1
    kill -9 "$SUB_PID"
    wait "$SUB_PID" 2>/dev/null || true
    sub_wait watcher.out "$watcher"
    [ "$(cat watcher.out)" = "1 gone v$v" ] || fail "watcher got: $(cat watcher.out)"
}

check_unix_socket() {
    timeout $((WAIT + 5)) "$TOOLS/culex_sub" --unix "$MQ_SOCK" -t tools/unix -C 1 -W "$WAIT" >got.out &
    local pid=$!
    # No SUBACK to wait for without -d; retry the publish until the subscriber has it.
    for _ in $(seq 1 50); do
        timeout 5 "$TOOLS/culex_pub" --unix "$MQ_SOCK" -t tools/unix -m "over unix"
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    wait "$pid" || fail "culex_sub --unix exited with $?"
    [ "$(cat got.out)" = "over unix" ] || fail "got: $(cat got.out)"
}

check_tls() {
    local P=$MQ_TLS_PORT
    # The certificate is for "localhost": -h localhost verifies.
    timeout 15 "$TOOLS/culex_pub" -h localhost -p "$P" --cafile "$WORK/ca.crt" -t tools/tls -m ok
    timeout 15 "$TOOLS/culex_pub" -h localhost -p "$P" --cafile "$WORK/ca.crt" --tls-version tlsv1.2 -t tools/tls -m ok12
    # 127.0.0.1 does not match the certificate: refused, unless --insecure.
    if timeout 15 "$TOOLS/culex_pub" -h 127.0.0.1 -p "$P" --cafile "$WORK/ca.crt" -t tools/tls -m no 2>err.out; then
        fail "a certificate for another name was accepted"
    fi
    timeout 15 "$TOOLS/culex_pub" -h 127.0.0.1 -p "$P" --cafile "$WORK/ca.crt" --insecure -t tools/tls -m insecure
    # A certificate from an unknown CA is refused even with --insecure.
    if timeout 15 "$TOOLS/culex_pub" -h localhost -p "$P" --cafile "$WORK/server.crt" --insecure -t tools/tls -m no 2>err.out; then
        fail "an unknown CA was accepted"
    fi
    # --capath with the CA in a directory, and a TLS subscriber.
    mkdir capath && cp "$WORK/ca.crt" capath/
    timeout 15 "$TOOLS/culex_sub" -h localhost -p "$P" --capath capath -t tools/tls/sub -C 1 -W "$WAIT" >got.out &
    local pid=$!
    for _ in $(seq 1 50); do
        timeout 5 "$TOOLS/culex_pub" -h localhost -p "$P" --cafile "$WORK/ca.crt" -t tools/tls/sub -m "tls message"
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    wait "$pid" || fail "TLS culex_sub exited with $?"
    [ "$(cat got.out)" = "tls message" ] || fail "got: $(cat got.out)"
}

# A refused CONNECT: the same lines on stderr and the same exit code as Mosquitto's tools.
check_refused() {
    local P=$MQ_AUTH_PORT v tool rc_m rc_c
    for v in 311 5; do
        for tool in pub sub; do
            local args=(-h 127.0.0.1 -p "$P" -V "$v" -t a)
            [ "$tool" = pub ] && args+=(-m x)
            rc_m=0
            timeout 15 "mosquitto_$tool" "${args[@]}" 2>m.err >/dev/null || rc_m=$?
            rc_c=0
            timeout 15 "$TOOLS/culex_$tool" "${args[@]}" 2>c.err >/dev/null || rc_c=$?
            [ "$rc_m" = "$rc_c" ] || fail "$tool v$v: exit $rc_c, mosquitto_$tool $rc_m"
            diff -u m.err c.err || fail "$tool v$v: stderr differs from mosquitto_$tool"
        done
    done
    # Nothing listening.
    local closed
    closed=$(free_port)
    rc_c=0
    timeout 15 "$TOOLS/culex_sub" -h 127.0.0.1 -p "$closed" -t a 2>c.err || rc_c=$?
    if [ "$rc_c" != 1 ] || [ "$(cat c.err)" != "Error: Connection refused" ]; then
        fail "closed port: exit $rc_c, $(cat c.err)"
    fi
}

check_bad_arguments() {
    local tool args rc_m rc_c cases
    for tool in pub sub; do
        if [ "$tool" = pub ]; then
            cases=("-t a -m x -q 3" "-t a -m x --bogus" "-t a -m x -V 7" "-t a/# -m x" "-t a"
                "-t a -m x -D publish session-expiry-interval 5" "-t a -m x -k 2" "-t a -m x -p"
                "-t a -m x -c" "-t a -m x -m y" "-L foo://a/b -n")
        else
            cases=("-t a -q 3" "-t a --bogus" "-t a/#/b" "" "-t a -C 0" "-t a -W x" "-t a -T"
                "-t a -F %k" "-t a -D connect bogus 1" "-t a -r" "-t a -i x -I y")
        fi
        for args in "${cases[@]}"; do
            rc_m=0
            # shellcheck disable=SC2086 # word splitting of the argument list is intended
            timeout 15 "mosquitto_$tool" $args 2>m.err >/dev/null || rc_m=$?
            rc_c=0
            # shellcheck disable=SC2086
            timeout 15 "$TOOLS/culex_$tool" $args 2>c.err >/dev/null || rc_c=$?
            sed -i "s/mosquitto_$tool/culex_$tool/" m.err
            [ "$rc_m" = "$rc_c" ] || fail "$tool $args: exit $rc_c, mosquitto's $rc_m"
            diff -u m.err c.err || fail "$tool '$args': stderr differs from mosquitto_$tool's"
        done
    done
}

# ---------------------------------------------------------------------------------------
# (b) side by side: mosquitto_sub and culex_sub on the same broker print the same bytes

check_same_output() {
    local v=$1 name=$2 format=$3
    local topic="tools/same/$name/v$v"
    sub_start m.out mosquitto_sub -V "$v" -q 2 -t "$topic/#" -C 5 -W "$WAIT" -F "$format"
    local m_pid=$SUB_PID
    sub_start c.out culex_sub -V "$v" -q 2 -t "$topic/#" -C 5 -W "$WAIT" -F "$format"
    local props=()
    if [ "$v" = 5 ]; then
        props=(-D publish content-type application/json -D publish user-property a b
            -D publish message-expiry-interval 100 -D publish response-topic r/1
            -D publish correlation-data xyz)
    fi
    mpub -V "$v" -t "$topic/a" -m "hi \"there\"\\" "${props[@]}"
    mpub -V "$v" -q 1 -t "$topic/b" -m '{ "a" : [1, 2.5, true, null], "b": {"c": "d"} }'
    printf 'a\001\377b\000c' | mpub -V "$v" -q 2 -t "$topic/c" -s
    mpub -V "$v" -t "$topic/d" -n -r
    printf 'tab\there\nnewline' | mpub -V "$v" -t "$topic/e/deeper/level" -s
    sub_wait c.out
    sub_wait m.out "$m_pid"
    # Messages of different QoS from different publisher processes may arrive in either
    # order; each line must be the same bytes.
    strip_times <m.out | LC_ALL=C sort >m.cmp
    strip_times <c.out | LC_ALL=C sort >c.cmp
    cmp m.cmp c.cmp || { diff <(cat -A m.cmp) <(cat -A c.cmp) || true; fail "outputs differ for -F '$format'"; }
    mpub -V "$v" -t "$topic/d" -n -r
}

check_same_plain_output() {
    local v=$1 topic="tools/same/plain/v$1"
    local flags
    for flags in "-v" "" "-v -N" "-N"; do
        # shellcheck disable=SC2086 # the flags are words
        sub_start m.out mosquitto_sub -V "$v" -q 1 -t "$topic/#" -C 3 -W "$WAIT" $flags
        local m_pid=$SUB_PID
        # shellcheck disable=SC2086
        sub_start c.out culex_sub -V "$v" -q 1 -t "$topic/#" -C 3 -W "$WAIT" $flags
        mpub -V "$v" -q 1 -t "$topic/a" -m "text payload"
        mpub -V "$v" -q 1 -t "$topic/b" -n
        printf '\000\001bin\377' | mpub -V "$v" -q 1 -t "$topic/c" -s
        sub_wait c.out
        sub_wait m.out "$m_pid"
        cmp m.out c.out || { diff <(cat -A m.out) <(cat -A c.out) || true; fail "outputs differ with '$flags'"; }
    done
}

# mosquitto_pub and culex_pub publish the same bytes: what a subscriber receives from
# each is identical (-f, -s, -l, -n, -r, -q).
check_same_publish() {
    local topic="tools/samepub"
    printf 'l1\n\nl3\n' >lines.txt
    python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4)' >bin.dat
    local tool
    for tool in mosquitto_pub culex_pub; do
        local bin=$tool
        [ "$tool" = culex_pub ] && bin=$TOOLS/culex_pub
        sub_start "$tool.out" culex_sub -q 2 -t "$topic/$tool/#" -C 7 -W "$WAIT" -F '%q %r %l %x'
        local pid=$SUB_PID
        timeout 15 "$bin" -h 127.0.0.1 -p "$P" -q 1 -t "$topic/$tool/f" -f bin.dat
        timeout 15 "$bin" -h 127.0.0.1 -p "$P" -q 2 -t "$topic/$tool/s" -s <bin.dat
        timeout 15 "$bin" -h 127.0.0.1 -p "$P" -t "$topic/$tool/l" -l <lines.txt
        timeout 15 "$bin" -h 127.0.0.1 -p "$P" -t "$topic/$tool/n" -n
        timeout 15 "$bin" -h 127.0.0.1 -p "$P" -q 1 -t "$topic/$tool/m" -m "plain" --repeat 1
        sub_wait "$tool.out" "$pid"
    done
    # One line per message; publishers of different QoS may be overtaken, so sorted.
    LC_ALL=C sort mosquitto_pub.out >m.sorted
    LC_ALL=C sort culex_pub.out >c.sorted
    cmp m.sorted c.sorted || { diff m.sorted c.sorted || true; fail "different messages"; }
}

echo
echo "== culex tools against mosquitto =="
P=$MQ_PORT
for v in 311 31 5; do
    for q in 0 1 2; do
        run_check "mosquitto-roundtrip-v$v-q$q" check_roundtrip "$v" "$q"
    done
done
run_check mosquitto-binary check_binary
run_check mosquitto-v5-properties check_v5_properties
run_check mosquitto-v5-session-expiry check_v5_session_expiry
run_check mosquitto-v5-request-response check_v5_rr
for v in 311 5; do
    run_check "mosquitto-will-v$v" check_will "$v"
done
run_check mosquitto-unix-socket check_unix_socket
run_check mosquitto-tls check_tls
run_check mosquitto-refused check_refused
run_check bad-arguments-as-mosquitto check_bad_arguments

for target in mosquitto culex; do
    echo
    echo "== mosquitto and culex tools side by side, $target broker =="
    if [ "$target" = culex ]; then
        P=$CULEX_PORT
        versions="311 31"
    else
        P=$MQ_PORT
        versions="311 31 5"
    fi
    for v in $versions; do
        run_check "$target-same-format-v$v" check_same_output "$v" fmt "$FORMAT_V3"
        run_check "$target-same-json-v$v" check_same_output "$v" json '%j'
        run_check "$target-same-json-payload-v$v" check_same_output "$v" jsonp '%J'
        run_check "$target-same-plain-v$v" check_same_plain_output "$v"
    done
    if [ "$target" = mosquitto ]; then
        run_check "$target-same-format-v5-properties" check_same_output 5 fmt5 "$FORMAT_V5"
    fi
    run_check "$target-same-publish" check_same_publish
done

echo
echo "== culex tools against culex =="
P=$CULEX_PORT
for v in 311 31; do
    for q in 0 1 2; do
        run_check "culex-roundtrip-v$v-q$q" check_roundtrip "$v" "$q"
    done
    run_check "culex-will-v$v" check_will "$v"
done
run_check culex-binary check_binary

echo
if [ "$FAILED" -ne 0 ]; then
    echo "tools interop: failed checks: ${FAILED_NAMES[*]}"
    echo "tools interop: $PASSED passed, $FAILED failed"
    exit 1
fi
echo "tools interop: $PASSED passed, 0 failed"
