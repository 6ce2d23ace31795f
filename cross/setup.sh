#!/usr/bin/env bash
# Installs what the requested builds need, and only that, idempotently (a second run is a
# no-op apart from apt's and rustup's own checks). Run as root on Debian 12.
#
#   cross/setup.sh              the cross test toolchains (cross/test.sh): the glibc
#                               targets (aarch64, armv7), static musl for aarch64,
#                               qemu-user; what CI's cross_test step needs
#   cross/setup.sh amd64        the amd64 .deb's static build: the x86_64 musl target
#   cross/setup.sh arm64        the arm64 .deb's: the aarch64 musl target, the aarch64
#                               cross gcc (linker, and C compiler of ring's build script)
#   cross/setup.sh armhf        the armhf .deb's static ARMv6 (Pi Zero/1) build: nightly
#                               with rust-src (-Zbuild-std), cargo-zigbuild and PyPI's
#                               ziglang. Slow the first time (cargo install compiles
#                               cargo-zigbuild); `armv6` is the same
#   cross/setup.sh deb [ARCH...] the packaging tools (lintian, groff) and the toolchain of
#                               each ARCH; `deb` alone means `deb amd64`: building the amd64
#                               package installs nothing for ARM, no nightly and no zig
#
# Several may be given: `cross/setup.sh deb amd64 arm64 armhf` is what CI's package step
# runs.
set -euo pipefail

want_test=false want_amd64=false want_arm64=false want_armv6=false want_deb=false
[ "$#" -eq 0 ] && want_test=true
for arg in "$@"; do
    case $arg in
        test) want_test=true ;;
        amd64) want_amd64=true ;;
        arm64) want_arm64=true ;;
        armhf | armv6) want_armv6=true ;;
        deb) want_deb=true ;;
        *) echo "usage: $0 [test] [deb] [amd64] [arm64] [armhf]" >&2; exit 2 ;;
    esac
done
# `deb` with no architecture: the host's package.
if $want_deb && ! $want_amd64 && ! $want_arm64 && ! $want_armv6; then want_amd64=true; fi

apt_pkgs=()
targets=()
if $want_test; then
    # Cross gcc (as the linker, and the C compiler of ring's build script), the target
    # libc for the glibc targets, qemu-user to run ARM test binaries on x86_64.
    apt_pkgs+=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross
        libc6-dev-armhf-cross qemu-user)
    targets+=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf aarch64-unknown-linux-musl)
fi
$want_amd64 && targets+=(x86_64-unknown-linux-musl)
if $want_arm64; then
    # libc6-dev-arm64-cross: ring's C includes <stdint.h>, which the cross gcc finds only
    # there (it is a Recommends of gcc-aarch64-linux-gnu, and apt here takes none).
    apt_pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    targets+=(aarch64-unknown-linux-musl)
fi
# lintian checks the packages; groff (groff-base) renders their man pages in check.sh.
$want_deb && apt_pkgs+=(lintian groff-base)

missing=()
for p in ${apt_pkgs[@]+"${apt_pkgs[@]}"}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${#targets[@]}" -gt 0 ] && rustup target add "${targets[@]}"

if $want_armv6; then
    # rustup's dist server has no rust-std for arm-unknown-linux-musleabihf (404 for
    # stable 1.95), so std is built from source by nightly (-Zbuild-std); zig's clang
    # and bundled musl compile ring's C and link everything statically.
    # An installed nightly is kept as it is (other work on this machine may pin it);
    # only rust-src is added to it.
    if rustup toolchain list | grep -q '^nightly'; then
        rustup component add --toolchain nightly rust-src
    else
        rustup toolchain install nightly --profile minimal --component rust-src
    fi
    command -v cargo-zigbuild >/dev/null || cargo install --locked cargo-zigbuild
    python3 -m ziglang version >/dev/null 2>&1 || python3 -m pip install -q ziglang
fi
echo "cross/setup.sh: done ($*)"
