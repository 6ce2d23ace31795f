#!/usr/bin/env python3
"""MQTT 5 interop checks with Eclipse paho-mqtt 2.x (Python) against a running broker.

    python paho_v5_checks.py --host 127.0.0.1 --port PORT

Each check prints "PASS name" or "FAIL name: why"; the script exits 1 if any failed.
Statement numbers ([MQTT-x.y.z-n]) are MQTT 5.0's.

As in paho_checks.py, clients are driven by hand, single-threaded: `pump()` runs each
client's loop() until a condition holds or TIMEOUT seconds pass, so every wait is
bounded and no client reconnects behind our back. Where a check must show that something
did *not* arrive, it publishes a sentinel after it and waits for the sentinel; where
time itself is the subject (expiry, will delay) it sleeps for a bounded interval.
"""

import argparse
import os
import socket
import sys
import time
import traceback

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

# Seconds any single wait may take before the check fails.
TIMEOUT = 10.0
# Messages per QoS round trip.
ROUND_TRIP_COUNT = 50


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


def props(packet_type, **values):
    """paho Properties of `packet_type` with the given attributes set."""
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def prop(message, name):
    """A property of a received message, or None if it was not sent."""
    return getattr(message.properties, name, None) if message.properties is not None else None


class Peer:
    """One paho MQTT 5 client and a record of what the broker sent it."""

    def __init__(self, ctx, client_id):
        self.ctx = ctx
        self.client_id = client_id
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.connack = None  # (reason_code, session_present, properties)
        self.disconnected = False
        self.disconnect_reason = None
        self.messages = []
        self.subacks = {}
        self.unsubacks = {}
        self.acked = {}
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
        self.connack = (reason_code, flags.session_present, properties)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnected = True
        self.disconnect_reason = reason_code

    def _on_message(self, client, userdata, msg):
        self.messages.append(msg)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subacks[mid] = [rc.value for rc in reason_codes]

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        self.unsubacks[mid] = [rc.value for rc in reason_codes]

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.acked[mid] = reason_code.value

    # actions, each waiting for the broker's answer
    def will(self, topic, payload, qos=0, retain=False, **will_props):
        properties = props(PacketTypes.WILLMESSAGE, **will_props) if will_props else None
        self.client.will_set(topic, payload, qos=qos, retain=retain, properties=properties)

    def connect(self, clean_start=True, **connect_props):
        self.connack = None
        self.disconnected = False
        properties = props(PacketTypes.CONNECT, **connect_props) if connect_props else None
        self.client.connect(
            self.ctx.host, self.ctx.port, keepalive=30, clean_start=clean_start, properties=properties
        )
        pump(self.ctx, lambda: self.connack is not None, f"CONNACK for {self.client_id}")
        rc = self.connack[0]
        require(not rc.is_failure, f"{self.client_id}: connection refused: {rc}")
        return self

    @property
    def session_present(self):
        return self.connack[1]

    def subscribe(self, topics, qos=0, sub_id=None, **options):
        """Subscribe to one or more filters with the same options; checks the SUBACK."""
        if isinstance(topics, str):
            topics = [topics]
        opts = SubscribeOptions(qos=qos, **options)
        properties = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sub_id) if sub_id else None
        rc, mid = self.client.subscribe([(t, opts) for t in topics], properties=properties)
        require(rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {mqtt.error_string(rc)}")
        pump(self.ctx, lambda: mid in self.subacks, f"SUBACK for {topics}")
        require(
            self.subacks[mid] == [qos] * len(topics),
            f"SUBACK granted {self.subacks[mid]}, expected {[qos] * len(topics)}",
        )

    def publish(self, topic, payload, qos=0, retain=False, **publish_props):
        """Publish and wait until written (QoS 0) or acknowledged; returns the reason code."""
        properties = props(PacketTypes.PUBLISH, **publish_props) if publish_props else None
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        require(info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish failed locally: {mqtt.error_string(info.rc)}")
        pump(self.ctx, lambda: info.mid in self.acked, f"PUBACK/PUBCOMP for mid {info.mid} on {topic!r}")
        return self.acked[info.mid]

    def disconnect(self, **disconnect_props):
        properties = props(PacketTypes.DISCONNECT, **disconnect_props) if disconnect_props else None
        self.client.disconnect(properties=properties)
        pump(self.ctx, lambda: self.disconnected, f"clean disconnect of {self.client_id}")

    def drop(self):
        """Close the socket without DISCONNECT, as a crashed client or a lost link would."""
        sock = self.client.socket()
        require(sock is not None, "no socket to drop")
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        self.disconnected = True

    def wait_messages(self, count, what, timeout=TIMEOUT):
        pump(self.ctx, lambda: len(self.messages) >= count, f"{count} message(s): {what}", timeout)

    def payloads(self):
        return [m.payload for m in self.messages]

    def is_live(self):
        return self.connack is not None and not self.disconnected


def pump(ctx, condition, what, timeout=TIMEOUT):
    """Run every live client's network loop until condition() holds; fail after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.1f} s waiting for {what}")
        for peer in ctx.peers:
            if not peer.disconnected:
                peer.client.loop(timeout=0.005)


def settle(ctx, seconds):
    """Keep every live client's loop running for `seconds` (bounded sleep)."""
    end = time.monotonic() + seconds
    pump(ctx, lambda: time.monotonic() >= end, "a pause", timeout=seconds + 1)


class Context:
    def __init__(self, host, port, run_id):
        self.host = host
        self.port = port
        self.run_id = run_id
        self.peers = []

    def topic(self, check):
        return f"interop/paho5/{self.run_id}/{check}"

    def client_id(self, name):
        return f"p5-{name}-{self.run_id}"

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


def end_session(ctx, cid):
    """Discard a session left on the broker: Clean Start, expiry 0, DISCONNECT."""
    Peer(ctx, cid).connect(clean_start=True).disconnect()


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
        pub.publish(topic, b"end", qos=qos)
        sub.wait_messages(len(payloads) + 1, f"QoS {qos} round trip and sentinel")
        require(sub.payloads() == payloads + [b"end"], f"payloads differ; first 5 received: {sub.payloads()[:5]}")
        require(all(m.topic == topic for m in sub.messages), "wrong topic on a message")
        require(all(m.qos == qos for m in sub.messages), f"QoS {[m.qos for m in sub.messages][:5]}..., expected {qos}")
        require(not any(m.retain for m in sub.messages), "retain flag set on a live message")

    check.__name__ = f"qos{qos}-round-trip"
    return check


def check_properties_forwarded(ctx):
    """User Properties in order [MQTT-3.3.2-17] [MQTT-3.3.2-18], Content Type
    [MQTT-3.3.2-20], Response Topic, Correlation Data and Payload Format Indicator
    [MQTT-3.3.2-4] reach the subscriber unaltered."""
    topic = ctx.topic("props")
    sub = Peer(ctx, ctx.client_id("ps")).connect()
    sub.subscribe(topic, 1)
    pub = Peer(ctx, ctx.client_id("pp")).connect()
    user = [("site", "north"), ("unit", "°C"), ("site", "south")]
    pub.publish(
        topic, b'{"t": 21}', qos=1,
        UserProperty=user,
        ContentType="application/json",
        ResponseTopic=ctx.topic("props/reply"),
        CorrelationData=b"\x00corr\xff",
        PayloadFormatIndicator=1,
    )
    sub.wait_messages(1, "message with properties")
    m = sub.messages[0]
    require(prop(m, "UserProperty") == user, f"UserProperty {prop(m, 'UserProperty')}")
    require(prop(m, "ContentType") == "application/json", f"ContentType {prop(m, 'ContentType')!r}")
    require(prop(m, "ResponseTopic") == ctx.topic("props/reply"), f"ResponseTopic {prop(m, 'ResponseTopic')!r}")
    require(prop(m, "CorrelationData") == b"\x00corr\xff", f"CorrelationData {prop(m, 'CorrelationData')!r}")
    require(prop(m, "PayloadFormatIndicator") == 1, f"PayloadFormatIndicator {prop(m, 'PayloadFormatIndicator')}")


def check_subscription_identifier(ctx):
    """The identifiers of the matching subscriptions come with the message [MQTT-3.3.4-3]:
    for overlapping subscriptions, all of them in a single copy [MQTT-3.3.4-4] or each in
    its own copy [MQTT-3.3.4-5]; none for a subscription without one."""
    base = ctx.topic("subid")
    sub = Peer(ctx, ctx.client_id("is")).connect()
    sub.subscribe(f"{base}/a/#", 1, sub_id=7)
    sub.subscribe(f"{base}/+/x", 1, sub_id=300000)
    sub.subscribe(f"{base}/plain", 1)
    pub = Peer(ctx, ctx.client_id("ip")).connect()
    pub.publish(f"{base}/a/x", b"both", qos=1)
    pub.publish(f"{base}/a/y", b"one", qos=1)
    pub.publish(f"{base}/plain", b"none", qos=1)
    sub.wait_messages(3, "three messages")
    pub.publish(f"{base}/plain", b"sentinel", qos=1)
    pump(ctx, lambda: b"sentinel" in sub.payloads(), "sentinel")
    ids = {}
    for m in sub.messages:
        ids.setdefault(m.payload, []).append(prop(m, "SubscriptionIdentifier"))
    both = ids.get(b"both", [])
    require(both == [[7, 300000]] or both == [[300000, 7]] or sorted(both) == [[7], [300000]],
            f"overlapping subscriptions 7 and 300000 gave: {both}")
    require(ids.get(b"one") == [[7]], f"one: {ids.get(b'one')}")
    require(ids.get(b"none") == [None], f"none: {ids.get(b'none')}")


def check_no_local(ctx):
    """No Local: not sent one's own messages [MQTT-3.8.3-3]; others' are."""
    topic = ctx.topic("nolocal")
    me = Peer(ctx, ctx.client_id("nm")).connect()
    me.subscribe(topic, 1, noLocal=True)
    other = Peer(ctx, ctx.client_id("no")).connect()
    me.publish(topic, b"mine", qos=1)
    other.publish(topic, b"theirs", qos=1)
    me.wait_messages(1, "the other client's message")
    settle(ctx, 0.2)
    require(me.payloads() == [b"theirs"], f"got {me.payloads()}")


def check_retain_as_published(ctx):
    """Retain As Published keeps RETAIN 1 on a live retained message [MQTT-3.3.1-12];
    without it RETAIN is 0 [MQTT-3.3.1-13]."""
    topic = ctx.topic("rap")
    rap = Peer(ctx, ctx.client_id("ra")).connect()
    rap.subscribe(topic, 1, retainAsPublished=True)
    plain = Peer(ctx, ctx.client_id("rn")).connect()
    plain.subscribe(topic, 1)
    pub = Peer(ctx, ctx.client_id("rp")).connect()
    pub.publish(topic, b"retained live", qos=1, retain=True)
    pub.publish(topic, b"not retained", qos=1)
    rap.wait_messages(2, "messages for the Retain As Published subscriber")
    plain.wait_messages(2, "messages for the plain subscriber")
    require([(m.payload, m.retain) for m in rap.messages] == [(b"retained live", True), (b"not retained", False)],
            f"retain as published: {[(m.payload, m.retain) for m in rap.messages]}")
    require([m.retain for m in plain.messages] == [False, False],
            f"plain: {[(m.payload, m.retain) for m in plain.messages]}")
    pub.publish(topic, b"", qos=1, retain=True)


def check_retain_handling(ctx):
    """Retain Handling 0 sends retained messages on every subscribe, 1 only for a new
    subscription, 2 never (section 3.8.3.1, [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11])."""
    topic = ctx.topic("rh")
    sentinel = topic + "/sentinel"
    pub = Peer(ctx, ctx.client_id("hp")).connect()
    pub.publish(topic, b"retained", qos=1, retain=True)
    never = Peer(ctx, ctx.client_id("h2")).connect()
    never.subscribe([topic, sentinel], 1, retainHandling=2)
    new_only = Peer(ctx, ctx.client_id("h1")).connect()
    new_only.subscribe(topic, 1, retainHandling=1)
    new_only.wait_messages(1, "retained message for a new subscription (handling 1)")
    new_only.subscribe([topic, sentinel], 1, retainHandling=1)
    always = Peer(ctx, ctx.client_id("h0")).connect()
    always.subscribe(topic, 1, retainHandling=0)
    always.wait_messages(1, "retained message (handling 0)")
    always.subscribe([topic, sentinel], 1, retainHandling=0)
    always.wait_messages(2, "retained message again on a repeated subscribe (handling 0)")
    pub.publish(sentinel, b"sentinel", qos=1)
    for peer, expected in [(never, [b"sentinel"]), (new_only, [b"retained", b"sentinel"]),
                           (always, [b"retained", b"retained", b"sentinel"])]:
        peer.wait_messages(len(expected), f"sentinel for {peer.client_id}")
        require(peer.payloads() == expected, f"{peer.client_id} got {peer.payloads()}, expected {expected}")
    pub.publish(topic, b"", qos=1, retain=True)


def check_session_expiry(ctx):
    """Session Expiry Interval 60: the session and a QoS 1 message queued for it survive
    the connection; CONNACK says session present [MQTT-3.2.2-2]. Interval 1: after 2 s
    the session is gone [MQTT-3.1.2-23]."""
    topic = ctx.topic("session")
    cid = ctx.client_id("se")
    first = Peer(ctx, cid).connect(clean_start=True, SessionExpiryInterval=60)
    first.subscribe(topic, 1)
    first.disconnect()
    pub = Peer(ctx, ctx.client_id("sp")).connect()
    pub.publish(topic, b"queued while away", qos=1)
    back = Peer(ctx, cid).connect(clean_start=False, SessionExpiryInterval=1)
    require(back.session_present, "CONNACK session present = 0 on resuming the session")
    back.wait_messages(1, "the queued message")
    require(back.payloads() == [b"queued while away"], f"got {back.payloads()}")
    back.disconnect()
    time.sleep(2.2)
    again = Peer(ctx, cid).connect(clean_start=False)
    require(not again.session_present, "session still present 2 s after it expired (interval 1 s)")
    again.disconnect()


def check_message_expiry(ctx):
    """A queued message whose Message Expiry Interval has passed is not delivered
    [MQTT-3.3.2-5]; one still valid is, with the interval counted down [MQTT-3.3.2-6]."""
    topic = ctx.topic("expiry")
    cid = ctx.client_id("me")
    sub = Peer(ctx, cid).connect(clean_start=True, SessionExpiryInterval=60)
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = Peer(ctx, ctx.client_id("mp")).connect()
    pub.publish(topic, b"stale", qos=1, MessageExpiryInterval=1)
    pub.publish(topic, b"fresh", qos=1, MessageExpiryInterval=60)
    time.sleep(2.2)
    back = Peer(ctx, cid).connect(clean_start=False)
    back.wait_messages(1, "the message that has not expired")
    pub.publish(topic, b"sentinel", qos=1)
    back.wait_messages(2, "sentinel")
    require(back.payloads() == [b"fresh", b"sentinel"], f"got {back.payloads()}")
    left = prop(back.messages[0], "MessageExpiryInterval")
    require(left is not None and left <= 58, f"Message Expiry Interval sent: {left} (expected <= 58)")
    back.disconnect()
    end_session(ctx, cid)


def check_topic_alias(ctx):
    """A Topic Alias set with a topic stands for it in later PUBLISH packets with an empty
    topic, and can be set to another topic (section 3.3.2.3.4); subscribers see names."""
    base = ctx.topic("alias")
    sub = Peer(ctx, ctx.client_id("as")).connect()
    sub.subscribe(f"{base}/#", 1)
    pub = Peer(ctx, ctx.client_id("ap")).connect()
    maximum = getattr(pub.connack[2], "TopicAliasMaximum", 0)
    require(maximum >= 2, f"Topic Alias Maximum {maximum} in CONNACK, need 2")
    pub.publish(f"{base}/one", b"1 set", qos=1, TopicAlias=1)
    pub.publish("", b"1 used", qos=1, TopicAlias=1)
    pub.publish(f"{base}/two", b"2 set", qos=0, TopicAlias=2)
    pub.publish("", b"2 used", qos=0, TopicAlias=2)
    pub.publish(f"{base}/three", b"1 reset", qos=1, TopicAlias=1)
    pub.publish("", b"1 used again", qos=1, TopicAlias=1)
    sub.wait_messages(6, "aliased messages")
    got = [(m.topic[len(base) + 1:], m.payload) for m in sub.messages]
    expected = [("one", b"1 set"), ("one", b"1 used"), ("two", b"2 set"), ("two", b"2 used"),
                ("three", b"1 reset"), ("three", b"1 used again")]
    require(got == expected, f"got {got}")


def make_will_client(ctx, name, topic, delay):
    peer = Peer(ctx, ctx.client_id(name))
    peer.will(topic, f"{name} gone".encode(), qos=1, WillDelayInterval=delay)
    return peer


def check_will_delay_reconnect_in_time(ctx):
    """A connection lost and resumed within the Will Delay Interval: the will is not sent
    [MQTT-3.1.3-9]."""
    topic = ctx.topic("willdelay/resumed")
    watcher = Peer(ctx, ctx.client_id("wr")).connect()
    watcher.subscribe([topic, topic + "/sentinel"], 1)
    flaky = make_will_client(ctx, "wf", topic, 2)
    flaky.connect(clean_start=True, SessionExpiryInterval=60)
    flaky.drop()
    time.sleep(0.5)
    flaky.connect(clean_start=False, SessionExpiryInterval=60)
    settle(ctx, 2.5)  # past the will delay
    pub = Peer(ctx, ctx.client_id("ws")).connect()
    pub.publish(topic + "/sentinel", b"sentinel", qos=1)
    watcher.wait_messages(1, "sentinel")
    require(watcher.payloads() == [b"sentinel"], f"got {watcher.payloads()}")
    flaky.disconnect(SessionExpiryInterval=0)


def check_will_delay_sent_after_delay(ctx):
    """A connection lost for good: the will is sent once the Will Delay Interval (2 s)
    has passed [MQTT-3.1.3-9], not before."""
    topic = ctx.topic("willdelay/sent")
    watcher = Peer(ctx, ctx.client_id("wa")).connect()
    watcher.subscribe(topic, 1)
    gone = make_will_client(ctx, "wg", topic, 2)
    gone.connect(clean_start=True, SessionExpiryInterval=60)
    gone.drop()
    dropped = time.monotonic()
    watcher.wait_messages(1, "the delayed will")
    elapsed = time.monotonic() - dropped
    require(watcher.payloads() == [b"wg gone"], f"got {watcher.payloads()}")
    require(elapsed >= 1.8, f"will sent {elapsed:.2f} s after the connection was lost, delay is 2 s")
    end_session(ctx, gone.client_id)


def check_shared_subscription(ctx):
    """A shared subscription's messages are split between its members, each message to
    one of them (section 4.8.2); an ordinary subscriber gets them all."""
    topic = ctx.topic("shared")
    members = [Peer(ctx, ctx.client_id(f"sm{i}")).connect() for i in range(2)]
    for m in members:
        m.subscribe(f"$share/grp/{topic}", 1)
    everyone = Peer(ctx, ctx.client_id("sa")).connect()
    everyone.subscribe(topic, 1)
    pub = Peer(ctx, ctx.client_id("sp")).connect()
    sent = [f"job {i}".encode() for i in range(20)]
    for p in sent:
        pub.publish(topic, p, qos=1)
    pump(ctx, lambda: sum(len(m.messages) for m in members) >= len(sent), "20 messages across the group")
    everyone.wait_messages(len(sent), "all messages for the ordinary subscriber")
    settle(ctx, 0.3)
    got = [p for m in members for p in m.payloads()]
    require(sorted(got) == sorted(sent), f"group got {len(got)} messages: {sorted(got)}")
    counts = [len(m.messages) for m in members]
    require(all(c > 0 for c in counts), f"not split: members got {counts}")
    require(everyone.payloads() == sent, f"ordinary subscriber got {everyone.payloads()}")


CHECKS = [make_round_trip(0), make_round_trip(1), make_round_trip(2), check_properties_forwarded,
          check_subscription_identifier, check_no_local, check_retain_as_published, check_retain_handling,
          check_session_expiry, check_message_expiry, check_topic_alias, check_will_delay_reconnect_in_time,
          check_will_delay_sent_after_delay, check_shared_subscription]


def check_name(fn):
    return fn.__name__.removeprefix("check_").replace("_", "-")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    run_id = os.urandom(2).hex()
    passed = failed = 0
    for fn in CHECKS:
        name = f"paho-v5-{check_name(fn)}"
        ctx = Context(args.host, args.port, run_id)
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
    print(f"paho v5: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
