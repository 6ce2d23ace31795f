#!/usr/bin/env bash
# CI for the packages: build the .debs (culex and culex-clients), check their contents,
# metadata, generated copyright and lintian, install the amd64 ones on this machine (the
# clients first, alone: they must start no broker), run the installed broker as the culex
# user with the shipped configuration, publish and receive a message through it, then
# remove and purge it and check what is left. Run as root on Debian 12 (CI runs it from
# .ci/run):
#
#   bash packaging/check.sh
#
# amd64 and arm64 are always built; armhf (the static ARMv6 binary) with
# CULEX_CHECK_ARMV6=1, which also makes `cross/setup.sh` install nightly and zig
# (several minutes more on a fresh machine: see cross/README.md). The choice is explicit
# so that CI does the same work on every machine, whatever was installed before.
# Installing and running the ARM packages on their own architecture is
# packaging/arm-rootfs.sh; under systemd, packaging/systemd-boot.sh.
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

arches=(${CULEX_CHECK_ARCHES:-amd64 arm64})
if [ "${CULEX_CHECK_ARMV6:-0}" = 1 ]; then
    arches+=(armhf)
else
    echo "armhf skipped: set CULEX_CHECK_ARMV6=1 to build it (nightly, zig; slow the first time)"
fi

step "toolchains and tools"
bash cross/setup.sh deb "${arches[@]}"
missing=()
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v logrotate >/dev/null || missing+=(logrotate)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# has DEB PATH...: each path is in the package's listing.
# (Not `grep -q` after a producer: under pipefail, grep -q leaving at the first match
# can kill the producer with SIGPIPE and fail the pipeline; grep >/dev/null reads all.)
has() {
    local deb=$1 path
    shift
    for path in "$@"; do
        awk '{print $6}' "$OUT/contents-$(basename "$deb" .deb).txt" | grep -x "$path" >/dev/null ||
            fail "$deb lacks $path"
    done
}

step "build and inspect ${arches[*]}"
for arch in "${arches[@]}"; do
    mkdir -p "$OUT"
    debs=$(CULEX_ARTIFACTS=$OUT/artifacts-$arch.json bash packaging/build-deb.sh "$arch" "$OUT")
    broker=$(echo "$debs" | sed -n 1p)
    clients=$(echo "$debs" | sed -n 2p)
    for deb in $broker $clients; do
        echo "== $deb ($(stat -c %s "$deb") bytes)"
        dpkg-deb -I "$deb"
        dpkg-deb -c "$deb" | tee "$OUT/contents-$(basename "$deb" .deb).txt"
        [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || fail "$deb: wrong Architecture"
        [ "$(dpkg-deb -f "$deb" Multi-Arch)" = foreign ] || fail "$deb: not Multi-Arch: foreign"
        [ -n "$(dpkg-deb -f "$deb" Homepage)" ] || fail "$deb: no Homepage"
        pkg=$(dpkg-deb -f "$deb" Package)
        has "$deb" "./usr/share/doc/$pkg/copyright" "./usr/share/doc/$pkg/changelog.Debian.gz" \
            "./usr/share/doc/$pkg/changelog.gz"
        # The generated copyright names every crate the build linked for this target.
        tmp=$(mktemp -d)
        dpkg-deb -x "$deb" "$tmp"
        python3 packaging/copyright.py --check "$OUT/artifacts-$arch.json" \
            "$tmp/usr/share/doc/$pkg/copyright"
        # The binaries inside are for the package's architecture.
        for bin in "$tmp"/usr/sbin/* "$tmp"/usr/bin/*; do
            [ -f "$bin" ] || continue
            machine=$(readelf -h "$bin" | sed -n 's/ *Machine: *//p')
            case $arch:$machine in
                amd64:*X86-64* | arm64:AArch64 | armhf:ARM) ;;
                *) fail "$deb carries $(basename "$bin") for '$machine'" ;;
            esac
        done
        rm -rf "$tmp"
        # Errors and warnings fail; every override in packaging/lintian/ says why.
        lintian --fail-on error,warning "$deb" 2>&1 | grep -v 'running with root privileges' || true
        lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || fail "lintian: $deb"
    done
    [ "$(dpkg-deb -f "$broker" Package)" = culex ] || fail "$broker: wrong Package"
    [ "$(dpkg-deb -f "$clients" Package)" = culex-clients ] || fail "$clients: wrong Package"
    [ "$(dpkg-deb -f "$broker" Recommends)" = culex-clients ] || fail "$broker: no Recommends: culex-clients"
    has "$broker" ./usr/sbin/culex ./usr/bin/culex_passwd ./etc/culex/culex.conf ./etc/culex/conf.d/ \
        ./etc/logrotate.d/culex ./lib/systemd/system/culex.service ./usr/share/man/man8/culex.8.gz \
        ./usr/share/man/man5/culex.conf.5.gz ./usr/share/man/man1/culex_passwd.1.gz \
        ./usr/share/culex/dashboard/index.html ./usr/share/culex/dashboard/dashboard.js \
        ./usr/share/culex/dashboard/README
    has "$clients" ./usr/bin/culex_pub ./usr/bin/culex_sub ./usr/bin/culex_rr ./usr/bin/culex_bench \
        ./usr/share/man/man1/culex_sub.1.gz
    for tool in culex_pub culex_sub culex_rr culex_bench; do
        awk '{print $6}' "$OUT/contents-$(basename "$broker" .deb).txt" | grep -x "./usr/bin/$tool" >/dev/null &&
            fail "$broker carries $tool, which belongs to culex-clients"
    done
    awk '$6 == "./usr/sbin/culex" {print $1}' "$OUT/contents-$(basename "$broker" .deb).txt" |
        grep -qx -- '-rwxr-xr-x' || fail "$broker: /usr/sbin/culex is not 0755"
    for conffile in /etc/culex/culex.conf /etc/logrotate.d/culex; do
        dpkg-deb --ctrl-tarfile "$broker" | tar -xO ./conffiles | grep -x "$conffile" >/dev/null ||
            fail "$broker: $conffile is not a conffile"
    done
