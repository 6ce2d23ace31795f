# Helpers the interop scripts share. Source it after defining die() and WORK (a scratch
# directory), with PIDS=() that the script's cleanup trap stops:
#
#   . "$HERE/lib.sh"
# shellcheck shell=bash

# A port nothing listens on now (the kernel's pick, on 127.0.0.1).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT [SECONDS [PID NAME]]: until something listens on PORT (10 s by
# default); with PID, a process that exits first ends the wait at once and its log,
# $WORK/NAME.log, is shown.
wait_port() {
    local port=$1 seconds=${2:-10} pid=${3:-} name=${4:-} _
    for _ in $(seq 1 $((seconds * 10))); do
        port_open "$port" && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            cat "$WORK/$name.log" >&2
            die "$name exited before listening on $port"
        fi
        sleep 0.1
    done
    if [ -n "$name" ]; then cat "$WORK/$name.log" >&2; fi
    die "${name:-nothing} did not listen on $port within $seconds s"
}

# spawn NAME PORT COMMAND...: COMMAND in the background, its output appended to
# $WORK/NAME.log, its pid added to PIDS and left in LAST_PID; returns once PORT listens
# (SPAWN_WAIT seconds at most, 10 by default).
LAST_PID=
spawn() {
    local name=$1 port=$2
    shift 2
    "$@" >>"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_port "$port" "${SPAWN_WAIT:-10}" "$LAST_PID" "$name"
}

# stop_pid PID: SIGTERM, up to 5 s to go, then SIGKILL; reaped.
stop_pid() {
    local pid=$1 _
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

PASSED=0
FAILED=0
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }

# summary LABEL: the counts, and a failure status when a check failed.
summary() {
    echo "$1: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
