#!/usr/bin/env bash
# Builds the culex .deb for one Debian architecture with dpkg-deb, from the release
# binaries that cross/build.sh makes (it is run first; a no-op when they are current).
#
#   packaging/build-deb.sh amd64|arm64|armhf [OUTDIR]      (default OUTDIR: target/deb)
#
#   amd64  x86_64-unknown-linux-musl      static
#   arm64  aarch64-unknown-linux-musl     static
#   armhf  arm-unknown-linux-musleabihf   static ARMv6: Debian's armhf is ARMv7, and this
#                                         one binary runs on every 32-bit Raspberry Pi OS,
#                                         the Pi Zero and Pi 1 included
#
# Why static musl everywhere (docs/PERFORMANCE.md, "Idle RSS"): a dynamically linked
# broker maps glibc, libm, ld.so and libgcc_s, about 1.9 MB of resident pages before it
# does anything; the static musl broker is idle at about 1.9 MB in all, within the 2 MB
# target, and depends on no library version of the system it is installed on. It costs
# throughput at QoS 1 (musl's allocator; on x86_64 also its `rep movsq` memcpy, while
# ARM musl's memcpy is hand-written assembly) and stays many times Mosquitto's. A
# dynamic build still works here (set the triple below): Depends is computed from the
# binary.
#
# Why dpkg-deb and not cargo-deb: the package is a few files and three maintainer
# scripts, all here in packaging/, and dpkg-deb is on every Debian machine, while
# `cargo install cargo-deb` took 3 min 21 s on this 2-core machine, too much of CI's
# budget for what a 100-line script does. The layout follows what debhelper would make
# (dh_installsystemd's snippets, md5sums, gzipped changelog, --root-owner-group).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

arch=${1:?usage: packaging/build-deb.sh amd64|arm64|armhf [OUTDIR]}
outdir=${2:-${CARGO_TARGET_DIR:-target}/deb}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

case $arch in
    amd64) triple=x86_64-unknown-linux-musl; bindir=$TARGET_DIR/$triple/release ;;
    arm64) triple=aarch64-unknown-linux-musl; bindir=$TARGET_DIR/$triple/release ;;
    armhf) triple=arm-unknown-linux-musleabihf; bindir=$TARGET_DIR/$triple/release ;;
    *) echo "unknown architecture '$arch' (amd64, arm64, armhf)" >&2; exit 2 ;;
esac

bash cross/build.sh "$triple" >&2

upstream=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
revision=1
version="$upstream-$revision"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/culex
mkdir -p "$root/DEBIAN" "$root/usr/sbin" "$root/etc/culex/conf.d" \
    "$root/lib/systemd/system" "$root/usr/share/doc/culex" "$root/usr/share/man/man8" \
    "$root/usr/share/man/man5"

install -m 0755 "$bindir/culex" "$root/usr/sbin/culex"
# The tools, those that exist so far.
for tool in culex_pub culex_sub culex_rr culex_passwd culex_bench; do
    if [ -f "$bindir/$tool" ]; then
        mkdir -p "$root/usr/bin"
        install -m 0755 "$bindir/$tool" "$root/usr/bin/$tool"
        # Every tool has its page (lintian: no-manual-page); a missing one fails here.
        mkdir -p "$root/usr/share/man/man1"
        gzip -9n <"packaging/man/$tool.1" >"$root/usr/share/man/man1/$tool.1.gz"
        chmod 0644 "$root/usr/share/man/man1/$tool.1.gz"
    fi
done
install -m 0644 packaging/culex.conf "$root/etc/culex/culex.conf"
install -m 0644 packaging/culex.service "$root/lib/systemd/system/culex.service"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/culex/copyright"
gzip -9n <packaging/man/culex.8 >"$root/usr/share/man/man8/culex.8.gz"
chmod 0644 "$root/usr/share/man/man8/culex.8.gz"
# culex.conf(5) is generated from the option table (src/config/man.rs; `cargo test`
# fails when the checked-in page is stale).
gzip -9n <packaging/man/culex.conf.5 >"$root/usr/share/man/man5/culex.conf.5.gz"
chmod 0644 "$root/usr/share/man/man5/culex.conf.5.gz"
# The Debian changelog: one entry per upstream version, dated by the last commit so the
# package is reproducible.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
{
    echo "culex ($version) unstable; urgency=medium"
    echo
    echo "  * Upstream release $upstream."
    echo
    echo " -- culex maintainers <maintainers@users.noreply.culex.invalid>  $date"
} | gzip -9n >"$root/usr/share/doc/culex/changelog.Debian.gz"
chmod 0644 "$root/usr/share/doc/culex/changelog.Debian.gz"

for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"

# Depends: the shared libraries the broker links (none for the static armhf binary),
# with the newest glibc symbol version it uses as the minimum; adduser for postinst.
depends="adduser"
needed=$(readelf -d "$root/usr/sbin/culex" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
libc_min=$(readelf -W --dyn-syms "$root/usr/sbin/culex" | { grep -o 'GLIBC_[0-9.]*' || true; } |
    sed 's/GLIBC_//' | sort -V | tail -n 1)
for lib in $needed; do
    case $lib in
        libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux*) ;;
        libgcc_s.so.1) depends="libgcc-s1, $depends" ;;
        *) echo "culex links $lib: map it to a Debian package in $0" >&2; exit 1 ;;
    esac
done
[ -n "$needed" ] && depends="libc6 (>= $libc_min), $depends"

# Lintian overrides, each with its reason: packaging/lintian/culex for every package,
# culex.static or culex.glibc by how the broker is linked, culex.ARCH for one
# architecture.
extra=packaging/lintian/culex.$arch
[ -f "$extra" ] || extra=
if [ -n "$needed" ]; then
    extra="packaging/lintian/culex.glibc $extra"
else
    extra="packaging/lintian/culex.static $extra"
fi
mkdir -p "$root/usr/share/lintian/overrides"
cat packaging/lintian/culex $extra >"$root/usr/share/lintian/overrides/culex"
chmod 0644 "$root/usr/share/lintian/overrides/culex"

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: culex
Version: $version
Architecture: $arch
Maintainer: culex maintainers <maintainers@users.noreply.culex.invalid>
Installed-Size: $installed_size
Depends: $depends
Section: net
Priority: optional
Description: MQTT broker for edge gateways
 culex is an MQTT 3.1, 3.1.1 and 5.0 broker for edge gateways (Raspberry Pi,
 ARM LoRaWAN gateways, small industrial PCs): one thread, small and flat memory,
 and Mosquitto's configuration format, so an existing mosquitto.conf works when
 it uses the options culex supports.
 .
 This package runs it as a hardened systemd service under its own user,
 listening on the loopback addresses by default (/etc/culex/culex.conf).
CONTROL

(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print |
    sed 's|^\./||' | LC_ALL=C sort | xargs md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums"

mkdir -p "$outdir"
deb="$outdir/culex_${version}_$arch.deb"
# Reproducible: file times from the last commit.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