done

step "install culex-clients alone: no broker, no user"
dpkg -s culex >/dev/null 2>&1 && fail "culex is already installed on this machine"
clients=$(ls "$OUT"/culex-clients_*_amd64.deb)
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$clients")"
getent passwd culex >/dev/null && fail "culex-clients created the culex user"
[ -e /usr/sbin/culex ] && fail "culex-clients installed the broker"
help=$(/usr/bin/culex_sub --help 2>&1 || true)    # exits 1, as mosquitto_sub --help
grep -q -- '-t topic' <<<"$help" || fail "culex_sub --help: $help"
echo "culex-clients: $(dpkg-query -W -f='${Version}' culex-clients), tools: $(ls /usr/bin/culex_* | tr '\n' ' ')"

step "install the amd64 broker package"
deb=$(ls "$OUT"/culex_*_amd64.deb)
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$deb")"
getent passwd culex || fail "no culex user"
# The logrotate snippet parses (its `su culex culex` needs the user).
out=$(logrotate -d /etc/logrotate.d/culex 2>&1) || fail "logrotate: $out"
echo "$out" | grep -q '^error' && fail "logrotate: $out"
echo "logrotate: /etc/logrotate.d/culex parses"
[ "$(stat -c %U:%G:%a /var/lib/culex)" = culex:culex:750 ] || fail "/var/lib/culex: $(stat -c %U:%G:%a /var/lib/culex)"
[ -d /etc/culex/conf.d ] || fail "no /etc/culex/conf.d"
# Both man pages installed and well-formed (a machine whose dpkg excludes
# /usr/share/man, as some container images do, fails here: say so rather than skip).
for page in /usr/share/man/man8/culex.8.gz /usr/share/man/man5/culex.conf.5.gz; do
    [ -f "$page" ] || fail "$page not installed (is /usr/share/man excluded in /etc/dpkg/dpkg.cfg.d?)"
    warnings=$(zcat "$page" | groff -man -ww -z 2>&1) || fail "$page: groff failed"
    [ -z "$warnings" ] || fail "$page: $warnings"
done
zcat /usr/share/man/man5/culex.conf.5.gz | grep -x '\.B max_queued_messages' >/dev/null ||
    fail "culex.conf(5) lacks max_queued_messages"
echo "man pages: culex(8), culex.conf(5)"

if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify"
    out=$(systemd-analyze verify /lib/systemd/system/culex.service 2>&1 || true)
    echo "${out:-clean}"
    systemd-analyze security --offline=true --no-pager /lib/systemd/system/culex.service | tail -n 1
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
# READY=1, STATUS= lines (clients and bridges, #22), STOPPING=1: until the last.
while True:
    msg = s.recv(4096).decode()
    print(msg, flush=True)
    if "STOPPING=1" in msg:
        break
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
# A clean stop leaves the whole state in the snapshot (culex.db), owned by culex.
[ "$(stat -c %U /var/lib/culex/culex.db)" = culex ] ||
    fail "no culex.db owned by culex in /var/lib/culex: $(ls -la /var/lib/culex)"
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
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq culex-clients
[ -e /usr/bin/culex_pub ] && fail "/usr/bin/culex_pub left after purging culex-clients"
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
        / | /etc/ | /etc/logrotate.d/ | /lib/ | /lib/systemd/ | /lib/systemd/system/ | /usr/* ) continue ;;
    esac
    [ -e "$path" ] && left+=("$path")
done < <(awk '{print $6}' "$OUT"/contents-culex_*_amd64.txt)
for path in /var/lib/culex /var/log/culex /etc/logrotate.d/culex /etc/culex /usr/sbin/culex /lib/systemd/system/culex.service \
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
