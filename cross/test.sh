#!/usr/bin/env bash
# Runs culex's test suite for an ARM target under qemu-user, through the runners in
# .cargo/config.toml.
#
#   cross/test.sh TARGET [CARGO TEST ARGS...]
#
#   cross/test.sh aarch64              the whole suite: unit, integration, alloc guard
#   cross/test.sh aarch64 --lib        the library's unit tests only (what CI runs)
#   cross/test.sh armv7
#   cross/test.sh armv6                the ARMv6 static build under `qemu-arm -cpu
#                                      arm1176` (nightly + zigbuild: cross/setup.sh armv6)
#
# TARGET takes the short names of cross/build.sh. Tests run in the debug profile, as
# `cargo test` does on the host. qemu-user translates system calls, so the integration
# tests' real sockets on 127.0.0.1 work as on the host.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ "$#" -gt 0 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
name=$1
shift
triple=$(bash cross/build.sh --triple "$name")
JOBS=${CARGO_BUILD_JOBS:-2}

TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target}")

# The integration tests spawn the broker binary themselves (tests/common.rs), which cargo's
# runner does not cover and the kernel cannot execute without binfmt_misc: they are
# pointed at a wrapper that runs the target's debug broker under qemu, through the
# harness's CULEX_TEST_BROKER (a path is taken as the broker to run).
case $triple in
    aarch64-unknown-linux-gnu) qemu="qemu-aarch64 -L /usr/aarch64-linux-gnu" ;;
    armv7-unknown-linux-gnueabihf) qemu="qemu-arm -L /usr/arm-linux-gnueabihf" ;;
    aarch64-unknown-linux-musl) qemu="qemu-aarch64" ;;
    arm-unknown-linux-musleabihf) qemu="qemu-arm -cpu arm1176" ;;
    *) echo "no qemu runner for $triple" >&2; exit 2 ;;
esac
mkdir -p "$TARGET_DIR/$triple"
wrapper="$TARGET_DIR/$triple/culex-under-qemu"
printf '#!/bin/sh\nexec %s %s "$@"\n' "$qemu" "$TARGET_DIR/$triple/debug/culex" >"$wrapper"
chmod +x "$wrapper"
export CULEX_TEST_BROKER="$wrapper"
# The tests that run the other built binaries (the client tools) run them through qemu.
export CULEX_TEST_RUNNER="$qemu"

case $triple in
    arm-unknown-linux-musleabihf)
        # Doc tests are left out: rustdoc does not link them through zig (the code in
        # them is target-independent and runs on every other target).
        [ "$#" -gt 0 ] || set -- --lib --bins --tests
        RUSTFLAGS="-C link-self-contained=no -C target-feature=+crt-static" \
            RUSTUP_TOOLCHAIN=nightly cargo-zigbuild test -j"$JOBS" -Zbuild-std=std,panic_abort,test \
            --target "$triple" "$@" ;;
    *)
        # qemu-user keeps the host's real-time signals for itself: a host SIGRTMIN sent
        # to the emulator never reaches the guest, so the one test that sends SIGRTMIN is
        # left out here (it runs natively in `cargo test`; SIGHUP's reopen runs here).
        # One test at a time: under emulation every broker and tool is a qemu process,
        # and two tests at once on 2 cores made start-up races (a tool refused by a
        # broker the harness saw listening) appear now and then.
        [ "$#" -gt 0 ] || set -- -- --skip logging::moved_log_file_is_reopened_on_sigrtmin \
            --test-threads=1
        cargo test -j"$JOBS" --target "$triple" "$@" ;;
esac
