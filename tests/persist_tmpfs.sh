#!/usr/bin/env bash
# Issue #25 on a real file system: a 2 MiB tmpfs that fills up, and that goes read-only,
# under `persistence_sync ack`. Checks, with the broker and tools of this tree:
#  1. run time, disk full: the broker keeps serving, logs "Persistence degraded" once, and
#     holds the PUBACK of a QoS 1 message it cannot make durable; after the bounded wait
#     (REFUSE_AFTER, 10 s) an MQTT 5 publisher gets 0x97 and an MQTT 3.1.1 publisher's
#     connection is closed, never a PUBACK; a kill -9 then loses only what was never
#     acknowledged; once space is freed it recovers by itself and acknowledges again;
#  2. start-up on a read-only file system with clean files: it starts and serves
#     (degraded), and recovers when the file system is writable again;
#  3. start-up on a full disk with an interrupted compaction (journal + .next): it
#     starts, leaves both files as they are, and after space returns nothing is lost.
#
#   sudo bash tests/persist_tmpfs.sh        (BIN=dir of culex, culex_pub, culex_sub;
#                                            default target/debug; needs root: mount)
#
# Not part of `cargo test` (it mounts); the fault-injecting unit tests in
# src/persist/store.rs cover the same cases without root.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/debug}
[ "$(id -u)" = 0 ] || { echo "persist_tmpfs: needs root (mount -t tmpfs)" >&2; exit 2; }
for b in culex culex_pub culex_sub; do
    [ -x "$BIN/$b" ] || { echo "persist_tmpfs: no $BIN/$b (cargo build)" >&2; exit 2; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/culex-tmpfs.XXXXXX")
MNT=$WORK/mnt
mkdir -p "$MNT"
mount -t tmpfs -o size=2m tmpfs "$MNT"
PID=
cleanup() {
    [ -n "$PID" ] && { kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; } || true
    umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
LOG=$WORK/culex.log
cat >"$WORK/c.conf" <<EOF
listener $PORT 127.0.0.1
persistence true
persistence_location $MNT/db
persistence_sync ack
sys_interval 1
allow_anonymous true
EOF
fail() { echo "persist_tmpfs: FAIL: $*" >&2; echo "--- log:" >&2; cat "$LOG" >&2; exit 1; }
ok() { echo "persist_tmpfs: ok: $*"; }

start() {
    "$BIN/culex" -c "$WORK/c.conf" >>"$LOG" 2>&1 &
    PID=$!
    local n
    for n in $(seq 100); do
        grep -q " loaded in " <(tail -n 20 "$LOG") 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || fail "culex exited at start-up"
        sleep 0.1
    done
    fail "culex did not load its store"
}
kill9() { kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
# A payload of 8 KiB: a write that needs a new page (a few bytes more fit in the
# journal's last page even on a full tmpfs).
PAD=$(head -c 8192 /dev/zero | tr '\0' x)
pub() { timeout "${2:-5}" "$BIN/culex_pub" -p "$PORT" -q 1 -r -t "$1" -m "v-$1-$PAD"; }
retained() { timeout 10 "$BIN/culex_sub" -p "$PORT" -t 'r/#' -W 2 -v 2>/dev/null | sort || true; }
fill() { dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null || true; }
state() { timeout 5 "$BIN/culex_sub" -p "$PORT" -t '$SYS/broker/persistence/state' -C 1 -W 3 || true; }
# Waits up to 5 s (five $SYS rounds) for the state $1.
state_is() { local n; for n in 1 2 3 4 5; do [ "$(state)" = "$1" ] && return 0; sleep 1; done; return 1; }

# 1. A disk that fills at run time.
start
pub r/0 || fail "QoS 1 before the disk is full"
fill
pub r/1 30 &
HELD=$!
sleep 3
kill -0 "$HELD" 2>/dev/null || fail "the PUBACK of r/1 was sent while nothing could be written"
[ "$(grep -c 'Persistence degraded' "$LOG")" = 1 ] || fail "degraded logged once"
state_is degraded || fail "\$SYS state degraded"
ok "full disk: serving, degraded logged once, PUBACK held"
# MQTT 5: after the wait, 0x97 (Quota exceeded) instead of a PUBACK.
out=$(timeout 30 "$BIN/culex_pub" -p "$PORT" -V mqttv5 -q 1 -r -t r/5 -m "v-r/5-$PAD" 2>&1 || true)
echo "$out" | grep -q "Quota exceeded" || fail "MQTT 5 publisher not told 0x97: $out"
# MQTT 3.1.1 has no failure code: its connection was closed, without a PUBACK.
wait "$HELD" && fail "r/1 acknowledged while nothing could be written"
grep -q "refusing the acknowledgements" "$LOG" || fail "the refusal is logged"
ok "full disk: MQTT 5 told 0x97, MQTT 3.1.1 closed, nothing acknowledged"
# A crash now may lose r/1 and r/5, which nobody was told were kept; r/0 was, and stays.
kill9
start
got=$(retained)
echo "$got" | grep -q "^r/0 v-r/0-x" || fail "r/0 after kill -9 on a full disk: $got"
rm -f "$MNT/filler"
for n in $(seq 30); do [ "$(state)" = ok ] && break; sleep 1; done
[ "$(state)" = ok ] || fail "\$SYS state ok again after space returned"
pub r/1 || fail "r/1 once space returned"
kill9
start
got=$(retained)
echo "$got" | grep -q "^r/0 v-r/0-x" || fail "r/0 after kill -9: $got"
echo "$got" | grep -q "^r/1 v-r/1-x" || fail "r/1 (acknowledged after recovery) after kill -9: $got"
ok "space returned: recovered, acknowledged again, nothing acknowledged lost after kill -9"

# 2. Start-up on a read-only file system.
kill9
mount -o remount,ro "$MNT"
start
state_is degraded || fail "\$SYS state degraded on a read-only start"
got=$(retained)
echo "$got" | grep -q "^r/1 v-r/1-x" || fail "state served from a read-only start: $got"
mount -o remount,rw "$MNT"
for n in $(seq 40); do grep -q "Persistence recovered" <(tail -n 5 "$LOG") && break; sleep 0.5; done
grep -q "Persistence recovered" <(tail -n 5 "$LOG") || fail "recovered after remount rw"
ok "read-only start: starts, serves, recovers"

# 3. An interrupted compaction found on a full disk.
kill9
DB=$MNT/db/culex.db
# Journal + next journal as a compaction leaves them before the snapshot's rename: the
# next journal (generation + 1) continues the journal.
pub_more() { start; pub r/3 || fail "r/3"; kill9; }
pub_more
gen=$(od -An -tu8 -j16 -N8 "$DB.journal" | tr -d ' ')
head -c 24 "$DB.journal" >"$WORK/hdr"
python3 - "$DB.journal" "$DB.journal.next" "$((gen + 1))" <<'PY'
import struct, sys
j, n, g = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(j, 'rb').read()
# Split the journal's records: the last one moves to the next journal.
body, at, ends = data[24:], 0, []
while at < len(body):
    ln, shift, i = 0, 0, at
    while True:
        b = body[i]; ln |= (b & 0x7F) << shift; shift += 7; i += 1
        if b < 0x80: break
    at = i + 4 + ln; ends.append(at)
cut = ends[-2] if len(ends) > 1 else 0
open(j, 'wb').write(data[:24 + cut])
hdr = bytearray(data[:24]); hdr[16:24] = struct.pack('<Q', g)
open(n, 'wb').write(bytes(hdr) + body[cut:])
PY
cp "$DB.journal" "$WORK/j.before"; cp "$DB.journal.next" "$WORK/n.before"
fill
start
cmp -s "$DB.journal" "$WORK/j.before" || fail "the journal changed on a full disk"
cmp -s "$DB.journal.next" "$WORK/n.before" || fail "the next journal changed on a full disk"
got=$(retained)
echo "$got" | grep -q "^r/3 v-r/3-x" || fail "r/3 from the next journal: $got"
kill9
rm -f "$MNT/filler"
start
got=$(retained)
for t in r/0 r/1 r/3; do echo "$got" | grep -q "^$t v-$t-x" || fail "$t after space returned: $got"; done
ok "interrupted compaction on a full disk: files untouched, nothing lost"
echo "persist_tmpfs: all passed"
