"""Soak scenarios for culex (tests/soak/*.sh run them): slow_consumer and churn.

Raw MQTT 3.1.1 sockets where a client must misbehave (a subscriber that stops reading,
connections dropped without DISCONNECT) or where thousands of connections are made;
paho-mqtt, an independent client, for the subscriber whose latency is measured and for
the publishers. Every loop is bounded by time. Exit status 0 only if every bound held.
"""

import argparse
import random
import socket
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class RssSampler(threading.Thread):
    def __init__(self, pid, every=0.5):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.samples.append((time.monotonic(), rss_kib(self.pid)))
            self.stopping.wait(self.every)

    def peak(self):
        return max(kib for _, kib in self.samples)


def field(b):
    return struct.pack("!H", len(b)) + b


def packet(first, body):
    out = bytearray([first])
    n = len(body)
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


def connect_packet(client_id, clean=True, keep_alive=60, will=None):
    flags = 0x02 if clean else 0
    body = field(b"MQTT") + bytes([4])
    payload = field(client_id.encode())
    if will:
        topic, message, qos = will
        flags |= 0x04 | (qos << 3)
        payload += field(topic.encode()) + field(message)
    return packet(0x10, body + bytes([flags]) + struct.pack("!H", keep_alive) + payload)


def subscribe_packet(pid, topic, qos):
    return packet(0x82, struct.pack("!H", pid) + field(topic.encode()) + bytes([qos]))


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def raw_client(port, client_id, clean=True, will=None, timeout=5.0):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(connect_packet(client_id, clean, 60, will))
    ack = read_exact(sock, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise RuntimeError(f"CONNACK {ack.hex()}")
    return sock, ack[2] & 1


def sys_value(port, topic, timeout=5.0):
    """The next value of a $SYS topic (sys_interval must be short)."""
    got = threading.Event()
    value = []

    def on_message(_c, _u, msg):
        value.append(msg.payload.decode())
        got.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sys-{random.random()}")
    c.on_message = on_message
    c.on_connect = lambda c, *_: c.subscribe(topic)
    c.connect("127.0.0.1", port)
    c.loop_start()
    got.wait(timeout)
    c.loop_stop()
    c.disconnect()
    return value[-1] if value else None


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def slow_consumer(args):
    sampler = RssSampler(args.pid)
    sampler.start()
    time.sleep(1.0)
    start_rss = rss_kib(args.pid)

    # The stalled subscriber: subscribes at QoS 1 and never reads again (--no-stall: a
    # baseline run without it, for the latency it costs the others).
    stalled = None
    if not args.no_stall:
        stalled, _ = raw_client(args.port, "stalled")
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(subscribe_packet(1, "soak/#", 1))
        if read_exact(stalled, 5)[:2] != b"\x90\x03":
            raise RuntimeError("no SUBACK")

    latencies = []
    received = [0]
    ready = threading.Event()

    def on_message(_c, _u, msg):
        sent = struct.unpack("!d", msg.payload[:8])[0]
        latencies.append(time.monotonic() - sent)
        received[0] += 1

    healthy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="healthy")
    healthy.on_message = on_message
    healthy.on_subscribe = lambda *_: ready.set()
    healthy.on_connect = lambda c, *_: c.subscribe("soak/#", qos=1)
    healthy.connect("127.0.0.1", args.port)
    healthy.loop_start()
    if not ready.wait(5):
        raise RuntimeError("healthy subscriber did not subscribe")

    sent = [0] * args.publishers
    ack_waits = []
    stop_at = time.monotonic() + args.duration

    def publisher(index):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{index}")
        c.max_inflight_messages_set(100)
        c.connect("127.0.0.1", args.port)
        c.loop_start()
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        pad = bytes(max(0, args.size - 8))
        while time.monotonic() < stop_at:
            qos = sent[index] % 2
            info = c.publish(f"soak/{index}", struct.pack("!d", time.monotonic()) + pad, qos=qos)
            if qos == 1 and sent[index] % 50 == 1:
                t = time.monotonic()
                info.wait_for_publish(10)
                ack_waits.append(time.monotonic() - t)
            sent[index] += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        c.loop_stop()
        c.disconnect()

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(args.publishers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.duration + 30)
    time.sleep(2.0)
    healthy.loop_stop()
    dropped = sys_value(args.port, "$SYS/broker/publish/messages/dropped")
    sampler.stopping.set()
    end_rss = rss_kib(args.pid)
    peak = sampler.peak()
    total = sum(sent)
    bound = start_rss + args.bound_kib
    p50, p99, worst = (percentile(latencies, p) * 1000 for p in (0.5, 0.99, 1.0))
    max_ack = max(ack_waits) * 1000 if ack_waits else float("nan")
    print(
        f"slow_consumer{' (baseline, no stalled subscriber)' if args.no_stall else ''}: {args.duration:.0f} s, {args.publishers} publishers x {args.rate}/s, "
        f"{args.size} B, QoS 0/1 alternating; sent {total}, healthy subscriber got {received[0]}; "
        f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms max {worst:.1f} ms; "
        f"publisher PUBACK wait max {max_ack:.1f} ms; $SYS dropped {dropped}; "
        f"RSS start {start_rss} KiB peak {peak} KiB end {end_rss} KiB (bound {bound} KiB)"
    )
    failures = []
    if peak > bound:
        failures.append(f"RSS peak {peak} KiB over the bound {bound} KiB")
    if received[0] < total:
        failures.append(f"healthy subscriber lost {total - received[0]} messages")
    if p99 > args.max_p99_ms:
        failures.append(f"p99 latency {p99:.1f} ms over {args.max_p99_ms} ms")
    if max_ack > 1000:
        failures.append(f"a publisher waited {max_ack:.0f} ms for a PUBACK")
    if stalled is not None:
        if dropped is None or int(dropped) == 0:
            failures.append(f"nothing counted as dropped ({dropped})")
        stalled.close()
    return failures


