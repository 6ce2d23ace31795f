#!/usr/bin/env bash
# docs/MIGRATING.md, tested: a Mosquitto configuration directory as a gateway has it (the
# Debian package's mosquitto.conf with persistence and a log file, plus conf.d/ with a
# password-protected listener, a TLS listener, an ACL file and a bridge, files owned as
# Mosquitto leaves them), first run by Mosquitto itself to show it is one, then moved to
# the installed culex package by the commands of MIGRATING.md's step 3, run as they are
# written there (extracted from the file), and brought up under culex as its unit would:
# user culex, /var/log/culex and /run/culex made for it. Then: the log file, passwords,
# the ACL, TLS, the bridge to a second broker, and a retained message across a restart.
#
#   bash tests/migrate.sh [DEB_DIR]      (default target/deb, built by packaging/check.sh)
#
# Run as root on Debian 12 without culex installed: it installs the amd64 packages, and
# purges them at the end. Loopback only; ports 1883, 8883 and 18893 must be free.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEBS=${1:-${CARGO_TARGET_DIR:-target}/deb}
fail() { echo "tests/migrate.sh: FAIL: $*" >&2; exit 1; }
T0=$(date +%s)
step() { echo; echo "-- $* ($(($(date +%s) - T0)) s)"; }

step "tools and packages"
need=()
command -v mosquitto >/dev/null || need+=(mosquitto)
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
command -v openssl >/dev/null || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
for tool in mosquitto mosquitto_passwd mosquitto_pub mosquitto_sub openssl; do
    command -v "$tool" >/dev/null || fail "$tool not found after apt-get install"
done
dpkg -s culex >/dev/null 2>&1 && fail "culex is already installed on this machine"
[ -e /etc/culex ] && fail "/etc/culex exists (left by an earlier installation?): this test would remove it"
for port in 1883 8883 18893; do
    ss -ltn "( sport = :$port )" | grep -q LISTEN && fail "port $port is taken"
done
broker_deb=$(ls "$DEBS"/culex_*_amd64.deb 2>/dev/null) || fail "no culex amd64 .deb in $DEBS (packaging/check.sh builds it)"
clients_deb=$(ls "$DEBS"/culex-clients_*_amd64.deb) || fail "no culex-clients amd64 .deb in $DEBS"

work=$(mktemp -d)
chmod 0755 "$work"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in culex culex-clients; do
        dpkg -s "$p" >/dev/null 2>&1 || continue
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$p" >/dev/null 2>&1 ||
            echo "tests/migrate.sh: could not purge $p" >&2
    done
    # What the guide copied into /etc/culex is the administrator's, which purge keeps.
    rm -rf "$work" /run/culex /etc/culex /var/lib/culex /var/log/culex
}
trap cleanup EXIT

step "a Mosquitto configuration, as a hand-built or Debian installation has it"
M=$work/etc/mosquitto
mkdir -p "$M"
cp -r /etc/mosquitto/. "$M/"     # Debian's layout: mosquitto.conf, conf.d/, certs/, ca_certificates/
sed -i "s|/etc/mosquitto|$M|g" "$M/mosquitto.conf"
grep -q '^persistence true' "$M/mosquitto.conf" || echo 'persistence true' >>"$M/mosquitto.conf"
grep -q '^log_dest file /var/log/mosquitto/mosquitto.log' "$M/mosquitto.conf" ||
    fail "Debian's mosquitto.conf changed: no log_dest file"
# A CA and a server certificate for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=migrate-ca \
    -keyout "$work/ca.key" -out "$M/ca_certificates/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$M/certs/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$M/ca_certificates/ca.crt" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$M/certs/server.crt" 2>/dev/null
mosquitto_passwd -c -b "$M/passwd" sensor sensor-pw
mosquitto_passwd -b "$M/passwd" admin admin-pw
cat >"$M/acl" <<'ACL'
user sensor
topic readwrite gw/#
topic read cmd/#

user admin
topic readwrite #
ACL
cat >"$M/conf.d/gateway.conf" <<CONF
per_listener_settings false
allow_anonymous false
password_file $M/passwd
acl_file $M/acl

listener 1883 127.0.0.1

listener 8883 127.0.0.1
certfile $M/certs/server.crt
keyfile $M/certs/server.key
cafile $M/ca_certificates/ca.crt

connection cloud
address 127.0.0.1:18893
topic gw/# out 1
CONF
# Owned as on a Mosquitto gateway: the secrets belong to the mosquitto user, 0600,
# which culex's user cannot read until the guide's chown/chmod.
chown -R root:root "$M"
chown mosquitto:mosquitto "$M/passwd" "$M/acl" "$M/certs/server.key"
chmod 0600 "$M/passwd" "$M/acl" "$M/certs/server.key"

# A second broker plays the cloud end of the bridge (the packaged binary, as nobody).
printf 'listener 18893 127.0.0.1\nallow_anonymous true\n' >"$work/cloud.conf"
chmod 0644 "$work/cloud.conf"

step "Mosquitto runs it (the directory really is a Mosquitto configuration)"
# Its pid file's directory, which Debian's unit or init script makes.
install -d -o mosquitto -g mosquitto /run/mosquitto /var/log/mosquitto
mosquitto -c "$M/mosquitto.conf" >"$work/mosquitto.out" 2>&1 &
mpid=$!
pids+=("$mpid")
for _ in $(seq 50); do ss -ltn "( sport = :8883 )" | grep -q LISTEN && break; sleep 0.1; done
mosquitto_pub -h localhost -p 8883 --cafile "$M/ca_certificates/ca.crt" -u sensor -P sensor-pw \
    -t gw/hello -m mosquitto || { cat "$work/mosquitto.out" /var/log/mosquitto/mosquitto.log 2>/dev/null | tail; fail "mosquitto does not serve the configuration"; }
