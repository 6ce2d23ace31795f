#!/usr/bin/env bash
# The culex OCI images (packaging/oci/Containerfile: FROM scratch, the static binary, a
# default configuration, CA certificates, the licences) for amd64 and arm64, built with
# buildah from Debian 12, checked, and saved as OCI archives:
#
#   bash packaging/oci.sh [ARCH...]         ARCH: amd64, arm64 (default: both)
#
# -> target/oci/culex_VERSION_ARCH.oci.tar (load with `podman load -i FILE`).
# Checks: the image's architecture, entrypoint, command, user, volume and port; its one
# layer holds exactly the expected files, the binary for the right machine; then, if
# podman can run containers here, the amd64 image is run with a mounted configuration
# and data volume and a message goes through it (loopback only), and a retained message
# survives a restart of the container (the volume). Uses the release binaries of
# cross/build.sh (built when missing). Run as root (CI: the oci step).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=$TARGET_DIR/oci
PORT=18890
fail() { echo "packaging/oci.sh: FAIL: $*" >&2; exit 1; }
T0=$(date +%s)
step() { echo; echo "-- $* ($(($(date +%s) - T0)) s)"; }
[ "$#" -gt 0 ] || set -- amd64 arm64

step "tools: buildah, podman"
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v podman >/dev/null || missing+=(podman)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v buildah >/dev/null || fail "buildah did not install"
buildah --version

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
mkdir -p "$OUT"
for arch in "$@"; do
    case $arch in
        amd64) triple=x86_64-unknown-linux-musl; machine='Advanced Micro Devices X86-64' ;;
        arm64) triple=aarch64-unknown-linux-musl; machine=AArch64 ;;
        *) fail "unknown architecture $arch (amd64, arm64)" ;;
    esac
    step "$arch: stage and build"
    bash cross/setup.sh "$arch" >/dev/null
    bash cross/build.sh "$triple" >/dev/null
    ctx=$OUT/context-$arch
    rm -rf "$ctx"
    rootfs=$ctx/rootfs
    mkdir -p "$rootfs/usr/sbin" "$rootfs/etc/culex" "$rootfs/etc/ssl/certs" \
        "$rootfs/usr/share/doc/culex" "$rootfs/var/lib" "$ctx/data"
    install -m 0755 "$TARGET_DIR/$triple/release/culex" "$rootfs/usr/sbin/culex"
    install -m 0644 packaging/oci/culex.conf "$rootfs/etc/culex/culex.conf"
    install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    python3 packaging/copyright.py "$triple" >"$rootfs/usr/share/doc/culex/copyright"
    printf 'root:x:0:0:root:/:/sbin/nologin\nculex:x:1883:1883:culex:/var/lib/culex:/sbin/nologin\n' \
        >"$rootfs/etc/passwd"
    printf 'root:x:0:\nculex:x:1883:\n' >"$rootfs/etc/group"
    chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
    chmod 0750 "$ctx/data"
    cp packaging/oci/Containerfile "$ctx/"
    image=localhost/culex:$version-$arch
    buildah rmi -f "$image" >/dev/null 2>&1 || true
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
        buildah build --quiet --platform "linux/$arch" --build-arg "VERSION=$version" \
        --timestamp "$(git log -1 --format=%ct)" -t "$image" "$ctx" >/dev/null

    step "$arch: inspect"
    buildah inspect --type image "$image" | python3 -c '
import json, sys
c = json.load(sys.stdin)["OCIv1"]
arch, cfg = sys.argv[1], c["config"]
checks = {
    "architecture": (c["architecture"], arch),
    "os": (c["os"], "linux"),
    "entrypoint": (cfg.get("Entrypoint"), ["/usr/sbin/culex"]),
    "cmd": (cfg.get("Cmd"), ["-c", "/etc/culex/culex.conf"]),
    "user": (cfg.get("User"), "1883:1883"),
    "volumes": (sorted(cfg.get("Volumes", {})), ["/var/lib/culex"]),
    "ports": (sorted(cfg.get("ExposedPorts", {})), ["1883/tcp"]),
    "layers": (len(c["rootfs"]["diff_ids"]), 1),
}
bad = {k: v for k, v in checks.items() if v[0] != v[1]}
for k, v in checks.items():
    print(f"  {k}: {v[0]}")
if bad:
    sys.exit(f"image config: {bad}")
