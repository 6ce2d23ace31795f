#!/usr/bin/env python3
"""MQTT over WebSockets with Eclipse paho-mqtt 2.x (transport="websockets").

    python paho_ws_checks.py --host 127.0.0.1 --tcp-port P --ws-port W [--wss-port S --cafile CA]

Prints "PASS name" or "FAIL name: why" per check and exits 1 if any failed. Every
wait is bounded (TIMEOUT); clients are pumped by hand with loop().
"""

import argparse
import sys
import time
import traceback

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT = 10.0


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


class Peer:
    def __init__(self, client_id, port, transport, protocol, host, cafile=None):
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            transport=transport,
        )
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if cafile:
            self.client.tls_set(ca_certs=cafile)
        self.messages = []
        self.connack = None
        self.subacks = 0
        self.client.on_connect = lambda c, u, f, rc, p: setattr(self, "connack", rc)
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, m.qos, m.retain)
        )
        self.client.on_subscribe = lambda c, u, mid, rcs, p: setattr(
            self, "subacks", self.subacks + 1
        )
        self.client.connect(host, port, keepalive=30)
        self.pump(lambda: self.connack is not None, "CONNACK")
        require(not self.connack.is_failure, f"connection refused: {self.connack}")

    def pump(self, done, what, others=()):
        deadline = time.monotonic() + TIMEOUT
        while not done():
            if time.monotonic() > deadline:
                raise CheckFailed(f"timed out waiting for {what}")
            self.client.loop(timeout=0.02)
            for other in others:
                other.client.loop(timeout=0.0)

    def subscribe(self, topic, qos):
        before = self.subacks
        self.client.subscribe(topic, qos)
        self.pump(lambda: self.subacks > before, f"SUBACK for {topic}")

    def close(self):
        self.client.disconnect()
        self.client.loop(timeout=0.1)


def check_round_trip(args, protocol, name):
    """QoS 0, 1 and 2 over WebSockets both ways; payloads up to 200 KB."""
    ws = Peer(f"paho-ws-{name}", args.ws_port, "websockets", protocol, args.host)
    tcp = Peer(f"paho-tcp-{name}", args.tcp_port, "tcp", protocol, args.host)
    topic = f"interop/ws/{name}"
    ws.subscribe(f"{topic}/to-ws/#", 2)
    tcp.subscribe(f"{topic}/to-tcp/#", 2)
    sent = []
    for qos in (0, 1, 2):
        for size in (0, 10, 126, 70_000, 200_000):
            payload = bytes((i * 7 + qos) % 256 for i in range(size))
            tcp.client.publish(f"{topic}/to-ws/{qos}/{size}", payload, qos)
            ws.client.publish(f"{topic}/to-tcp/{qos}/{size}", payload, qos)
            sent.append((qos, size, payload))
    ws.pump(lambda: len(ws.messages) == len(sent) and len(tcp.messages) == len(sent),
            "all messages both ways", others=[tcp])
    for peer, direction in ((ws, "to-ws"), (tcp, "to-tcp")):
        got = {(t, p) for (t, p, _, _) in peer.messages}
        for qos, size, payload in sent:
            require((f"{topic}/{direction}/{qos}/{size}", payload) in got,
                    f"{direction} qos {qos} size {size} missing or changed")
    ws.close()
    tcp.close()


def check_retained_and_will(args, protocol, name):
    """A retained message reaches a WebSocket subscriber; a WebSocket client's will is
    published when its socket is dropped without DISCONNECT."""
    topic = f"interop/ws/{name}/state"
    tcp = Peer(f"paho-tcp-r-{name}", args.tcp_port, "tcp", protocol, args.host)
    tcp.client.publish(topic, b"online", 1, retain=True)
    tcp.subscribe(f"{topic}/will", 1)
    ws = Peer(f"paho-ws-r-{name}", args.ws_port, "websockets", protocol, args.host)
    ws.subscribe(topic, 1)
    ws.pump(lambda: ws.messages, "retained message", others=[tcp])
    require(ws.messages[0][1] == b"online" and ws.messages[0][3], f"got {ws.messages[0]}")
    doomed = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-ws-doomed-{name}",
                         protocol=protocol, transport="websockets")
    doomed.ws_set_options(path="/mqtt")
    doomed.will_set(f"{topic}/will", b"ws client gone", 1)
    connected = []
    doomed.on_connect = lambda c, u, f, rc, p: connected.append(rc)
    doomed.connect(args.host, args.ws_port, keepalive=30)
    deadline = time.monotonic() + TIMEOUT
    while not connected:
        require(time.monotonic() < deadline, "no CONNACK for the client with a will")
        doomed.loop(timeout=0.02)
    doomed.socket().close()  # no DISCONNECT, no close frame: a lost connection
    tcp.pump(lambda: tcp.messages, "the will", others=[ws])
    require(tcp.messages[0][1] == b"ws client gone", f"will: {tcp.messages[0]}")
    tcp.client.publish(topic, b"", 1, retain=True)
    tcp.client.loop(timeout=0.1)
    ws.close()
    tcp.close()


def check_wss(args, protocol, name):
    """WebSockets over TLS (certfile/keyfile on the websockets listener)."""
    ws = Peer(f"paho-wss-{name}", args.wss_port, "websockets", protocol, args.host,
              cafile=args.cafile)
    topic = f"interop/wss/{name}"
    ws.subscribe(topic, 1)
    ws.client.publish(topic, b"secure " * 5000, 1)
    ws.pump(lambda: ws.messages, "message over wss")
    require(ws.messages[0][1] == b"secure " * 5000, "payload changed over wss")
    ws.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tcp-port", type=int, required=True)
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--wss-port", type=int)
    parser.add_argument("--cafile")
    args = parser.parse_args()
    checks = [check_round_trip, check_retained_and_will]
    if args.wss_port:
        checks.append(check_wss)
    failed = 0
    for protocol, label in ((mqtt.MQTTv311, "v311"), (mqtt.MQTTv5, "v5")):
        for check in checks:
            name = f"paho-ws-{check.__name__[6:].replace('_', '-')}-{label}"
            try:
                check(args, protocol, label)
                print(f"PASS {name}", flush=True)
            except Exception as e:  # noqa: BLE001 - any failure fails the check
                failed += 1
                print(f"FAIL {name}: {e}", flush=True)
                if not isinstance(e, CheckFailed):
                    traceback.print_exc()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
