#!/usr/bin/env bash
# Release binaries for the given targets, then their sizes and the size budget.
#
#   cross/build.sh TARGET...      e.g. cross/build.sh aarch64 armv7 armv6
#
# TARGET is a Rust triple or one of the short names:
#   amd64   x86_64-unknown-linux-gnu        (the host)
#   amd64-musl x86_64-unknown-linux-musl    static: the amd64 .deb's binary
#   aarch64 aarch64-unknown-linux-gnu       Pi 3/4/5 and gateways, 64-bit OS
#   armv7   armv7-unknown-linux-gnueabihf   Pi 2/3/4, 32-bit OS
#   aarch64-musl aarch64-unknown-linux-musl static, any 64-bit ARM Linux: the arm64 .deb's
#   armv6   arm-unknown-linux-musleabihf    Pi Zero/Zero W/1 and every 32-bit Pi: static
#
# Binaries land in target/TRIPLE/release/ (the host's in target/release/). The broker
# must stay within CULEX_SIZE_BUDGET bytes (default 3 MiB) on every ARM target; the
# script fails otherwise (x86_64 code is larger, and no gateway's flash holds it). The
# budget catches a dependency or a generic blow-up that adds hundreds of KB, not the
# growth of features: 2.5 MiB held until Mosquitto's suite, backpressure and durable
# acknowledgements took the aarch64 musl broker to 2,625,928 bytes (2026-12-03); 3 MiB
# leaves room for dynamic security and the HTTP API. Debian 12's Mosquitto is 0.66 MB
# on amd64, plus libssl and libcrypto (5.4 MB), plus libcjson and libwrap. Toolchains: cross/setup.sh (and `cross/setup.sh armv6`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUDGET=${CULEX_SIZE_BUDGET:-3145728}
JOBS=${CARGO_BUILD_JOBS:-2}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

triple_of() {
    case $1 in
        amd64 | x86_64 | host) echo x86_64-unknown-linux-gnu ;;
        amd64-musl | x86_64-musl) echo x86_64-unknown-linux-musl ;;
        arm64 | aarch64) echo aarch64-unknown-linux-gnu ;;
        armv7) echo armv7-unknown-linux-gnueabihf ;;
        aarch64-musl) echo aarch64-unknown-linux-musl ;;
        armv6 | armhf) echo arm-unknown-linux-musleabihf ;;
        *-*-*) echo "$1" ;;
        *) echo "unknown target '$1'" >&2; return 2 ;;
    esac
}

# Where cargo puts the release binaries of a triple.
out_dir() {
    if [ "$1" = x86_64-unknown-linux-gnu ]; then
        echo "$TARGET_DIR/release"
    else
        echo "$TARGET_DIR/$1/release"
    fi
}

# CULEX_ARTIFACTS=FILE: cargo's JSON messages of the build go to FILE (what was compiled
# for which target: packaging/copyright.py --check reads them).
build() {
    local triple=$1 json=()
    [ -n "${CULEX_ARTIFACTS:-}" ] && json=(--message-format=json-render-diagnostics)
    case $triple in
        x86_64-unknown-linux-gnu)
            cargo build --release --bins -j"$JOBS" ${json[@]+"${json[@]}"} ;;
        arm-unknown-linux-musleabihf)
            # No prebuilt std: nightly builds it (with panic_abort, as the profile
            # says). Static musl from zig; rustc's own self-contained musl objects are
            # for the prebuilt targets only, hence link-self-contained=no.
            RUSTFLAGS="-C link-self-contained=no -C target-feature=+crt-static" \
                cargo +nightly zigbuild --release --bins -j"$JOBS" ${json[@]+"${json[@]}"} \
                -Zbuild-std=std,panic_abort --target "$triple" ;;
        *)
            cargo build --release --bins -j"$JOBS" ${json[@]+"${json[@]}"} --target "$triple" ;;
    esac >"${CULEX_ARTIFACTS:-/dev/stdout}"
}

[ "$#" -gt 0 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
if [ "$1" = --triple ]; then triple_of "$2"; exit; fi
status=0
for name in "$@"; do
    triple=$(triple_of "$name")
    echo "== $triple"
    start=$(date +%s)
    build "$triple"
    echo "   built in $(($(date +%s) - start)) s"
    dir=$(out_dir "$triple")
    for bin in culex culex_pub culex_sub culex_rr culex_passwd culex_bench; do
        [ -f "$dir/$bin" ] || continue
        size=$(stat -c %s "$dir/$bin")
        printf '   %-14s %9d bytes  %s\n' "$bin" "$size" "$(file -b "$dir/$bin" | cut -d, -f1-2)"
        if [ "$bin" = culex ] && [ "${triple%%-*}" != x86_64 ] && [ "$size" -gt "$BUDGET" ]; then
            echo "   culex is over the size budget of $BUDGET bytes on $triple" >&2
            status=1
        fi
    done
done
exit $status
