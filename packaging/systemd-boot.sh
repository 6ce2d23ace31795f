#!/usr/bin/env bash
# The amd64 packages under a running systemd: a Debian 12 root file system
# (debootstrap --variant=minbase with systemd) with culex and culex-clients installed by
# dpkg, booted with systemd-nspawn (its own network namespace: loopback only), where the
# unit starts culex at boot. Checked there: the unit is active with Type=notify and runs
# as culex; a message through TCP and through a Unix socket in /run/culex
# (RuntimeDirectory=, socket 0770 for the culex group); `log_dest file` in /var/log/culex
# (LogsDirectory=) rotated by /etc/logrotate.d/culex with the file reopened; `systemctl
# reload`; SIGUSR1 saving the persistence snapshot; a bridge's default client id carrying
# the host name under ProcSubset=pid (gethostname(2)); `systemd-analyze security`; a clean
# stop. Run as root on Debian 12 after packaging/check.sh built the packages (CI: the
# package_systemd step):
#
#   bash packaging/systemd-boot.sh
#
# This machine's own PID 1 need not be systemd: nspawn runs without it (--register=no),
# and commands go into the container with nsenter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${CULEX_DEB_DIR:-$TARGET_DIR/deb}
ROOTS=$(realpath -m "$TARGET_DIR/rootfs")
MIRROR=${CULEX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST=culex-gw-7
fail() { echo "packaging/systemd-boot.sh: FAIL: $*" >&2; exit 1; }
T0=$(date +%s)
step() { echo; echo "-- $* ($(($(date +%s) - T0)) s)"; }

step "tools: debootstrap, systemd-nspawn"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v systemd-nspawn >/dev/null || fail "systemd-nspawn did not install"
broker=$(ls "$OUT"/culex_*_amd64.deb 2>/dev/null) || fail "no culex amd64 .deb in $OUT (run packaging/check.sh)"
clients=$(ls "$OUT"/culex-clients_*_amd64.deb) || fail "no culex-clients amd64 .deb"

root=$ROOTS/systemd-amd64
nspawn_pid=
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    [ "${CULEX_KEEP_ROOTFS:-0}" = 1 ] || rm -rf "$root"
}
trap cleanup EXIT

step "debootstrap bookworm (minbase + systemd)"
rm -rf "$root"
mkdir -p "$ROOTS"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser,logrotate,procps \
    bookworm "$root" "$MIRROR" >"$ROOTS/debootstrap-systemd.log" 2>&1 ||
    { tail -n 30 "$ROOTS/debootstrap-systemd.log"; fail "debootstrap"; }
echo "$(du -sm "$root" | cut -f1) MB"

step "install the packages; a test configuration in conf.d"
cp "$broker" "$clients" "$root/tmp/"
chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg -i "/tmp/$(basename "$broker")" "/tmp/$(basename "$clients")" >/dev/null
[ -L "$root/etc/systemd/system/multi-user.target.wants/culex.service" ] || fail "postinst did not enable culex.service"
echo "$HOST" >"$root/etc/hostname"    # systemd in the container sets it at boot
cat >"$root/etc/culex/conf.d/test.conf" <<'CONF'
# packaging/systemd-boot.sh: a Unix socket listener, a log file, and a bridge to this
# broker itself, whose default client id (HOSTNAME.probe) shows in the log.
listener 0 /run/culex/culex.sock
log_dest file /var/log/culex/culex.log
connection probe
address 127.0.0.1:1883
topic never/# out 0
CONF

step "boot it with systemd-nspawn"
# --keep-unit --register=no: no systemd (nor its bus) needed on this machine.
systemd-nspawn --quiet --keep-unit --register=no --private-network --hostname="$HOST" -D "$root" -b \
    >"$ROOTS/nspawn.log" 2>&1 </dev/null &
nspawn_pid=$!
leader=
for _ in $(seq 100); do
    # The container's systemd is nspawn's child (a pid namespace of its own).
    leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
    [ -n "$leader" ] && break
    kill -0 "$nspawn_pid" 2>/dev/null || { cat "$ROOTS/nspawn.log"; fail "systemd-nspawn exited"; }
    sleep 0.2
done
[ -n "$leader" ] || { cat "$ROOTS/nspawn.log"; fail "no systemd in the container"; }
inside() { nsenter --target "$leader" --mount --uts --ipc --net --pid -- "$@"; }
# systemd's private socket appears once it is up enough to answer systemctl.
for _ in $(seq 300); do inside test -S /run/systemd/private 2>/dev/null && break; sleep 0.2; done
inside test -S /run/systemd/private || { cat "$ROOTS/nspawn.log"; fail "systemd in the container did not come up"; }
state=$(timeout 90 nsenter --target "$leader" --mount --uts --ipc --net --pid -- \
    systemctl is-system-running --wait 2>&1) || true
