#!/usr/bin/env bash
# CI for the packages: build the .debs, check their contents and metadata, install the
# amd64 one on this machine, run the installed broker as the culex user with the shipped
# configuration, publish and receive a message through it, then remove and purge it and
# check what is left. Run as root on Debian 12 (CI runs it from .ci/run):
#
#   bash packaging/check.sh
#
# amd64 and arm64 are always built (cross/setup.sh installs the toolchain); armhf (the
# static ARMv6 binary) with CULEX_CHECK_ARMV6=1, which also runs `cross/setup.sh armv6`
# (several minutes more on a fresh machine: see cross/README.md). The choice is explicit
# so that CI does the same work on every machine, whatever was installed before.
#
# The machine must not have culex installed already (it is purged at the end), and
# port 1883 of the loopback addresses must be free: the shipped configuration is what runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=$TARGET_DIR/deb
PORT=1883
step() { echo; echo "-- $* ($(($(date +%s) - T0)) s)"; }
fail() { echo "packaging/check.sh: FAIL: $*" >&2; exit 1; }
T0=$(date +%s)

step "toolchains and tools"
setup_args=(deb)
[ "${CULEX_CHECK_ARMV6:-0}" = 1 ] && setup_args+=(armv6)
bash cross/setup.sh "${setup_args[@]}"
command -v mosquitto_pub >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto-clients
}
arches=(amd64 arm64)
if [ "${CULEX_CHECK_ARMV6:-0}" = 1 ]; then
    arches+=(armhf)
else
    echo "armhf skipped: set CULEX_CHECK_ARMV6=1 to build it (nightly, zig; slow the first time)"
fi

step "build and inspect ${arches[*]}"
for arch in "${arches[@]}"; do
    deb=$(bash packaging/build-deb.sh "$arch" "$OUT")
    echo "== $deb ($(stat -c %s "$deb") bytes)"
    dpkg-deb -I "$deb"
    dpkg-deb -c "$deb" | tee "$OUT/contents-$arch.txt"
    [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || fail "$deb: wrong Architecture"
    [ "$(dpkg-deb -f "$deb" Package)" = culex ] || fail "$deb: wrong Package"
    for path in ./usr/sbin/culex ./etc/culex/culex.conf ./etc/culex/conf.d/ \
        ./lib/systemd/system/culex.service ./usr/share/doc/culex/copyright \
        ./usr/share/doc/culex/changelog.Debian.gz ./usr/share/man/man8/culex.8.gz \
        ./usr/share/man/man5/culex.conf.5.gz; do
        awk '{print $6}' "$OUT/contents-$arch.txt" | grep -qx "$path" || fail "$deb lacks $path"
    done
    awk '$6 == "./usr/sbin/culex" {print $1}' "$OUT/contents-$arch.txt" | grep -qx -- '-rwxr-xr-x' ||
        fail "$deb: /usr/sbin/culex is not 0755"
    dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/culex/culex.conf ||
        fail "$deb: /etc/culex/culex.conf is not a conffile"
    # The binary inside is for the package's architecture.
    tmp=$(mktemp -d)
    dpkg-deb -x "$deb" "$tmp"
    machine=$(readelf -h "$tmp/usr/sbin/culex" | sed -n 's/ *Machine: *//p')
    rm -rf "$tmp"
    case $arch:$machine in
        amd64:*X86-64* | arm64:AArch64 | armhf:ARM) echo "binary: $machine" ;;
        *) fail "$deb carries a binary for '$machine'" ;;
    esac
    # Errors and warnings fail; every override in packaging/lintian/ says why.
    lintian --fail-on error,warning "$deb" 2>&1 | grep -v 'running with root privileges' || true
    lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || fail "lintian: $deb"
done

step "install the amd64 package"
deb=$OUT/culex_$(dpkg-deb -f "$OUT"/culex_*_amd64.deb Version)_amd64.deb
dpkg -s culex >/dev/null 2>&1 && fail "culex is already installed on this machine"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$deb")"
getent passwd culex || fail "no culex user"
[ "$(stat -c %U:%G:%a /var/lib/culex)" = culex:culex:750 ] || fail "/var/lib/culex: $(stat -c %U:%G:%a /var/lib/culex)"
[ -d /etc/culex/conf.d ] || fail "no /etc/culex/conf.d"
# Both man pages installed and well-formed (a machine whose dpkg excludes
# /usr/share/man, as some container images do, fails here: say so rather than skip).
for page in /usr/share/man/man8/culex.8.gz /usr/share/man/man5/culex.conf.5.gz; do
    [ -f "$page" ] || fail "$page not installed (is /usr/share/man excluded in /etc/dpkg/dpkg.cfg.d?)"
    warnings=$(zcat "$page" | groff -man -ww -z 2>&1) || fail "$page: groff failed"
    [ -z "$warnings" ] || fail "$page: $warnings"
done
zcat /usr/share/man/man5/culex.conf.5.gz | grep -qx '\.B max_queued_messages' ||
    fail "culex.conf(5) lacks max_queued_messages"
echo "man pages: culex(8), culex.conf(5)"

if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify"
    out=$(systemd-analyze verify /lib/systemd/system/culex.service 2>&1 || true)
    echo "${out:-clean}"
    [ -z "$out" ] || fail "systemd-analyze verify found problems"
fi

