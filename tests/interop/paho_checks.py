#!/usr/bin/env python3
"""Interop checks with Eclipse paho-mqtt 2.x (Python) against a running broker.

    python paho_checks.py --host 127.0.0.1 --port PORT

Each check runs once with MQTT 3.1.1 and once with MQTT 3.1 and prints
"PASS name" or "FAIL name: why". The script exits 1 if any check failed.

Clients are driven by hand, single-threaded: `pump()` calls each client's loop()
until a condition holds or TIMEOUT seconds pass, so every wait is bounded and a
client that loses its connection is never reconnected behind our back (which matters
for the takeover check). Where a check must show that something did *not* arrive, it
publishes a sentinel after it and waits for the sentinel instead of sleeping.
"""

import argparse
import os
import socket
import sys
import time
import traceback

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# Seconds any single wait may take before the check fails.
TIMEOUT = 10.0
# Messages per QoS round trip.
ROUND_TRIP_COUNT = 100

PROTOCOLS = [("v311", mqtt.MQTTv311), ("v31", mqtt.MQTTv31)]


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


class Peer:
    """One paho client and a record of what the broker sent it."""

    def __init__(self, ctx, client_id, clean_session=True):
        self.ctx = ctx
        self.client_id = client_id
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=ctx.protocol,
        )
        self.connack = None  # (reason_code, session_present)
        self.disconnected = False
        self.messages = []
        self.subacks = {}
        self.unsubacks = set()
        self.acked = set()
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish
        ctx.peers.append(self)

    # callbacks (paho CallbackAPIVersion.VERSION2 signatures)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = (reason_code, flags.session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnected = True

    def _on_message(self, client, userdata, msg):
        self.messages.append(msg)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subacks[mid] = [rc.value for rc in reason_codes]

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        self.unsubacks.add(mid)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.acked.add(mid)

    # actions, each waiting for the broker's answer
    def will(self, topic, payload, qos=0, retain=False):
        self.client.will_set(topic, payload, qos=qos, retain=retain)

    def connect(self):
        self.client.connect(self.ctx.host, self.ctx.port, keepalive=30)
        pump(self.ctx, lambda: self.connack is not None, f"CONNACK for {self.client_id}")
        rc, _ = self.connack
        require(not rc.is_failure, f"{self.client_id}: connection refused: {rc}")
        return self

    @property
    def session_present(self):
        return self.connack[1]

    def subscribe(self, topics, qos=0):
        if isinstance(topics, str):
            topics = [topics]
        rc, mid = self.client.subscribe([(t, qos) for t in topics])
        require(rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {mqtt.error_string(rc)}")
        pump(self.ctx, lambda: mid in self.subacks, f"SUBACK for {topics}")
        require(
            self.subacks[mid] == [qos] * len(topics),
            f"SUBACK granted {self.subacks[mid]}, expected {[qos] * len(topics)}",
        )

    def unsubscribe(self, topic):
        rc, mid = self.client.unsubscribe(topic)
        require(rc == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe failed locally: {mqtt.error_string(rc)}")
        pump(self.ctx, lambda: mid in self.unsubacks, f"UNSUBACK for {topic}")

    def publish(self, topic, payload, qos=0, retain=False):
        """Publish and wait until it is written (QoS 0) or acknowledged (QoS 1 and 2)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        require(info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish failed locally: {mqtt.error_string(info.rc)}")
        pump(self.ctx, lambda: info.mid in self.acked, f"PUBACK/PUBCOMP for mid {info.mid} on {topic}")

    def disconnect(self):
        self.client.disconnect()
        pump(self.ctx, lambda: self.disconnected, f"clean disconnect of {self.client_id}")

    def drop(self):
        """Close the socket without DISCONNECT, as a crashed client or a lost link would."""
        sock = self.client.socket()
        require(sock is not None, "no socket to drop")
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        self.disconnected = True

    def wait_messages(self, count, what):
        pump(self.ctx, lambda: len(self.messages) >= count, f"{count} message(s): {what}")

    def is_live(self):
        return self.connack is not None and not self.disconnected


def pump(ctx, condition, what, timeout=TIMEOUT):
    """Run every live client's network loop until condition() holds; fail after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        for peer in ctx.peers:
            if not peer.disconnected:
                peer.client.loop(timeout=0.005)


class Context:
    def __init__(self, host, port, tag, protocol, run_id):
        self.host = host
        self.port = port
        self.tag = tag
        self.protocol = protocol
        self.run_id = run_id
        self.peers = []

    def topic(self, check):
        return f"interop/paho/{self.run_id}/{self.tag}/{check}"

    def client_id(self, name):
        # MQTT 3.1 servers may refuse client ids longer than 23 characters.
        cid = f"pz{self.tag[1:]}-{name}-{self.run_id}"
        assert len(cid) <= 23, cid
        return cid

    def close_all(self):
        for peer in [p for p in self.peers if p.is_live()]:
            try:
                peer.client.disconnect()
                for _ in range(5):
                    peer.client.loop(timeout=0.01)
            except Exception:
                pass
        for peer in self.peers:
            try:
                sock = peer.client.socket()
                if sock is not None:
                    sock.close()
            except Exception:
                pass
        self.peers = []


# ------------------------------------------------------------------------------------
# Checks


def make_round_trip(qos):
    def check(ctx):
        topic = ctx.topic(f"qos{qos}")
        sub = Peer(ctx, ctx.client_id(f"s{qos}")).connect()
        sub.subscribe(topic, qos)
        pub = Peer(ctx, ctx.client_id(f"p{qos}")).connect()
        payloads = [f"message {i} at qos {qos}".encode() for i in range(ROUND_TRIP_COUNT - 3)]
        payloads += [b"", bytes(range(256)), "ünïcödé ✓".encode()]
        for p in payloads:
            pub.publish(topic, p, qos=qos)
        sub.wait_messages(len(payloads), f"QoS {qos} round trip")
        # A sentinel after them: nothing is delivered twice.
        pub.publish(topic, b"end", qos=qos)
        sub.wait_messages(len(payloads) + 1, "sentinel")
        got = [m.payload for m in sub.messages]
        require(got == payloads + [b"end"], f"payloads differ; first 5 received: {got[:5]}")
        require(all(m.topic == topic for m in sub.messages), "wrong topic on a message")
        require(all(m.qos == qos for m in sub.messages), f"QoS {[m.qos for m in sub.messages][:5]}..., expected {qos}")
        require(not any(m.retain for m in sub.messages), "retain flag set on a live message")
        require(not any(m.dup for m in sub.messages), "DUP flag set on a first delivery")

    check.__name__ = f"qos{qos}-round-trip"
    return check


def check_retained(ctx):
    topic = ctx.topic("retained")
    sentinel = topic + "/sentinel"
    pub = Peer(ctx, ctx.client_id("rp")).connect()
    pub.publish(topic, b"stale", qos=1, retain=True)
    pub.publish(topic, b"kept", qos=1, retain=True)
    late = Peer(ctx, ctx.client_id("r1")).connect()
    late.subscribe(topic, 1)
    late.wait_messages(1, "retained message on subscribe")
    m = late.messages[0]
    require((m.payload, m.retain, m.qos) == (b"kept", True, 1), f"got {m.payload!r} retain={m.retain} qos={m.qos}")
    # Cleared by an empty retained message: the next subscriber gets nothing.
    pub.publish(topic, b"", qos=1, retain=True)
    after = Peer(ctx, ctx.client_id("r2")).connect()
    after.subscribe([topic, sentinel], 1)
    pub.publish(sentinel, b"sentinel", qos=1)
    after.wait_messages(1, "sentinel")
    require([m.payload for m in after.messages] == [b"sentinel"], f"got {[m.payload for m in after.messages]}")


def check_will_on_abrupt_close(ctx):
    topic = ctx.topic("will")
    watcher = Peer(ctx, ctx.client_id("ww")).connect()
    watcher.subscribe(topic, 1)
    doomed = Peer(ctx, ctx.client_id("wd"))
    doomed.will(topic, b"doomed went away", qos=1)
    doomed.connect()
    doomed.drop()
    watcher.wait_messages(1, "will message")
    m = watcher.messages[0]
    require((m.topic, m.payload, m.qos, m.retain) == (topic, b"doomed went away", 1, False),
            f"got {m.topic} {m.payload!r} qos={m.qos} retain={m.retain}")


def check_no_will_on_disconnect(ctx):
    topic = ctx.topic("nowill")
    watcher = Peer(ctx, ctx.client_id("nw")).connect()
    watcher.subscribe([topic, topic + "/sentinel"], 1)
    polite = Peer(ctx, ctx.client_id("np"))
    polite.will(topic, b"must not be sent", qos=1)
    polite.connect()
    polite.disconnect()
    pub = Peer(ctx, ctx.client_id("ns")).connect()
    pub.publish(topic + "/sentinel", b"sentinel", qos=1)
    watcher.wait_messages(1, "sentinel")
    require([m.payload for m in watcher.messages] == [b"sentinel"], f"got {[m.payload for m in watcher.messages]}")


def check_persistent_session(ctx):
    topic = ctx.topic("persist")
    cid = ctx.client_id("ps")
    first = Peer(ctx, cid, clean_session=False).connect()
    first.subscribe(topic, 2)
    first.disconnect()
    pub = Peer(ctx, ctx.client_id("pp")).connect()
    sent = []
    for i in range(6):
        qos = 1 + i % 2
        payload = f"queued {i} qos {qos}".encode()
        pub.publish(topic, payload, qos=qos)
        sent.append((payload, qos))
    again = Peer(ctx, cid, clean_session=False).connect()
    if ctx.protocol == mqtt.MQTTv311:
        # MQTT 3.1 has no session present flag.
        require(again.session_present, "CONNACK session present = 0 on resuming a session")
    again.wait_messages(len(sent), "queued messages")
    got = [(m.payload, m.qos) for m in again.messages]
    # Order is only promised within one QoS level [MQTT-4.6.0-6]; mosquitto sends a
    # session's queued QoS 1 messages before its QoS 2 ones.
    for qos in (1, 2):
        require([g for g in got if g[1] == qos] == [s for s in sent if s[1] == qos],
                f"QoS {qos} messages differ or are out of order: got {got}, sent {sent}")
    require(len(got) == len(sent), f"got {got}, expected {sent}")
    again.disconnect()
    # Clean session discards it.
    clean = Peer(ctx, cid, clean_session=True).connect()
    if ctx.protocol == mqtt.MQTTv311:
        require(not clean.session_present, "session present = 1 on a clean session")
    clean.disconnect()


def check_takeover(ctx):
    topic = ctx.topic("takeover")
    cid = ctx.client_id("tk")
    pub = Peer(ctx, ctx.client_id("tp")).connect()
    old = Peer(ctx, cid, clean_session=False).connect()
    old.subscribe(topic, 1)
    new = Peer(ctx, cid, clean_session=False).connect()
    # [MQTT-3.1.4-2]: the server disconnects the existing client with the same id.
    pump(ctx, lambda: old.disconnected, "the old connection to be closed by the broker")
    require(not new.disconnected, "the new connection was closed")
    if ctx.protocol == mqtt.MQTTv311:
        require(new.session_present, "takeover with clean session 0 did not resume the session")
    # The subscription moved to the new connection with the session.
    pub.publish(topic, b"to the new connection", qos=1)
    new.wait_messages(1, "message on the taken-over subscription")
    require([m.payload for m in new.messages] == [b"to the new connection"], f"got {[m.payload for m in new.messages]}")
    require(old.messages == [], "old connection received a message after takeover")
    new.disconnect()
    Peer(ctx, cid, clean_session=True).connect().disconnect()


def check_unsubscribe(ctx):
    topic = ctx.topic("unsub")
    sentinel = topic + "/sentinel"
    sub = Peer(ctx, ctx.client_id("us")).connect()
    sub.subscribe([topic, sentinel], 1)
    pub = Peer(ctx, ctx.client_id("up")).connect()
    pub.publish(topic, b"before", qos=1)
    sub.wait_messages(1, "message before unsubscribe")
    sub.unsubscribe(topic)
    pub.publish(topic, b"after", qos=1)
    pub.publish(sentinel, b"sentinel", qos=1)
    sub.wait_messages(2, "sentinel")
    got = [m.payload for m in sub.messages]
    require(got == [b"before", b"sentinel"], f"got {got}")


def check_wildcards(ctx):
    base = ctx.topic("wild")
    sub = Peer(ctx, ctx.client_id("ws")).connect()
    sub.subscribe([f"{base}/+/temp", f"{base}/b/#"], 0)
    pub = Peer(ctx, ctx.client_id("wp")).connect()
    for t, p in [("a/temp", b"1"), ("a/humidity", b"no"), ("a/temp/x", b"no"), ("b", b"2"), ("b/c/d", b"3")]:
        pub.publish(f"{base}/{t}", p)
    pub.publish(f"{base}/b/end", b"end")
    sub.wait_messages(4, "wildcard matches")
    got = [(m.topic[len(base) + 1:], m.payload) for m in sub.messages]
    require(got == [("a/temp", b"1"), ("b", b"2"), ("b/c/d", b"3"), ("b/end", b"end")], f"got {got}")


CHECKS = [make_round_trip(0), make_round_trip(1), make_round_trip(2), check_retained,
          check_will_on_abrupt_close, check_no_will_on_disconnect, check_persistent_session,
          check_takeover, check_unsubscribe, check_wildcards]


def check_name(fn):
    return fn.__name__.removeprefix("check_").replace("_", "-")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    run_id = os.urandom(2).hex()
    passed = failed = 0
    for tag, protocol in PROTOCOLS:
        for fn in CHECKS:
            name = f"paho-{tag}-{check_name(fn)}"
            ctx = Context(args.host, args.port, tag, protocol, run_id)
            started = time.monotonic()
            try:
                fn(ctx)
            except CheckFailed as e:
                print(f"FAIL {name}: {e}", flush=True)
                failed += 1
            except Exception:
                print(f"FAIL {name}: unexpected error", flush=True)
                traceback.print_exc(file=sys.stdout)
                failed += 1
            else:
                print(f"PASS {name} ({time.monotonic() - started:.2f} s)", flush=True)
                passed += 1
            finally:
                ctx.close_all()
    print(f"paho: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
