#!/usr/bin/env python3
"""Persistence benchmark: culex against Mosquitto, one after the other on this machine.

1. Write volume: a gateway workload -- SENSORS sensors update their retained value every
   second (QoS 1) for DURATION seconds while a persistent subscriber (a bridge, say) is
   offline -- and the bytes each broker makes the kernel write (write_bytes of
   /proc/PID/io: pages dirtied, so every re-written 4 KiB page counts, as on an SD card).
   Same durability window: culex's default (journal synced within 1 s) against Mosquitto
   with `autosave_interval 1`; Mosquitto's default (1800 s: up to half an hour lost) is
   shown for context.
2. Start-up: RETAINED retained messages and SESSIONS persistent sessions (one
   subscription each) are stored, the broker is stopped, and the time from start to the
   first accepted connection is measured.

Usage: python3 bench/persistence.py [--duration 60] [--sensors 1000]
          [--retained 100000] [--sessions 10000] [--culex target/release/culex]
Needs Mosquitto (apt-get install mosquitto); only the Python standard library.
"""

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time


def enc_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def varint(n):
    out = bytearray()
    while True:
        d = n % 128
        n //= 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def connect(port, client_id, clean=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    flags = 0x02 if clean else 0
    body = enc_str("MQTT") + bytes([4, flags]) + struct.pack(">H", 600) + enc_str(client_id)
    s.sendall(packet(0x10, body))
    ack = read_exact(s, 4)
    assert ack[0] == 0x20 and ack[3] == 0, ack
    return s


def subscribe(s, filt, qos=1):
    s.sendall(packet(0x82, struct.pack(">H", 1) + enc_str(filt) + bytes([qos])))
    first = read_exact(s, 2)
    read_exact(s, first[1])


def publish_batch(s, items, qos=1, retain=True):
    """Publishes (topic, payload) pairs with QoS 1 and waits for every PUBACK."""
    out = bytearray()
    for i, (topic, payload) in enumerate(items):
        pid = i % 65000 + 1
        first = 0x30 | (qos << 1) | (1 if retain else 0)
        out += packet(first, enc_str(topic) + struct.pack(">H", pid) + payload)
    s.sendall(out)
    read_exact(s, 4 * len(items))