step "the installed broker, as the culex user"
/usr/sbin/culex -t -c /etc/culex/culex.conf
ss -ltn "( sport = :$PORT )" | grep -q LISTEN && fail "port $PORT is taken on this machine"
work=$(mktemp -d)
chmod 0755 "$work"
# A stand-in for systemd's NOTIFY_SOCKET: receives what culex sends and prints it.
python3 - "$work/notify" >"$work/notify.log" 2>&1 <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.settimeout(30)
for _ in range(2):
    print(s.recv(4096).decode(), flush=True)
PY
notify_pid=$!
for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$work/notify setpriv --reuid=culex --regid=culex --init-groups --no-new-privs \
    /usr/sbin/culex -c /etc/culex/culex.conf >"$work/culex.log" 2>&1 &
culex_pid=$!
for _ in $(seq 100); do grep -q READY=1 "$work/notify.log" && break; sleep 0.1; done
grep -q READY=1 "$work/notify.log" || { cat "$work/culex.log"; fail "no READY=1 from culex"; }
echo "sd_notify: READY=1 received"
[ "$(ps -o user= -p "$culex_pid")" = culex ] || fail "culex does not run as the culex user"

mosquitto_sub -h 127.0.0.1 -p "$PORT" -t culex/check -C 1 -W 10 >"$work/received" &
sub_pid=$!
# Publish until the subscriber has its message (it may not be subscribed yet).
for _ in $(seq 50); do
    mosquitto_pub -h 127.0.0.1 -p "$PORT" -t culex/check -q 1 -m "hello from the .deb"
    kill -0 "$sub_pid" 2>/dev/null || break
    sleep 0.2
done
wait "$sub_pid" || fail "mosquitto_sub received nothing"
[ "$(cat "$work/received")" = "hello from the .deb" ] || fail "received '$(cat "$work/received")'"
echo "published and received: $(cat "$work/received")"

kill -TERM "$culex_pid"
wait "$culex_pid" || fail "culex exited with $? on SIGTERM"
wait "$notify_pid" || true
grep -q STOPPING=1 "$work/notify.log" || fail "no STOPPING=1 from culex"
echo "sd_notify: STOPPING=1 received; broker log:"
cat "$work/culex.log"

step "persistence under /var/lib/culex survives a restart"
[ "$(stat -c %U /var/lib/culex/culex.db.journal)" = culex ] ||
    fail "no journal owned by culex in /var/lib/culex: $(ls -la /var/lib/culex)"
setpriv --reuid=culex --regid=culex --init-groups --no-new-privs \
    /usr/sbin/culex -c /etc/culex/culex.conf >"$work/culex2.log" 2>&1 &
culex_pid=$!
for _ in $(seq 50); do ss -ltn "( sport = :$PORT )" | grep -q LISTEN && break; sleep 0.1; done
mosquitto_pub -h 127.0.0.1 -p "$PORT" -t culex/retained -q 1 -r -m "kept across restarts"
kill -KILL "$culex_pid"; wait "$culex_pid" 2>/dev/null || true
setpriv --reuid=culex --regid=culex --init-groups --no-new-privs \
    /usr/sbin/culex -c /etc/culex/culex.conf >>"$work/culex2.log" 2>&1 &
culex_pid=$!
for _ in $(seq 50); do ss -ltn "( sport = :$PORT )" | grep -q LISTEN && break; sleep 0.1; done
got=$(mosquitto_sub -h 127.0.0.1 -p "$PORT" -t culex/retained -C 1 -W 5) || true
kill -TERM "$culex_pid"; wait "$culex_pid" || true
[ "$got" = "kept across restarts" ] || { cat "$work/culex2.log"; fail "retained message after kill -9: '$got'"; }
echo "retained message after kill -9 and restart: $got"
rm -rf "$work"

step "remove keeps the configuration and the state; purge removes them"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq culex
[ ! -e /usr/sbin/culex ] || fail "/usr/sbin/culex left after remove"
[ -f /etc/culex/culex.conf ] || fail "remove deleted the conffile"
[ -d /var/lib/culex ] || fail "remove deleted /var/lib/culex"
getent passwd culex >/dev/null || fail "remove deleted the culex user"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq culex
dpkg -s culex >/dev/null 2>&1 && fail "culex still known to dpkg after purge"
left=()
while read -r path; do
    path=${path#.}
    case $path in
        / | /etc/ | /lib/ | /lib/systemd/ | /lib/systemd/system/ | /usr/* ) continue ;;
    esac
    [ -e "$path" ] && left+=("$path")
done < <(awk '{print $6}' "$OUT/contents-amd64.txt")
for path in /var/lib/culex /etc/culex /usr/sbin/culex /lib/systemd/system/culex.service \
    /usr/share/doc/culex /etc/systemd/system/multi-user.target.wants/culex.service \
    /etc/systemd/system/culex.service /var/lib/systemd/deb-systemd-helper-enabled/culex.service \
    /var/lib/systemd/deb-systemd-helper-masked/culex.service; do
    [ -e "$path" ] && left+=("$path")
done
[ "${#left[@]}" -eq 0 ] || fail "left after purge: ${left[*]}"
getent passwd culex >/dev/null && fail "culex user left after purge"
getent group culex >/dev/null && fail "culex group left after purge"
echo "nothing left after purge"

echo
echo "packaging/check.sh: OK in $(($(date +%s) - T0)) s (${arches[*]})"