def churn(args):
    sampler = RssSampler(args.pid, every=1.0)
    sampler.start()
    time.sleep(1.0)
    start_rss = rss_kib(args.pid)
    rng = random.Random(args.seed)
    stop_at = time.monotonic() + args.duration
    warm_rss = None
    warm_at = time.monotonic() + min(30.0, args.duration / 4)
    stats = {"connects": 0, "abrupt": 0, "clean": 0, "resumed": 0, "errors": 0}
    lock = threading.Lock()

    def worker(index):
        open_socks = []
        while time.monotonic() < stop_at:
            persistent = rng.random() < 0.5
            cid = f"churn-{index}-{rng.randrange(args.ids)}" if persistent else f"tmp-{index}-{stats['connects']}"
            will = (f"churn/will/{cid}", b"gone", rng.randrange(2)) if rng.random() < 0.7 else None
            try:
                sock, present = raw_client(args.port, cid, clean=not persistent, will=will)
                sock.sendall(subscribe_packet(1, f"churn/{index}/#", rng.randrange(3)))
                read_exact(sock, 5)
                sock.sendall(packet(0x30, field(f"churn/{index}/x".encode()) + b"hello"))
            except (OSError, RuntimeError, ConnectionError):
                with lock:
                    stats["errors"] += 1
                time.sleep(0.01)
                continue
            open_socks.append(sock)
            with lock:
                stats["connects"] += 1
                stats["resumed"] += present
            # Keep up to `hold` connections of this worker open, then end the oldest.
            while len(open_socks) > args.hold:
                old = open_socks.pop(0)
                if rng.random() < 0.5:
                    old.sendall(b"\xe0\x00")
                    with lock:
                        stats["clean"] += 1
                else:
                    with lock:
                        stats["abrupt"] += 1
                old.close()
        for s in open_socks:
            s.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
    for t in threads:
        t.start()
    while time.monotonic() < stop_at:
        if warm_rss is None and time.monotonic() >= warm_at:
            warm_rss = rss_kib(args.pid)
        time.sleep(0.5)
    for t in threads:
        t.join(30)
    time.sleep(3.0)  # the broker has closed everything
    sampler.stopping.set()
    end_rss = rss_kib(args.pid)
    peak = sampler.peak()
    warm_rss = warm_rss or start_rss
    print(
        f"churn: {args.duration:.0f} s, {args.workers} workers holding {args.hold} each, "
        f"{args.ids} persistent ids per worker; {stats['connects']} connects "
        f"({stats['resumed']} resumed sessions), {stats['abrupt']} abrupt closes (wills), "
        f"{stats['clean']} DISCONNECTs, {stats['errors']} errors; RSS start {start_rss} KiB, "
        f"after warm-up {warm_rss} KiB, peak {peak} KiB, end {end_rss} KiB"
    )
    failures = []
    if end_rss > warm_rss + args.leak_kib:
        failures.append(f"RSS end {end_rss} KiB is more than {args.leak_kib} KiB over the warm-up {warm_rss} KiB")
    if stats["errors"] > stats["connects"] // 100:
        failures.append(f"{stats['errors']} connection errors")
    if stats["connects"] < 1000:
        failures.append(f"only {stats['connects']} connects")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["slow_consumer", "churn"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--rate", type=int, default=500, help="messages/s per publisher")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--bound-kib", type=int, default=10 * 1024)
    ap.add_argument("--max-p99-ms", type=float, default=100)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--hold", type=int, default=20)
    ap.add_argument("--ids", type=int, default=100)
    ap.add_argument("--leak-kib", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-stall", action="store_true")
    args = ap.parse_args()
    failures = slow_consumer(args) if args.scenario == "slow_consumer" else churn(args)
    for f in failures:
        print(f"FAIL: {f}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
