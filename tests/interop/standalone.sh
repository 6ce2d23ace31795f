#!/usr/bin/env bash
# Issue #19 with Mosquitto's own clients: the TLS files Mosquitto users have, and the
# command line of init systems without supervision (OpenWrt, BusyBox, sysvinit):
#
#   bash tests/interop/standalone.sh BROKER_BINARY
#
# - tls-chain: certfile holds the leaf alone, signed by an intermediate that is only in
#   cafile; mosquitto_pub/sub trust the root alone (OpenSSL sends the built chain).
# - tls-v1-recipe: `man mosquitto-tls`'s recipe, whose `openssl x509 -req` makes X.509
#   version 1 server certificates on OpenSSL 3.
# - daemon: `-d` with pid_file: the command returns 0, the pid file names a running
#   process in its own session that answers mosquitto_sub, SIGTERM removes the file.
#
# Runs against culex or Mosquitto (`bash tests/interop/standalone.sh /usr/sbin/mosquitto`).
# Installs mosquitto-clients and openssl if missing; every wait is bounded.
set -euo pipefail

BROKER=$(realpath "${1:?usage: standalone.sh BROKER_BINARY}")
WAIT=5

need() {
    command -v "$1" >/dev/null 2>&1 && return
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null; }
    command -v "$1" >/dev/null 2>&1 || { echo "standalone: cannot install $2" >&2; exit 1; }
}
need mosquitto_pub mosquitto-clients
need openssl openssl

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-standalone.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
# Mosquitto started as root switches to its own user: it must read these files (and
# write the pid file).
chmod 777 "$WORK"
cd "$WORK"

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_listening() { # PORT: up to 10 s
    for _ in $(seq 1 100); do listening "$1" && return 0; sleep 0.1; done
    return 1
}

# start_broker CONF PORT: in the background, its pid in BROKER_PID.
start_broker() {
    "$BROKER" -c "$1" >"$1.log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_listening "$2" || { cat "$1.log"; return 1; }
}

# round_trip PORT MESSAGE [mosquitto client options]: a subscriber gets what is published.
round_trip() {
    local port=$1 message=$2
    shift 2
    timeout $((WAIT + 2)) mosquitto_sub -h localhost -p "$port" "$@" -t standalone/t -C 1 -W "$WAIT" >sub.out 2>&1 &
    local sub=$!
    sleep 0.5
    mosquitto_pub -h localhost -p "$port" "$@" -t standalone/t -m "$message"
    wait "$sub" || true
    [ "$(cat sub.out)" = "$message" ] || { echo "subscriber got: $(cat sub.out)"; return 1; }
}

check_tls_chain() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=standalone root" \
        -keyout root.key -out root.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=standalone intermediate" \
        -keyout inter.key -out inter.csr 2>/dev/null
    printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n' >ca.ext
    openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -CAcreateserial -days 2 \
        -extfile ca.ext -out inter.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout leaf.key -out leaf.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost\n' >leaf.ext
    openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key -CAcreateserial -days 2 \
        -extfile leaf.ext -out leaf.pem 2>/dev/null
    cat root.pem inter.pem >cas.pem
    chmod 644 ./*
    local p
    p=$(port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\ncafile %s/cas.pem\ncertfile %s/leaf.pem\nkeyfile %s/leaf.key\n' \
        "$p" "$PWD" "$PWD" "$PWD" >chain.conf
    start_broker "$PWD/chain.conf" "$p"
    round_trip "$p" chain-ok --cafile root.pem
    kill "$BROKER_PID"
}

check_tls_v1_recipe() {
    openssl req -new -x509 -days 2 -nodes -subj "/CN=recipe CA" -keyout ca.key -out ca.crt 2>/dev/null
    openssl genrsa -out server.key 2048 2>/dev/null
    openssl req -out server.csr -key server.key -new -subj "/CN=localhost" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 2>/dev/null
    openssl x509 -in server.crt -noout -text | grep -q 'Version: 1 ' ||
        { echo "openssl made a v3 certificate; this check needs v1"; return 1; }
    chmod 644 ./*
    local p
    p=$(port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\ncertfile %s/server.crt\nkeyfile %s/server.key\n' \
        "$p" "$PWD" "$PWD" >v1.conf
    start_broker "$PWD/v1.conf" "$p"
    round_trip "$p" v1-ok --cafile ca.crt
    kill "$BROKER_PID"
}

check_daemon() {
    local p pid
    p=$(port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npid_file %s/broker.pid\n' "$p" "$PWD" >d.conf
    chmod 644 d.conf
    chmod 777 .
    timeout 10 "$BROKER" -d -c "$PWD/d.conf" || { echo "-d returned $?"; return 1; }
    for _ in $(seq 1 50); do [ -s broker.pid ] && break; sleep 0.1; done
    pid=$(cat broker.pid)
    PIDS+=("$pid")
    kill -0 "$pid"
    # Out of our session (setsid): field 6 of /proc/PID/stat. glibc's daemon(3) leaves
    # it the session leader; musl's forks once more after setsid, so only the
    # difference from our own session is common to both.
    local sid own
    sid=$(cut -d' ' -f6 "/proc/$pid/stat")
    own=$(cut -d' ' -f6 /proc/self/stat)
    [ "$sid" != "$own" ] || { echo "still in the caller's session $own"; return 1; }
    # No controlling terminal: field 7 (tty_nr) is 0.
    [ "$(cut -d' ' -f7 "/proc/$pid/stat")" = 0 ] || { echo "has a controlling terminal"; return 1; }
    wait_listening "$p"
    round_trip "$p" daemon-ok
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    ! kill -0 "$pid" 2>/dev/null || { echo "still running after SIGTERM"; return 1; }
    [ ! -e broker.pid ] || { echo "pid file left after SIGTERM"; return 1; }
}

PASSED=0
FAILED=0
check() {
    local name=$1
    shift
    local rc
    mkdir "$WORK/$name"
    chmod 777 "$WORK/$name"
    # Not in an `if`: there bash ignores `set -e` inside the subshell, and a failing
    # command in the middle of a check would not fail it.
    set +e
    (
        set -ex
        cd "$WORK/$name"
        "$@"
    ) >"$WORK/check-$name.log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        echo "PASS $name"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL $name"
        sed 's/^/    | /' "$WORK/check-$name.log"
        FAILED=$((FAILED + 1))
    fi
}

echo
echo "== TLS files and the command line (issue #19) =="
check tls-chain check_tls_chain
check tls-v1-recipe check_tls_v1_recipe
check daemon check_daemon
echo "standalone: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
