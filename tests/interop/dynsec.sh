#!/usr/bin/env bash
# Dynamic security (issue #23) with Mosquitto's own tools, and files shared both ways
# with Debian's Mosquitto 2.0.11:
#
#   bash tests/interop/dynsec.sh CULEX_BINARY
#
# 1. `mosquitto_ctrl dynsec init`, then clients, a role with ACLs and a group made with
#    mosquitto_ctrl against culex; mosquitto_pub/mosquitto_sub check what each client may
#    do; culex is restarted and checked again from the file alone; disable/enable.
# 2. The file culex wrote is loaded by Mosquitto: the same checks.
# 3. A file made by Mosquitto (mosquitto_ctrl against it) is loaded by culex: the same.
# 4. Mosquitto's own 14-dynsec-* tests (../shared/mosquitto-suite) against culex.
#
# Installs mosquitto and mosquitto-clients if missing; loopback only; every wait is
# bounded; a missing tool fails the script. About 55 s (measured; 25 s of it the 15
# suite tests, the rest bounded waits for messages that must not arrive).
set -euo pipefail

CULEX=$(realpath "${1:?usage: dynsec.sh CULEX_BINARY}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WAIT=5

need() {
    command -v "$1" >/dev/null 2>&1 && return
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null; }
    command -v "$1" >/dev/null 2>&1 || { echo "dynsec: cannot install $2" >&2; exit 1; }
}
need mosquitto mosquitto
need mosquitto_ctrl mosquitto-clients
need mosquitto_pub mosquitto-clients
need python3 python3
MOSQUITTO=$(command -v mosquitto)
PLUGIN=$(dpkg -L mosquitto 2>/dev/null | grep '/mosquitto_dynamic_security\.so$' | head -n 1 || true)
[ -n "$PLUGIN" ] || PLUGIN=/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so
[ -f "$PLUGIN" ] || { echo "dynsec: Mosquitto's dynamic-security plugin not found" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-dynsec.XXXXXX")
BROKER_PID=
cleanup() {
    [ -n "$BROKER_PID" ] && { kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fail() {
    echo "dynsec: FAIL: $*" >&2
    [ -f broker.log ] && tail -n 30 broker.log >&2
    [ -f ctl.log ] && grep -v -e 'without encryption' -e 'visible on the network' -e '^$' ctl.log | tail -n 10 >&2
    exit 1
}

# start BINARY FILE: a broker on $PORT with the dynamic-security FILE; waits until it
# answers (bounded).
start() {
    local bin=$1 file=$2
    {
        echo "listener $PORT 127.0.0.1"
        echo "allow_anonymous false"
        echo "plugin $PLUGIN"
        echo "plugin_opt_config_file $file"
        # Mosquitto started as root keeps root (it writes the file next to it).
        [ "$bin" = "$MOSQUITTO" ] && echo "user root"
    } >broker.conf
    "$bin" -c broker.conf >>broker.log 2>&1 &
    BROKER_PID=$!
    local i
    for i in $(seq 1 50); do
        if mosquitto_pub -h 127.0.0.1 -p "$PORT" -u admin -P adminpw -t ping -n -q 0 2>/dev/null; then
            return
        fi
        kill -0 "$BROKER_PID" 2>/dev/null || fail "$bin did not start"
        sleep 0.1
    done
    fail "$bin did not listen on $PORT within 5 s"
}
stop() {
    kill "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
}

# Its "running without encryption" warnings go to ctl.log (shown on failure).
ctl() { mosquitto_ctrl -h 127.0.0.1 -p "$PORT" -u admin -P adminpw dynsec "$@" 2>>ctl.log; }

# Makes the users, role and group with mosquitto_ctrl against the running broker.
provision() {
    ctl createClient alice -p alicepw -c alice-id >/dev/null
    ctl createClient bob -p bobpw >/dev/null
    ctl createRole sensors >/dev/null
    ctl addRoleACL sensors publishClientSend 'sensors/#' allow 5 >/dev/null
    ctl addRoleACL sensors publishClientSend 'sensors/secret' deny 9 >/dev/null
    ctl addRoleACL sensors subscribePattern 'sensors/#' allow >/dev/null
    ctl createGroup devices >/dev/null
    ctl addGroupRole devices sensors >/dev/null
    ctl addGroupClient devices alice >/dev/null
    ctl getClient alice | grep -q devices || fail "getClient alice does not list its group"
}

# delivered USER PW ID TOPIC: a message USER publishes on TOPIC reaches admin (who reads
# everything); returns non-zero if it does not within 2 s.
delivered() {
    local user=$1 pw=$2 id=$3 topic=$4 out
    rm -f seen
    mosquitto_sub -h 127.0.0.1 -p "$PORT" -u admin -P adminpw -i observer -t "$topic" -C 1 -W 2 >seen 2>/dev/null &
    local sub=$!
    sleep 0.3
    mosquitto_pub -h 127.0.0.1 -p "$PORT" -u "$user" -P "$pw" -i "$id" -t "$topic" -m "from-$user" -q 1 ||
        fail "$user could not connect to publish"
    wait "$sub" 2>/dev/null || true
    out=$(cat seen)
    [ "$out" = "from-$user" ]
}

# may_subscribe USER PW ID FILTER: the SUBACK grants it (mosquitto_sub exits at once
# when every subscription is denied).
may_subscribe() {
    local out
    out=$(mosquitto_sub -h 127.0.0.1 -p "$PORT" -u "$1" -P "$2" -i "$3" -t "$4" -W 1 2>&1 || true)
    ! grep -qi "denied" <<<"$out"
}

connects() {
    mosquitto_pub -h 127.0.0.1 -p "$PORT" -u "$1" -P "$2" -i "$3" -t ping -n -q 0 2>/dev/null
}

# What every broker must do with the provisioned file.
check() {
    local who=$1
    delivered alice alicepw alice-id sensors/t1 || fail "$who: alice cannot publish to sensors/t1"
    ! delivered alice alicepw alice-id sensors/secret || fail "$who: the priority-9 deny did not apply"
    ! delivered alice alicepw alice-id other/t1 || fail "$who: alice published outside her ACL"
    ! delivered bob bobpw bob-id sensors/t1 || fail "$who: bob (no role) published"
    may_subscribe alice alicepw alice-id 'sensors/+' || fail "$who: alice may not subscribe sensors/+"
    ! may_subscribe alice alicepw alice-id 'other/#' || fail "$who: alice subscribed other/#"
    ! connects alice wrong alice-id || fail "$who: a wrong password was accepted"
    ! connects alice alicepw someone-else || fail "$who: alice's fixed client id was not enforced"
    connects bob bobpw bob-id || fail "$who: bob cannot connect"
    echo "dynsec: $who: ACLs, passwords and client ids as expected"
}

# ---- 1. mosquitto_ctrl against culex, then a restart -----------------------------------
mosquitto_ctrl dynsec init "$WORK/culex.json" admin adminpw >/dev/null
start "$CULEX" "$WORK/culex.json"
provision
check "culex (made with mosquitto_ctrl)"
stop
start "$CULEX" "$WORK/culex.json"
check "culex (after a restart, from the file)"
ctl disableClient alice >/dev/null
! connects alice alicepw alice-id || fail "culex: a disabled client connected"
ctl enableClient alice >/dev/null
connects alice alicepw alice-id || fail "culex: an enabled client cannot connect"
stop

# ---- 2. culex's file in Mosquitto ---------------------------------------------------------
start "$MOSQUITTO" "$WORK/culex.json"
check "Mosquitto 2.0 with culex's file"
stop

# ---- 3. Mosquitto's file in culex ---------------------------------------------------------
mosquitto_ctrl dynsec init "$WORK/mosquitto.json" admin adminpw >/dev/null
start "$MOSQUITTO" "$WORK/mosquitto.json"
provision
check "Mosquitto 2.0 (made with mosquitto_ctrl)"
stop
start "$CULEX" "$WORK/mosquitto.json"
check "culex with Mosquitto's file"
stop

# ---- 4. Mosquitto's own dynamic-security tests ---------------------------------------------
cd "$HERE/../.."
bash tests/mosquitto-suite.sh "$CULEX" --everything --only '^14-dynsec'
echo "dynsec: all checks passed"
