#!/usr/bin/env bash
# Builds the two culex .debs for one Debian architecture with dpkg-deb, from the release
# binaries that cross/build.sh makes (it is run first; a no-op when they are current):
#
#   culex           the broker, culex_passwd, /etc/culex, the systemd unit, logrotate;
#                   Recommends culex-clients (as mosquitto and mosquitto-clients)
#   culex-clients   culex_pub, culex_sub, culex_rr, culex_bench: installing them starts no
#                   broker
#
#   packaging/build-deb.sh amd64|arm64|armhf [OUTDIR]      (default OUTDIR: target/deb)
#
# prints the paths of the two packages, culex's first.
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
# debian/copyright is generated from Cargo.lock for the triple (packaging/copyright.py):
# one paragraph per crate the binaries link, with its licence. CULEX_ARTIFACTS=FILE keeps
# cargo's JSON messages of the build, for `copyright.py --check` (packaging/check.sh).
#
# Why dpkg-deb and not cargo-deb: the packages are a few files and three maintainer
# scripts, all here in packaging/, and dpkg-deb is on every Debian machine, while
# `cargo install cargo-deb` took 3 min 21 s on this 2-core machine, too much of CI's
# budget for what a 150-line script does. The layout follows what debhelper would make
# (dh_installsystemd's snippets, md5sums, gzipped changelogs, --root-owner-group).
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
# Where a release would be published; set CULEX_HOMEPAGE when building one.
homepage=${CULEX_HOMEPAGE:-https://culex.invalid/}
maintainer="culex maintainers <maintainers@users.noreply.culex.invalid>"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
python3 packaging/copyright.py "$triple" >"$stage/copyright"

# The files every package has: copyright, the Debian changelog, the upstream changelog.
docs() {
    local root=$1 pkg=$2 date
    mkdir -p "$root/usr/share/doc/$pkg"
    install -m 0644 "$stage/copyright" "$root/usr/share/doc/$pkg/copyright"
    # One Debian changelog entry per upstream version, dated by the last commit so the
    # package is reproducible.
    date=$(git log -1 --format=%cD 2>/dev/null || date -R)
    {
        echo "culex ($version) unstable; urgency=medium"
        echo
        echo "  * Upstream release $upstream."
        echo
        echo " -- $maintainer  $date"
    } | gzip -9n >"$root/usr/share/doc/$pkg/changelog.Debian.gz"
    gzip -9n <CHANGELOG.md >"$root/usr/share/doc/$pkg/changelog.gz"
    chmod 0644 "$root/usr/share/doc/$pkg/"*.gz
}

tool() { # ROOT NAME: /usr/bin/NAME and its page (lintian: no-manual-page)
    mkdir -p "$1/usr/bin" "$1/usr/share/man/man1"
    install -m 0755 "$bindir/$2" "$1/usr/bin/$2"
    gzip -9n <"packaging/man/$2.1" >"$1/usr/share/man/man1/$2.1.gz"
    chmod 0644 "$1/usr/share/man/man1/$2.1.gz"
}

# Depends of a package: the shared libraries its binaries link (none when static), with
# the newest glibc symbol version they use as the minimum.
lib_depends() {
    local root=$1 needed="" libc_min="" deps="" bin lib v
    for bin in "$root"/usr/sbin/* "$root"/usr/bin/*; do
        [ -f "$bin" ] || continue
        needed="$needed $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
        v=$(readelf -W --dyn-syms "$bin" | { grep -o 'GLIBC_[0-9.]*' || true; } | sed 's/GLIBC_//')
        libc_min=$(printf '%s\n' $libc_min $v | sort -V | tail -n 1)
    done
    for lib in $(printf '%s\n' $needed | sort -u); do
        case $lib in
            libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux*) ;;
            libgcc_s.so.1) deps="libgcc-s1, " ;;
            *) echo "$root links $lib: map it to a Debian package in $0" >&2; exit 1 ;;
        esac
    done
    [ -n "${needed// /}" ] && deps="${deps}libc6 (>= $libc_min), "
    echo "$deps"
}

# Lintian overrides, each with its reason: packaging/lintian/PKG for every architecture,
# PKG.static or PKG.glibc by how it is linked, PKG.ARCH for one architecture.
overrides() {
    local root=$1 pkg=$2 linked=$3 f
    mkdir -p "$root/usr/share/lintian/overrides"
    for f in "packaging/lintian/$pkg" "packaging/lintian/$pkg.$linked" "packaging/lintian/$pkg.$arch"; do
        [ -f "$f" ] && cat "$f"
    done >"$root/usr/share/lintian/overrides/$pkg"
    chmod 0644 "$root/usr/share/lintian/overrides/$pkg"
}

finish() { # ROOT PKG: md5sums, dates, the .deb
    local root=$1 pkg=$2 deb
    (cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print |
        sed 's|^\./||' | LC_ALL=C sort | xargs md5sum >DEBIAN/md5sums)
    chmod 0644 "$root/DEBIAN/md5sums"
    mkdir -p "$outdir"
    deb="$outdir/${pkg}_${version}_$arch.deb"
    # Reproducible: file times from the last commit.
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
    echo "$deb"
}

# ---- culex: the broker ----------------------------------------------------------------
root=$stage/culex
mkdir -p "$root/DEBIAN" "$root/usr/sbin" "$root/etc/culex/conf.d" "$root/etc/logrotate.d" \
    "$root/lib/systemd/system" "$root/usr/share/man/man8" "$root/usr/share/man/man5"
install -m 0755 "$bindir/culex" "$root/usr/sbin/culex"
tool "$root" culex_passwd
install -m 0644 packaging/culex.conf "$root/etc/culex/culex.conf"
install -m 0644 packaging/culex.logrotate "$root/etc/logrotate.d/culex"
install -m 0644 packaging/culex.service "$root/lib/systemd/system/culex.service"
# The example dashboard (#22): served with `http_dir /usr/share/culex/dashboard` on a
# websockets or http_api listener. mqtt.js is not in Debian 12 and is not shipped: its
# README says where to get mqtt.min.js.
install -d "$root/usr/share/culex/dashboard"
install -m 0644 examples/dashboard/index.html examples/dashboard/dashboard.css \
    examples/dashboard/dashboard.js "$root/usr/share/culex/dashboard/"
cat >"$root/usr/share/culex/dashboard/README" <<'TXT'
culex's example dashboard: clients, messages and bridges ($SYS) in a browser page that
talks MQTT over WebSockets with mqtt.js.

mqtt.js is not part of this package. Put its browser build beside index.html:

    npm pack mqtt && tar -xzf mqtt-*.tgz package/dist/mqtt.min.js --strip-components=2

(or copy node_modules/mqtt/dist/mqtt.min.js), then serve this directory, e.g.

    listener 9001 127.0.0.1
    protocol websockets
    http_dir /usr/share/culex/dashboard

and open http://127.0.0.1:9001/ (copy the directory elsewhere first if you would
rather not add a file under /usr/share).
TXT
chmod 0644 "$root/usr/share/culex/dashboard/README"
gzip -9n <packaging/man/culex.8 >"$root/usr/share/man/man8/culex.8.gz"
# culex.conf(5) is generated from the option table (src/config/man.rs; `cargo test`
# fails when the checked-in page is stale).
gzip -9n <packaging/man/culex.conf.5 >"$root/usr/share/man/man5/culex.conf.5.gz"
chmod 0644 "$root"/usr/share/man/man*/*.gz
docs "$root" culex
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
depends=$(lib_depends "$root")
linked=static
[ -n "$depends" ] && linked=glibc
overrides "$root" culex $linked
cat >"$root/DEBIAN/control" <<CONTROL
Package: culex
Version: $version
Architecture: $arch
Multi-Arch: foreign
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: ${depends}adduser
Recommends: culex-clients
Section: net
Priority: optional
Homepage: $homepage
Description: MQTT broker for edge gateways
 culex is an MQTT 3.1, 3.1.1 and 5.0 broker for edge gateways (Raspberry Pi,
 ARM LoRaWAN gateways, small industrial PCs): one thread, small and flat memory,
 and Mosquitto's configuration format, so an existing mosquitto.conf works when
 it uses the options culex supports.
 .
 This package runs it as a hardened systemd service under its own user,
 listening on the loopback addresses by default (/etc/culex/culex.conf), and
 has culex_passwd for password files. The clients are in culex-clients.
CONTROL
finish "$root" culex

# ---- culex-clients: the command-line clients -------------------------------------------
root=$stage/culex-clients
mkdir -p "$root/DEBIAN"
for t in culex_pub culex_sub culex_rr culex_bench; do tool "$root" "$t"; done
docs "$root" culex-clients
depends=$(lib_depends "$root")
linked=static
[ -n "$depends" ] && linked=glibc
overrides "$root" culex-clients $linked
{
    cat <<CONTROL
Package: culex-clients
Source: culex
Version: $version
Architecture: $arch
Multi-Arch: foreign
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
CONTROL
    [ -n "$depends" ] && echo "Depends: ${depends%, }"
    cat <<CONTROL
Section: net
Priority: optional
Homepage: $homepage
Description: MQTT command-line clients of culex
 culex_pub and culex_sub publish and subscribe to an MQTT broker (the options of
 mosquitto_pub and mosquitto_sub), culex_rr sends a request and waits for its
 response (MQTT 5 request/response), and culex_bench measures a broker's
 throughput and latency. They work with any MQTT 3.1.1 or 5.0 broker, and
 installing them starts none.
CONTROL
} >"$root/DEBIAN/control"
finish "$root" culex-clients
