#!/usr/bin/env python3
"""QoS 1 retained publishes, 1,000 in flight, against a broker on PORT: the cost of
persistence_sync ack (group commit) against periodic and off. Usage: qos1_rate.py PORT"""
import sys, time
sys.path.insert(0, __import__('os').path.dirname(__file__))
from persistence import connect, publish_batch
port = int(sys.argv[1])
s = connect(port, "rate")
t = time.monotonic()
n = 0
for b in range(40):
    items = [("r/%d" % (i % 5000), b"x" * 64) for i in range(b * 1000, b * 1000 + 1000)]
    publish_batch(s, items)   # 1,000 in flight, then every PUBACK
    n += len(items)
dt = time.monotonic() - t
print("%d QoS 1 retained publishes, 1000 in flight: %.2f s, %.0f msg/s" % (n, dt, n / dt))