echo "system: $state"
if [ "$(inside systemctl is-active culex.service)" != active ]; then
    inside systemctl status --no-pager culex.service || true
    inside journalctl --no-pager -u culex.service | tail -n 30 || true
    fail "culex.service is not active after boot"
fi
inside systemctl status --no-pager culex.service | head -n 12

step "the unit's broker"
main=$(inside systemctl show -p MainPID --value culex.service)
[ "$(inside ps -o user= -p "$main")" = culex ] || fail "culex runs as $(inside ps -o user= -p "$main")"
[ "$(inside systemctl show -p Type --value culex.service)" = notify ] || fail "not Type=notify"
[ "$(inside stat -c %a:%U:%G /run/culex)" = 750:culex:culex ] || fail "/run/culex: $(inside stat -c %a:%U:%G /run/culex)"
[ "$(inside stat -c %a:%U:%G /run/culex/culex.sock)" = 770:culex:culex ] ||
    fail "the socket: $(inside stat -c %a:%U:%G /run/culex/culex.sock)"
[ "$(inside stat -c %U /var/log/culex/culex.log)" = culex ] || fail "no /var/log/culex/culex.log"
echo "MainPID $main as culex; /run/culex 0750, culex.sock 0770, /var/log/culex/culex.log"

# TCP and the Unix socket.
through() {
    local how=("$@") got
    got=$(inside timeout 20 sh -c '
        culex_sub "$@" -t t/x -C 1 -W 15 & s=$!
        for i in $(seq 30); do culex_pub "$@" -t t/x -q 1 -m through; kill -0 $s 2>/dev/null || break; sleep 0.3; done
        wait $s' sh "${how[@]}") || true
    [ "$got" = through ] || fail "pub/sub through ${how[*]}: '$got'"
}
through -h 127.0.0.1 -p 1883
through --unix /run/culex/culex.sock
echo "pub/sub: over TCP and over /run/culex/culex.sock"

# The bridge's client id: gethostname(2), though ProcSubset=pid hides /proc/sys.
for _ in $(seq 50); do inside grep -q "as $HOST.probe" /var/log/culex/culex.log && break; sleep 0.2; done
inside grep -m 1 "as $HOST.probe" /var/log/culex/culex.log || {
    inside tail -n 20 /var/log/culex/culex.log
    fail "the bridge's client id is not $HOST.probe"
}

# SIGUSR1 saves the snapshot.
inside systemctl kill --kill-whom=main --signal=SIGUSR1 culex.service
for _ in $(seq 50); do inside grep -q "Saving in-memory database to /var/lib/culex/culex.db" /var/log/culex/culex.log && break; sleep 0.2; done
inside grep -q "Saving in-memory database to /var/lib/culex/culex.db" /var/log/culex/culex.log || fail "SIGUSR1: no snapshot"
inside test -s /var/lib/culex/culex.db || fail "SIGUSR1: no /var/lib/culex/culex.db"
echo "SIGUSR1: snapshot written"

# logrotate: the file is moved, culex is signalled and writes a new one.
inside logrotate -f /etc/logrotate.d/culex || fail "logrotate"
# A connection writes a line to the reopened file.
inside culex_pub -h 127.0.0.1 -p 1883 -t t/rotated -m x -i after-rotate
for _ in $(seq 50); do inside grep -q after-rotate /var/log/culex/culex.log 2>/dev/null && break; sleep 0.2; done
inside test -f /var/log/culex/culex.log.1.gz || inside test -f /var/log/culex/culex.log.1 || fail "logrotate moved nothing: $(inside ls -l /var/log/culex)"
inside grep -q after-rotate /var/log/culex/culex.log || {
    inside ls -l /var/log/culex
    inside journalctl --no-pager -u culex.service | tail -n 20
    fail "culex did not reopen its log file after logrotate"
}
[ "$(inside stat -c %U /var/log/culex/culex.log)" = culex ] || fail "the new log file is not culex's"
[ "$(inside systemctl show -p MainPID --value culex.service)" = "$main" ] || fail "logrotate restarted culex"
echo "logrotate: $(inside ls /var/log/culex | tr '\n' ' ')"

inside systemctl reload culex.service || fail "systemctl reload"
[ "$(inside systemctl is-active culex.service)" = active ] || fail "not active after reload"
echo "reload: ok"

inside systemd-analyze security --no-pager culex.service | tail -n 1

inside systemctl stop culex.service
[ "$(inside systemctl show -p Result --value culex.service)" = success ] || fail "stop: $(inside systemctl show -p Result --value culex.service)"
inside test -e /run/culex && fail "/run/culex left after stop"
echo "stop: clean; /run/culex removed"

inside systemctl poweroff || true
for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done

echo
echo "packaging/systemd-boot.sh: OK in $(($(date +%s) - T0)) s"
