#!/usr/bin/env bash
# Mosquitto's own broker tests (../shared/mosquitto-suite, Mosquitto 2.0.20's test/broker)
# against a culex binary:
#
#   bash tests/mosquitto-suite.sh target/release/culex [runner options, e.g. --only '^08-ssl' --keep]
#
# Installs what the runner needs (python3, openssl, unshare, ip; psutil with pip or apt), then runs the
# curated set. Two lists say which tests may fail, and the run fails on any other:
# - tests/mosquitto-suite-deviations.txt: where culex keeps the MQTT specification and
#   Mosquitto does not (each with the clause); these stay.
# - tests/mosquitto-suite-known-failures.txt: differences not fixed yet (issue #19); each
#   one fixed is taken off, and the runner says when one passes that is still listed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: tests/mosquitto-suite.sh CULEX_BINARY [runner options]}
shift
suite=${MOSQUITTO_SUITE:-$here/../../shared/mosquitto-suite}
[ -x "$suite/run" ] || { echo "Mosquitto's suite not found at $suite (set MOSQUITTO_SUITE)" >&2; exit 2; }

need=()
command -v python3 >/dev/null || need+=(python3)
command -v openssl >/dev/null || need+=(openssl)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
# psutil for the python3 the runner will run: Debian's package serves /usr/bin/python3
# only, and on a machine whose python3 is another build (pyenv) pip is the way.
if ! python3 -c 'import psutil' 2>/dev/null; then
    python3 -m pip install --disable-pip-version-check -q psutil ||
        { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-psutil >/dev/null; }
fi
python3 -c 'import psutil' || { echo "psutil is still missing" >&2; exit 2; }

allow=$(mktemp)
trap 'rm -f "$allow"' EXIT
cat "$here/mosquitto-suite-deviations.txt" "$here/mosquitto-suite-known-failures.txt" >"$allow"
"$suite/run" "$bin" --allow "$allow" "$@"