' "$arch" || fail "$arch: image configuration"
    archive=$OUT/culex_${version}_$arch.oci.tar
    rm -f "$archive"
    buildah push --quiet "$image" "oci-archive:$archive:culex:$version" >/dev/null
    # The layers' files, from the archive itself.
    x=$(mktemp -d)
    tar -xf "$archive" -C "$x"
    layers=$(python3 -c '
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = idx["manifests"][0]["digest"].split(":")[1]
man = json.load(open(d + "/blobs/sha256/" + m))
for l in man["layers"]:
    print(d + "/blobs/sha256/" + l["digest"].split(":")[1])' "$x")
    : >"$OUT/contents-$arch.txt"
    for layer in $layers; do tar -tvf "$layer" >>"$OUT/contents-$arch.txt"; done
    files=$(awk '$1 !~ /^d/ {print $6}' "$OUT/contents-$arch.txt" | sed 's|^\./||' | sort | tr '\n' ' ')
    want="etc/culex/culex.conf etc/group etc/passwd etc/ssl/certs/ca-certificates.crt usr/sbin/culex usr/share/doc/culex/copyright "
    [ "$files" = "$want" ] || fail "$arch: the layers hold '$files', not '$want'"
    awk '$1 !~ /^d/ && $2 != "0/0" {print}' "$OUT/contents-$arch.txt" | grep . &&
        fail "$arch: files not owned by root"
    awk '$6 ~ /var\/lib\/culex\/?$/ {print $1, $2}' "$OUT/contents-$arch.txt" | grep -Eqx 'drwxr-[x-]r?-?[x-]? ?[-r][-w]?[-x]? 1883/1883|d[rwx-]{6}[r-]-[x-] 1883/1883' ||
        fail "$arch: /var/lib/culex: $(grep var/lib "$OUT/contents-$arch.txt")"
    layer=$(echo "$layers" | head -n 1)
    mkdir "$x/layer"
    tar -xf "$layer" -C "$x/layer" usr/sbin/culex
    got=$(readelf -h "$x/layer/usr/sbin/culex" | sed -n 's/ *Machine: *//p')
    [ "$got" = "$machine" ] || fail "$arch: the binary is for '$got'"
    rm -rf "$x"
    echo "$archive: $(stat -c %s "$archive") bytes; layer: $files"
done

step "run the amd64 image with a mounted configuration and data volume"
image=localhost/culex:$version-amd64
if ! buildah images --format '{{.Name}}:{{.Tag}}' | grep -qx "$image"; then
    echo "amd64 not built in this run: not run"
elif ! podman run --rm --network host --entrypoint /usr/sbin/culex "$image" --version >"$OUT/probe.log" 2>&1; then
    # Say why, and check what can be checked without a runtime (done above).
    echo "podman cannot run containers on this machine; the image's configuration,"
    echo "entrypoint and contents were checked above instead:"
    cat "$OUT/probe.log"
else
    conf=$(mktemp -d)
    chmod 0755 "$conf"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location /var/lib/culex/\nlog_dest stdout\n' \
        "$PORT" >"$conf/culex.conf"
    podman volume rm -f culex-ci-data >/dev/null 2>&1 || true
    run() {
        podman run -d --rm --name culex-ci --network host \
            -v "$conf/culex.conf:/etc/culex/culex.conf:ro" -v culex-ci-data:/var/lib/culex "$image"
    }
    up() {
        for _ in $(seq 50); do ss -ltn "( sport = :$PORT )" | grep -q LISTEN && return 0; sleep 0.2; done
        podman logs culex-ci || true
        fail "the container does not listen on $PORT"
    }
    run >/dev/null
    up
    mosquitto_pub -h 127.0.0.1 -p "$PORT" -t culex/oci -q 1 -r -m "from the container"
    podman stop -t 10 culex-ci >/dev/null
    run >/dev/null
    up
    got=$(mosquitto_sub -h 127.0.0.1 -p "$PORT" -t culex/oci -C 1 -W 10) || true
    podman logs culex-ci 2>&1 | tail -n 5
    podman stop -t 10 culex-ci >/dev/null
    podman volume rm -f culex-ci-data >/dev/null
    rm -rf "$conf"
    [ "$got" = "from the container" ] || fail "retained message across container restarts: '$got'"
    echo "container: published, restarted, received from the volume: $got"
fi

echo
echo "packaging/oci.sh: OK in $(($(date +%s) - T0)) s ($*)"
