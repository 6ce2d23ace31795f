#!/usr/bin/env python3
"""Stand-in clouds for culex's bridge presets (tests/interop/bridge-presets.sh).

    bridge_presets.py aws PORT CERT KEY OUT
    bridge_presets.py azure PORT CERT KEY OUT SAS_KEY_BASE64 HUB DEVICE

A TLS server on 127.0.0.1:PORT that answers MQTT CONNECTs with CONNACK and writes one
JSON line per connection to OUT:

- aws: the ALPN protocol the handshake selected (the server offers only
  x-amzn-mqtt-ca, so a selection means the client offered it; AWS IoT Core on 443 needs
  it) and the CONNECT's protocol level (4 without Mosquitto's bridge bit 0x80);
- azure: the username and whether the password is a valid, unexpired SAS token for
  HUB/devices/DEVICE signed with SAS_KEY_BASE64, checked the way Azure documents the
  computation (quote_plus(resource) + "\\n" + expiry, HMAC-SHA256, base64); an invalid
  one is refused (CONNACK 5), as IoT Hub does.

Runs until killed. Standard library only.
"""

import base64
import hashlib
import hmac
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_packet(conn):
    first = read_exact(conn, 1)[0]
    length, shift = 0, 0
    while True:
        b = read_exact(conn, 1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return first, read_exact(conn, length)


def field(body, at):
    n = int.from_bytes(body[at:at + 2], "big")
    return body[at + 2:at + 2 + n], at + 2 + n


def parse_connect(body):
    _name, at = field(body, 0)
    level, flags = body[at], body[at + 1]
    at += 4  # level, flags, keep alive
    client_id, at = field(body, at)
    if flags & 0x04:  # will
        _topic, at = field(body, at)
        _payload, at = field(body, at)
    username = password = None
    if flags & 0x80:
        username, at = field(body, at)
    if flags & 0x40:
        password, at = field(body, at)
    return level, client_id.decode(), username, password


def sas_valid(token, key, resource):
    prefix = "SharedAccessSignature "
    if not token.startswith(prefix):
        return False, "no SharedAccessSignature prefix"
    parts = dict(urllib.parse.parse_qsl(token[len(prefix):]))
    if parts.get("sr") != resource:
        return False, f"sr {parts.get('sr')!r} is not {resource!r}"
    expiry = int(parts.get("se", "0"))
    if expiry <= time.time():
        return False, "expired"
    to_sign = urllib.parse.quote_plus(resource) + "\n" + str(expiry)
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    if parts.get("sig") != base64.b64encode(digest).decode():
        return False, "bad signature"
    return True, f"se {expiry}"


def serve(conn, mode, args, out, lock):
    try:
        record = {"alpn": conn.selected_alpn_protocol(), "at": time.time()}
        first, body = read_packet(conn)
        if first >> 4 != 1:
            raise ValueError("first packet is not CONNECT")
        level, client_id, username, password = parse_connect(body)
        record.update(level=level, client_id=client_id)
        code = 0
        if mode == "azure":
            key, hub, device = args
            record["username"] = username.decode() if username else None
            ok, why = sas_valid(password.decode() if password else "", key, f"{hub}/devices/{device}")
            record.update(sas_ok=ok, sas=why)
            code = 0 if ok else 5
        with lock:
            out.write(json.dumps(record) + "\n")
            out.flush()
        conn.sendall(bytes([0x20, 2, 0, code]))
        while True:
            first, _ = read_packet(conn)
            if first >> 4 == 12:  # PINGREQ
                conn.sendall(bytes([0xD0, 0]))
            elif first >> 4 == 14:  # DISCONNECT
                break
            elif first >> 4 == 3 and first & 0x06:  # PUBLISH QoS 1/2: PUBACK
                pass
    except (EOFError, OSError, ValueError):
        pass
    finally:
        conn.close()


def main():
    mode, port, cert, key, out_path = sys.argv[1:6]
    args = sys.argv[6:]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if mode == "aws":
        ctx.set_alpn_protocols(["x-amzn-mqtt-ca"])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen()
    out = open(out_path, "a")
    lock = threading.Lock()
    while True:
        raw, _ = listener.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            continue
        threading.Thread(target=serve, args=(conn, mode, args, out, lock), daemon=True).start()


if __name__ == "__main__":
    main()
