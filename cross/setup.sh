#!/usr/bin/env bash
# Installs every piece of the ARM toolchains, idempotently (a second run is a no-op apart
# from apt's and rustup's own checks). Run as root on Debian 12.
#
#   cross/setup.sh            the glibc targets (aarch64, armv7), static musl for aarch64
#                             and x86_64 (the .debs), qemu-user; what CI needs
#   cross/setup.sh armv6      also the ARMv6 (Pi Zero/1) static musl build: nightly with
#                             rust-src (-Zbuild-std), cargo-zigbuild and PyPI's ziglang.
#                             Slow the first time (cargo install compiles cargo-zigbuild),
#                             so CI does not run it; see cross/README.md
#   cross/setup.sh deb        also the packaging checks' tools: lintian
set -euo pipefail

want_armv6=false
want_deb=false
for arg in "$@"; do
    case $arg in
        armv6) want_armv6=true ;;
        deb) want_deb=true ;;
        *) echo "usage: $0 [armv6] [deb]" >&2; exit 2 ;;
    esac
done

# Debian packages: cross gcc (as the linker, and the C compiler of ring's build script),
# the target libc for the glibc targets, qemu-user to run ARM test binaries on x86_64.
apt_pkgs=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross
    libc6-dev-armhf-cross qemu-user)
# lintian checks the packages; groff (groff-base) renders their man pages in check.sh.
$want_deb && apt_pkgs+=(lintian groff-base)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf \
    aarch64-unknown-linux-musl x86_64-unknown-linux-musl

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
echo "cross/setup.sh: done"