def wait_port(port, proc, limit=30.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if proc.poll() is not None:
            raise RuntimeError("broker exited: %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return time.monotonic() - start
        except OSError:
            time.sleep(0.002)
    raise RuntimeError("broker did not listen within %.0f s" % limit)


def write_bytes(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, name, argv, conf_extra):
        self.name = name
        self.argv = argv
        self.dir = tempfile.mkdtemp(prefix="persist-bench-%s-" % name.replace(" ", "-"))
        # Mosquitto started as root drops to the mosquitto user: let it write here.
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "broker.conf")
        with open(self.conf, "w") as f:
            f.write(
                "listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                "persistence_location %s/\n%s" % (self.port, self.dir, conf_extra)
            )
        self.log = open(os.path.join(self.dir, "broker.log"), "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            self.argv + ["-c", self.conf], stdout=self.log, stderr=self.log, cwd=self.dir
        )
        return wait_port(self.port, self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)

    def disk_bytes(self):
        return sum(
            os.path.getsize(os.path.join(self.dir, f))
            for f in os.listdir(self.dir)
            if not f.startswith("broker.")
        )

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def drain_queue(port, client_id, limit=120.0):
    """Reconnects a persistent QoS 1 subscriber and counts the messages that waited for it
    (acknowledging each), until 3 s pass without one."""
    s = connect(port, client_id, clean=False)
    s.settimeout(3.0)
    buf = b""
    count = 0
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        acks = bytearray()
        while len(buf) >= 2:
            length, shift, i = 0, 0, 1
            while i < len(buf) and buf[i] & 0x80:
                length |= (buf[i] & 0x7F) << shift
                shift += 7
                i += 1
            if i >= len(buf):
                break
            length |= buf[i] << shift
            end = i + 1 + length
            if len(buf) < end:
                break
            if buf[0] & 0xF0 == 0x30:
                count += 1
                if buf[0] & 0x06:
                    tlen = struct.unpack(">H", buf[i + 1:i + 3])[0]
                    acks += b"\x40\x02" + buf[i + 3 + tlen:i + 5 + tlen]
            buf = buf[end:]
        if acks:
            s.sendall(bytes(acks))
    s.close()
    return count


def write_volume(broker, duration, sensors, background):
    broker.start()
    if background:
        # State that does not change during the workload (other devices' retained values).
        loader = connect(broker.port, "loader")
        for base in range(0, background, 5000):
            publish_batch(loader, [("other/%d/%d" % (i // 1000, i), b"x" * 64)
                                   for i in range(base, min(background, base + 5000))])
        loader.close()
        time.sleep(2.5)
    sub = connect(broker.port, "cloud-bridge", clean=False)
    subscribe(sub, "sensors/#", 1)
    sub.close()
    time.sleep(0.5)
    pub = connect(broker.port, "gateway")
    before = write_bytes(broker.proc.pid)
    start = time.monotonic()
    sent = 0
    for second in range(duration):
        items = [
            ("sensors/%d/value" % i, ('{"t":%.1f,"n":%d}' % (20 + (i + second) % 70 / 10, second)).encode())
            for i in range(sensors)
        ]
        publish_batch(pub, items)
        sent += len(items)
        next_tick = start + second + 1
        time.sleep(max(0.0, next_tick - time.monotonic()))
    time.sleep(2.0)  # the last sync or autosave
    written = write_bytes(broker.proc.pid) - before
    pub.close()
    # What the offline subscriber gets when it returns: the data the bytes stored.
    queued = drain_queue(broker.port, "cloud-bridge")
    broker.stop()
    return sent, written, queued


def startup(broker, retained, sessions):
    broker.start()
    pub = connect(broker.port, "loader")
    payload = b"x" * 64
    for base in range(0, retained, 5000):
        publish_batch(pub, [("r/%d/%d" % (i // 1000, i), payload) for i in range(base, min(retained, base + 5000))])
    pub.close()
    for i in range(sessions):
        s = connect(broker.port, "dev-%d" % i, clean=False)
        subscribe(s, "dev/%d/cmd" % i, 1)
        s.close()
    time.sleep(1.0)
    broker.stop()
    size = broker.disk_bytes()
    # Until the first CONNACK: culex listens before it has loaded its state.
    started = time.monotonic()
    broker.start()
    s = connect(broker.port, "dev-%d" % (sessions - 1), clean=False)
    seconds = time.monotonic() - started
    s.close()
    broker.stop()
    return seconds, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--retained", type=int, default=100000)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--background", type=int, default=0,
                    help="retained messages stored before the workload, unchanged by it")
    ap.add_argument("--max-queued", type=int, default=1000,
                    help="max_queued_messages of both brokers (1000: Mosquitto's default, "
                    "which drops most of what the offline subscriber should get)")
    ap.add_argument("--no-default", action="store_true",
                    help="leave out Mosquitto with its default autosave_interval (writes nothing)")
    ap.add_argument("--culex", default="target/release/culex")
    ap.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    a = ap.parse_args()
    if not os.path.exists(a.mosquitto):
        sys.exit("mosquitto not found: apt-get install mosquitto")
    culex = os.path.abspath(a.culex)
    if not os.path.exists(culex):
        sys.exit("%s not found: cargo build --release" % culex)

    print("## Write volume: %d sensors, retained QoS 1 every second for %d s, a persistent subscriber offline,"
          " %d other retained messages stored, max_queued_messages %d"
          % (a.sensors, a.duration, a.background, a.max_queued))
    print("| broker | durability window | messages | bytes written | bytes/message | queued for the subscriber |")
    print("|---|---|---|---|---|---|")
    queue = "max_queued_messages %d\n" % a.max_queued
    results = {}
    for name, argv, extra, window in [
        ("culex", [culex], "", "1 s (persistence_sync_interval)"),
        ("mosquitto", [a.mosquitto], "autosave_interval 1\n", "1 s (autosave_interval 1)"),
        ("mosquitto default", [a.mosquitto], "", "1800 s (autosave_interval default)"),
    ]:
        if a.no_default and name == "mosquitto default":
            continue
        b = Broker(name, argv, extra + queue)
        try:
            sent, written, queued = write_volume(b, a.duration, a.sensors, a.background)
        finally:
            b.cleanup()
        results[name] = written
        print("| %s | %s | %d | %d | %.1f | %d |"
              % (name, window, sent, written, written / max(sent, 1), queued), flush=True)
    if results.get("culex"):
        print("\nMosquitto (same 1 s window) / culex bytes written: %.1fx"
              % (results["mosquitto"] / results["culex"]))

    if a.retained == 0:
        return
    print("\n## Start-up with %d retained messages and %d persistent sessions" % (a.retained, a.sessions))
    print("| broker | files on disk | start to first CONNACK |")
    print("|---|---|---|")
    for name, argv, extra in [
        ("culex", [culex], ""),
        ("mosquitto", [a.mosquitto], "max_queued_messages 1000\n"),
    ]:
        b = Broker(name, argv, extra)
        try:
            seconds, size = startup(b, a.retained, a.sessions)
        finally:
            b.cleanup()
        print("| %s | %.1f MB | %.3f s |" % (name, size / 1e6, seconds), flush=True)


if __name__ == "__main__":
    main()