kill "$mpid"; wait "$mpid" 2>/dev/null || true
echo "mosquitto served it"

step "MIGRATING.md steps 1-3: install, copy with culex's paths and owners"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$broker_deb")" "$(realpath "$clients_deb")" >/dev/null
for p in culex culex-clients; do dpkg -s "$p" >/dev/null 2>&1 || fail "$p did not install"; done
# Without systemd the package's postinst starts nothing: nothing to stop (step 2).
block=$(awk '/<!-- migrate:begin/ {on=1; next} /<!-- migrate:end/ {on=0} on' docs/MIGRATING.md |
    sed '/^```/d')
[ -n "$block" ] || fail "no migrate block in docs/MIGRATING.md"
sudo() { "$@"; }    # CI runs as root; the guide's commands say sudo
MOSQ_ETC=$M
eval "$block"
unset -f sudo
grep -v "^[[:space:]]*#" /etc/culex/culex.conf /etc/culex/conf.d/*.conf | grep "$work\|mosquitto" &&
    fail "a Mosquitto path is left in the configuration"

step "MIGRATING.md step 4: culex -t as the culex user"
setpriv --reuid=culex --regid=culex --init-groups --no-new-privs \
    /usr/sbin/culex -t -c /etc/culex/culex.conf || fail "culex -t refuses the migrated configuration"

step "MIGRATING.md step 5: the broker as its unit runs it"
setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/sbin/culex -c "$work/cloud.conf" \
    >"$work/cloud.log" 2>&1 &
pids+=($!)
start_culex() {
    # What the unit's User=, LogsDirectory= and RuntimeDirectory= provide.
    install -d -o culex -g culex -m 0750 /var/log/culex /run/culex
    (cd /var/lib/culex && exec setpriv --reuid=culex --regid=culex --init-groups --no-new-privs \
        /usr/sbin/culex -c /etc/culex/culex.conf) >"$work/culex.out" 2>&1 &
    culex_pid=$!
    pids+=("$culex_pid")
    for _ in $(seq 100); do ss -ltn "( sport = :8883 )" | grep -q LISTEN && return 0; sleep 0.1; done
    cat "$work/culex.out" /var/log/culex/culex.log 2>/dev/null | tail -n 20
    fail "culex does not listen on 8883"
}
start_culex
for _ in $(seq 50); do ss -ltn "( sport = :18893 )" | grep -q LISTEN && break; sleep 0.1; done

[ "$(stat -c %U /var/log/culex/culex.log)" = culex ] || fail "no /var/log/culex/culex.log owned by culex"
grep -q "culex version .* running" /var/log/culex/culex.log || fail "the log file lacks the start-up"
[ "$(stat -c %U /run/culex/culex.pid)" = culex ] || fail "no pid file in /run/culex"
echo "log file and pid file: ok"

sub() { mosquitto_sub -h 127.0.0.1 -p 1883 "$@"; }
pub() { mosquitto_pub -h 127.0.0.1 -p 1883 "$@"; }
# Passwords: anonymous and a wrong password are refused.
pub -t gw/x -m anon 2>/dev/null && fail "an anonymous client was accepted"
pub -u sensor -P wrong -t gw/x -m bad 2>/dev/null && fail "a wrong password was accepted"
echo "passwords: anonymous and a wrong password refused"

# The ACL: admin sees sensor's gw/ message, not its cmd/ one (sensor may only read cmd/#).
sub -u admin -P admin-pw -t '#' -v -W 4 >"$work/admin.txt" 2>/dev/null &
sub_pid=$!
sleep 0.5
pub -u sensor -P sensor-pw -t cmd/reboot -q 1 -m "denied"
pub -u sensor -P sensor-pw -t gw/acl -q 1 -m "allowed"
wait "$sub_pid" || true
grep -qx "gw/acl allowed" "$work/admin.txt" || fail "admin did not get gw/acl: $(cat "$work/admin.txt")"
grep -q "cmd/reboot" "$work/admin.txt" && fail "the ACL let sensor publish to cmd/reboot"
echo "acl: gw/acl delivered, cmd/reboot denied"

# TLS with the migrated certificate, and the bridge to the cloud broker.
mosquitto_sub -h 127.0.0.1 -p 18893 -t 'gw/#' -v -C 1 -W 15 >"$work/cloud.txt" &
cloud_sub=$!
sleep 0.3
for _ in $(seq 20); do
    mosquitto_pub -h localhost -p 8883 --cafile /etc/culex/ca_certificates/ca.crt -u sensor -P sensor-pw \
        -t gw/temp -q 1 -m 21.5 || fail "TLS publish to the migrated 8883 listener"
    kill -0 "$cloud_sub" 2>/dev/null || break
    sleep 0.5
done
wait "$cloud_sub" || fail "the bridge did not carry gw/temp to the cloud broker"
[ "$(cat "$work/cloud.txt")" = "gw/temp 21.5" ] || fail "cloud got '$(cat "$work/cloud.txt")'"
echo "tls and bridge: gw/temp over TLS reached the cloud broker"

# Persistence in /var/lib/culex: a retained message across a restart.
pub -u admin -P admin-pw -t gw/state -r -q 1 -m kept
kill -TERM "$culex_pid"; wait "$culex_pid" || fail "culex exited with $? on SIGTERM"
start_culex
got=$(sub -u admin -P admin-pw -t gw/state -C 1 -W 5) || true
[ "$got" = kept ] || fail "retained message after the restart: '$got'"
ls /var/lib/culex/culex.db >/dev/null || fail "no culex.db in /var/lib/culex"
echo "persistence: the retained message survived a restart"

echo
echo "tests/migrate.sh: OK in $(($(date +%s) - T0)) s"
