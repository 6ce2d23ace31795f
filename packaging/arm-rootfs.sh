#!/usr/bin/env bash
# The ARM packages installed and run on their own architecture: for each of ARCH (arm64,
# armhf by default), a minimal Debian 12 root file system of that architecture
# (debootstrap --variant=minbase, qemu-user-static through binfmt_misc), the culex and
# culex-clients .debs installed there with dpkg (postinst makes the culex user and
# /var/lib/culex), the broker started as that user with the shipped configuration (on
# another port: the chroot shares this machine's network), and the packaged culex_sub
# and culex_pub, emulated too, passing a message through it. Run as root on Debian 12
# after packaging/check.sh built the packages (CI: the package_arm step):
#
#   bash packaging/arm-rootfs.sh [ARCH...]        ARCH: arm64, armhf
#
# Nothing is cached across runs; the root file systems go at the end (CULEX_KEEP_ROOTFS=1
# keeps them under target/rootfs/). Each is a few hundred MB, about a minute of downloads
# and a few minutes of emulated package configuration: see the durations printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${CULEX_DEB_DIR:-$TARGET_DIR/deb}
ROOTS=$(realpath -m "$TARGET_DIR/rootfs")
MIRROR=${CULEX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
fail() { echo "packaging/arm-rootfs.sh: FAIL: $*" >&2; exit 1; }
T0=$(date +%s)
step() { echo; echo "-- $* ($(($(date +%s) - T0)) s)"; }
[ "$#" -gt 0 ] || set -- arm64 armhf

step "tools: debootstrap, qemu-user-static, binfmt_misc"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || missing+=(qemu-user-static)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v debootstrap >/dev/null || fail "debootstrap did not install"
# qemu-user-static's binfmt.d files register the emulators with systemd-binfmt; without
# systemd (a container, CI's VM) they are registered here. The F flag opens the emulator
# now, so it runs inside a chroot that does not have it.
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    fail "cannot mount binfmt_misc"
for q in aarch64 arm; do
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$q" ] && continue
    conf=/usr/lib/binfmt.d/qemu-$q.conf
    [ -f "$conf" ] || fail "no $conf (qemu-user-static)"
    cat "$conf" >/proc/sys/fs/binfmt_misc/register || fail "cannot register qemu-$q"
done
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || fail "qemu-aarch64 lacks binfmt's F flag"

# The root file systems are made at the same time, one debootstrap per architecture:
# most of the time goes to dpkg's maintainer scripts under emulation, one process at a
# time in each, so two run side by side in little more than the time of one.
# CULEX_REUSE_ROOTFS=1 (with CULEX_KEEP_ROOTFS=1 before): a root kept from an earlier run,
# for working on this script; CI always makes new ones.
mkdir -p "$ROOTS"
declare -A bootstrap_pid=()
step "debootstrap bookworm (minbase + adduser) for $*, in parallel"
for arch in "$@"; do
    root=$ROOTS/$arch
    if [ "${CULEX_REUSE_ROOTFS:-0}" = 1 ] && [ -f "$root/etc/debian_version" ]; then
        echo "reusing $root"
        echo 0 >"$ROOTS/debootstrap-$arch.time"
        continue
    fi
    rm -rf "$root"
    (
        start=$(date +%s)
        debootstrap --arch="$arch" --variant=minbase --include=adduser bookworm "$root" "$MIRROR" \
            >"$ROOTS/debootstrap-$arch.log" 2>&1
        echo $(($(date +%s) - start)) >"$ROOTS/debootstrap-$arch.time"
    ) &
    bootstrap_pid[$arch]=$!
done
wait_root() {
    local pid=${bootstrap_pid[$1]:-}
    [ -z "$pid" ] && return 0
    wait "$pid" || { tail -n 30 "$ROOTS/debootstrap-$1.log"; fail "debootstrap $1"; }
}
remove_roots() {
    local a
    for a in "${!bootstrap_pid[@]}"; do kill "${bootstrap_pid[$a]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${CULEX_KEEP_ROOTFS:-0}" = 1 ] && return 0
    for a in "$@"; do umount "$ROOTS/$a/proc" 2>/dev/null || true; rm -rf "${ROOTS:?}/$a"; done
}
trap 'remove_roots "$@"' EXIT

