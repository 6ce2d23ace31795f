#!/usr/bin/env python3
"""A TCP relay that lets connections through only while a file exists.

    bridge_gate.py PORT UPSTREAM_PORT FLAG_FILE

Listens on 127.0.0.1:PORT. A connection accepted while FLAG_FILE exists is relayed both
ways to 127.0.0.1:UPSTREAM_PORT; one accepted while it does not is closed at once (the
bridge sees a failed attempt and tries again). Connections already relayed are left
alone. tests/interop/bridge-backlog.sh puts it between the bridge and the cloud so that,
when the cloud comes back, the cloud's subscriber is ready before the bridge gets in:
the timestamps then measure the bridge's pace, not the subscriber's reconnection.
Runs until killed. Standard library only.
"""

import os
import socket
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    port, upstream, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        if not os.path.exists(flag):
            conn.close()
            continue
        try:
            up = socket.create_connection(("127.0.0.1", upstream), timeout=5)
            up.settimeout(None)
        except OSError:
            conn.close()
            continue
        threading.Thread(target=pump, args=(conn, up), daemon=True).start()
        threading.Thread(target=pump, args=(up, conn), daemon=True).start()


if __name__ == "__main__":
    main()
