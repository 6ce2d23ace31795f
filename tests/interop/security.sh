#!/usr/bin/env bash
# TLS, password file, ACL and SIGHUP reload, with Mosquitto's own tools as the clients:
#
#   bash tests/interop/security.sh BROKER_BINARY
#
# Certificates come from openssl, the password file from Debian's mosquitto_passwd, and
# mosquitto_pub/mosquitto_sub connect with --cafile/--cert/--key and -u/-P. Runs against
# culex or Mosquitto (`bash tests/interop/security.sh /usr/sbin/mosquitto`). Installs
# what it needs (mosquitto, mosquitto-clients, openssl) if missing; every wait is bounded.
set -euo pipefail

BROKER=$(realpath "${1:?usage: security.sh BROKER_BINARY}")
WAIT=5
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

need() {
    command -v "$1" >/dev/null 2>&1 && return
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null; }
    command -v "$1" >/dev/null 2>&1 || { echo "security: cannot install $2" >&2; exit 1; }
}
need mosquitto_passwd mosquitto
need mosquitto_pub mosquitto-clients
need openssl openssl

WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-security.XXXXXX")
BROKER_PID=
SUBS=()
cleanup() {
    for pid in "${SUBS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "$BROKER_PID" ] && { kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
# Mosquitto started as root switches to its own user: it must read these files.
chmod 755 "$WORK"
cd "$WORK"

# ---- a CA, a server certificate for 127.0.0.1, a client certificate -------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=interop CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=sensor-7" \
    -keyout client.key -out client.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile client.ext -out client.pem 2>/dev/null

# ---- users and rules -------------------------------------------------------------------
mosquitto_passwd -b -c passwd alice wonderland
mosquitto_passwd -b passwd bob builder
cat >acl <<'EOF'
user alice
topic readwrite sensors/#
topic readwrite secret/#

user bob
topic readwrite sensors/#
topic read secret/#

# carol has rules before she has a password: the reload adds her to the password file.
user carol
topic write sensors/#
EOF
chmod 644 ./*

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TLS_PORT=$(port)
MTLS_PORT=$(port)
cat >broker.conf <<EOF
allow_anonymous false
password_file $WORK/passwd
acl_file $WORK/acl

listener $TLS_PORT 127.0.0.1
certfile $WORK/server.pem
keyfile $WORK/server.key

listener $MTLS_PORT 127.0.0.1
certfile $WORK/server.pem
keyfile $WORK/server.key
cafile $WORK/ca.pem
require_certificate true
EOF
chmod 644 broker.conf

"$BROKER" -c "$WORK/broker.conf" >broker.log 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MTLS_PORT") 2>/dev/null && break
    kill -0 "$BROKER_PID" 2>/dev/null || { cat broker.log >&2; echo "security: broker exited" >&2; exit 1; }
    sleep 0.1
done

PASSED=0
FAILED=0
check() {
    local name=$1
    shift
    if (set -x; "$@") >"check-$name.log" 2>&1; then
        echo "PASS $name"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL $name"
        sed 's/^/    | /' "check-$name.log"
        FAILED=$((FAILED + 1))
    fi
}

tls() { echo -h 127.0.0.1 -p "$TLS_PORT" --cafile "$WORK/ca.pem"; }
# shellcheck disable=SC2046
sub_bg() { # OUT USER PASS TOPIC [COUNT]: a subscriber in the background
    timeout $((WAIT * 3)) mosquitto_sub $(tls) -u "$2" -P "$3" -t "$4" -C "${5:-1}" -W $((WAIT * 3)) >"$1" 2>&1 &
    SUBS+=($!)
    sleep 0.5
}

check_tls_and_password() {
    sub_bg tls.out alice wonderland sensors/t 1
    mosquitto_pub $(tls) -u alice -P wonderland -t sensors/t -m over-tls
    wait "${SUBS[-1]}"
    grep -qx over-tls tls.out
}

# One 50 MB QoS 1 message over TLS, read by mosquitto_sub (culex used to cut off a
# subscriber whose unsent output passed 16 MiB, even for a single message).
check_tls_50mb_message() {
    head -c 50000000 /dev/urandom >big.bin
    # shellcheck disable=SC2046
    timeout $((WAIT * 6)) mosquitto_sub $(tls) -u alice -P wonderland -t sensors/big -q 1 \
        -C 1 -W $((WAIT * 6)) >big.out 2>big.err &
    local pid=$!
    sleep 0.5
    # shellcheck disable=SC2046
    mosquitto_pub $(tls) -u alice -P wonderland -t sensors/big -q 1 -f big.bin
    wait "$pid" || { cat big.err; return 1; }
    cmp <(head -c 50000000 big.out) big.bin
    rm -f big.bin big.out
}

check_wrong_password_is_refused() {
    if mosquitto_pub $(tls) -u alice -P wrong -t sensors/t -m x 2>err.out; then
        echo "a wrong password was accepted"; return 1
    fi
    grep -qi "not authori[sz]ed" err.out
}

check_client_certificate() {
    timeout $((WAIT * 3)) mosquitto_sub -h 127.0.0.1 -p "$MTLS_PORT" --cafile ca.pem \
        --cert client.pem --key client.key -u alice -P wonderland -t sensors/m -C 1 \
        -W $((WAIT * 3)) >mtls.out 2>&1 &
    local pid=$!
    sleep 0.5
    mosquitto_pub -h 127.0.0.1 -p "$MTLS_PORT" --cafile ca.pem --cert client.pem \
        --key client.key -u bob -P builder -t sensors/m -m with-cert
    wait "$pid"
    grep -qx with-cert mtls.out
    if mosquitto_pub -h 127.0.0.1 -p "$MTLS_PORT" --cafile ca.pem -u bob -P builder \
        -t sensors/m -m no-cert 2>/dev/null; then
        echo "a client without a certificate was accepted"; return 1
    fi
}

check_acl() {
    sub_bg acl.out alice wonderland 'secret/#' 1
    # bob may read secret/# but not write it: his message is dropped.
    mosquitto_pub $(tls) -u bob -P builder -t secret/plan -m from-bob -q 1
    mosquitto_pub $(tls) -u alice -P wonderland -t secret/plan -m from-alice -q 1
    wait "${SUBS[-1]}"
    grep -qx from-alice acl.out
    ! grep -q from-bob acl.out
}

check_reload_keeps_clients() {
    # A subscriber stays connected across SIGHUP; a user added to the file works after it.
    sub_bg reload.out alice wonderland sensors/r 2
    mosquitto_pub $(tls) -u alice -P wonderland -t sensors/r -m before
    mosquitto_passwd -b "$WORK/passwd" carol newcomer
    chmod 644 "$WORK/passwd"
    kill -HUP "$BROKER_PID"
    local ok=
    for _ in $(seq 1 30); do
        mosquitto_pub $(tls) -u carol -P newcomer -t sensors/r -m after 2>/dev/null && { ok=1; break; }
        sleep 0.2
    done
    [ -n "$ok" ] || { echo "carol could not connect after the reload"; return 1; }
    wait "${SUBS[-1]}"
    [ "$(cat reload.out)" = "$(printf 'before\nafter')" ]
}

fingerprint() {
    openssl s_client -connect "127.0.0.1:$TLS_PORT" -CAfile "$WORK/ca.pem" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null
}

check_sighup_reloads_certificates() {
    # A renewed server certificate is served to new connections after SIGHUP.
    local before after
    before=$(fingerprint)
    [ -n "$before" ] || { echo "no certificate served"; return 1; }
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$WORK/new.key" -out "$WORK/new.csr" 2>/dev/null
    openssl x509 -req -in "$WORK/new.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
        -CAcreateserial -days 2 -extfile "$WORK/server.ext" -out "$WORK/new.pem" 2>/dev/null
    chmod 644 "$WORK/new.pem" "$WORK/new.key"
    mv "$WORK/new.pem" "$WORK/server.pem"
    mv "$WORK/new.key" "$WORK/server.key"
    kill -HUP "$BROKER_PID"
    for _ in $(seq 1 30); do
        after=$(fingerprint)
        [ -n "$after" ] && [ "$after" != "$before" ] && break
        sleep 0.2
    done
    echo "before: $before"
    echo "after:  $after"
    [ -n "$after" ] && [ "$after" != "$before" ]
    mosquitto_pub $(tls) -u alice -P wonderland -t sensors/t -m with-new-certificate
}

check tls-password check_tls_and_password
check tls-wrong-password check_wrong_password_is_refused
check tls-50mb-message check_tls_50mb_message
check mtls-client-certificate check_client_certificate
check acl-write-and-read check_acl
check sighup-reload-keeps-clients check_reload_keeps_clients
check sighup-reloads-certificates check_sighup_reloads_certificates

kill -0 "$BROKER_PID" 2>/dev/null || { cat broker.log >&2; echo "security: broker died" >&2; exit 1; }
echo "security: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