port=18830
for arch in "$@"; do
    case $arch in
        arm64) machine=aarch64 ;;
        armhf) machine=armv7l ;;
        *) fail "unknown architecture $arch (arm64, armhf)" ;;
    esac
    broker=$(ls "$OUT"/culex_*_"$arch".deb 2>/dev/null) || fail "no culex .deb for $arch in $OUT (run packaging/check.sh)"
    clients=$(ls "$OUT"/culex-clients_*_"$arch".deb) || fail "no culex-clients .deb for $arch"
    root=$ROOTS/$arch

    step "$arch: the root file system"
    wait_root "$arch"
    echo "debootstrap $arch: $(cat "$ROOTS/debootstrap-$arch.time") s, $(du -sm "$root" | cut -f1) MB"
    [ "$(chroot "$root" uname -m)" = "$machine" ] || fail "$arch root: uname -m is $(chroot "$root" uname -m)"
    [ "$(chroot "$root" dpkg --print-architecture)" = "$arch" ] || fail "$arch root: wrong dpkg architecture"

    mount -t proc proc "$root/proc"
    cleanup() {
        local r=$1
        [ -n "${culex_pid:-}" ] && kill "$culex_pid" 2>/dev/null
        umount "$r/proc" 2>/dev/null || true
        [ "${CULEX_KEEP_ROOTFS:-0}" = 1 ] || rm -rf "$r"
    }
    trap 'cleanup "$root"; remove_roots "$@"' EXIT

    step "$arch: install the packages in the $arch root"
    cp "$broker" "$clients" "$root/tmp/"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg -i "/tmp/$(basename "$broker")" "/tmp/$(basename "$clients")"
    chroot "$root" getent passwd culex >/dev/null || fail "$arch: postinst made no culex user"
    [ "$(chroot "$root" stat -c %U:%G:%a /var/lib/culex)" = culex:culex:750 ] || fail "$arch: /var/lib/culex"
    chroot "$root" /usr/sbin/culex -t -c /etc/culex/culex.conf || fail "$arch: culex -t"

    step "$arch: the broker as culex, culex_pub and culex_sub through it"
    # The shipped configuration, on a port of its own.
    sed -i "s/^listener 1883 /listener $port /" "$root/etc/culex/culex.conf"
    ss -ltn "( sport = :$port )" | grep -q LISTEN && fail "port $port is taken"
    chroot "$root" setpriv --reuid=culex --regid=culex --init-groups --no-new-privs \
        /usr/sbin/culex -c /etc/culex/culex.conf >"$ROOTS/culex-$arch.log" 2>&1 &
    culex_pid=$!
    for _ in $(seq 100); do ss -ltn "( sport = :$port )" | grep -q LISTEN && break; sleep 0.2; done
    ss -ltnp "( sport = :$port )" | grep -q LISTEN || { cat "$ROOTS/culex-$arch.log"; fail "$arch: culex does not listen"; }
    pid=$(ss -ltnpH "( sport = :$port )" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
    # The root's culex user by number: this machine's names for uids differ.
    [ "$(ps -o uid= -p "$pid" | tr -d ' ')" = "$(chroot "$root" id -u culex)" ] ||
        fail "$arch: the broker runs as uid $(ps -o uid= -p "$pid"), not culex's $(chroot "$root" id -u culex)"
    # Under binfmt the process is the emulator running the ARM binary.
    echo "broker pid $pid, user culex: $(tr '\0' ' ' </proc/"$pid"/cmdline)"
    chroot "$root" /usr/bin/culex_sub -h 127.0.0.1 -p "$port" -t "culex/$arch" -C 1 -W 30 \
        >"$ROOTS/received-$arch" 2>&1 &
    sub_pid=$!
    got=
    for _ in $(seq 60); do
        chroot "$root" /usr/bin/culex_pub -h 127.0.0.1 -p "$port" -t "culex/$arch" -q 1 -m "hello from $arch"
        kill -0 "$sub_pid" 2>/dev/null || break
        sleep 0.5
    done
    wait "$sub_pid" || { cat "$ROOTS/received-$arch"; fail "$arch: culex_sub received nothing"; }
    got=$(cat "$ROOTS/received-$arch")
    [ "$got" = "hello from $arch" ] || fail "$arch: received '$got'"
    echo "$arch: published and received through the $arch broker: $got"
    kill -TERM "$culex_pid"
    wait "$culex_pid" || fail "$arch: culex exited with $? on SIGTERM"
    culex_pid=
    grep -q "terminating" "$ROOTS/culex-$arch.log" || { cat "$ROOTS/culex-$arch.log"; fail "$arch: no clean stop"; }
    [ -n "$(ls "$root/var/lib/culex")" ] || fail "$arch: nothing persisted in /var/lib/culex"

    step "$arch: purge"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg --purge culex culex-clients
    chroot "$root" getent passwd culex >/dev/null && fail "$arch: culex user left after purge"
    [ -e "$root/var/lib/culex" ] && fail "$arch: /var/lib/culex left after purge"
    cleanup "$root"
    trap 'remove_roots "$@"' EXIT
    port=$((port + 1))
done

echo
echo "packaging/arm-rootfs.sh: OK in $(($(date +%s) - T0)) s ($*)"
