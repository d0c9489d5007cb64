"""Steady order load for the resilience run of scripts/bench.sh.

Sends single-unit orders at a fixed rate from a pool of threads (standard
library only) and writes one CSV line per order: the second it was sent (from
the start), its latency in ms, the HTTP status, and the order's pricing
source. scripts/bench.sh starts this, takes dependencies down and up while it
runs, and summarises the CSV.

Usage: resilience.py ORDER_URL RATE SECONDS OUT.csv
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

url, rate, seconds, out_path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
parsed = urllib.parse.urlparse(url)
body = json.dumps({"customer_id": "resilience", "items": [{"sku": "A002", "quantity": 1}]})
threads = 16
lock = threading.Lock()
rows = []
start = time.monotonic()


def worker(index):
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    # Each thread sends every `threads`-th request of the schedule.
    n = index
    while True:
        due = start + n / rate
        if due - start >= seconds:
            break
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.monotonic()
        status, pricing = 0, ""
        try:
            conn.request("POST", "/orders", body, {"Content-Type": "application/json"})
            res = conn.getresponse()
            payload = res.read()
            status = res.status
            if status in (200, 201):
                pricing = json.loads(payload).get("pricing") or ""
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        took_ms = (time.monotonic() - sent) * 1000
        with lock:
            rows.append((sent - start, took_ms, status, pricing))
        n += threads


pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
with open(out_path, "w") as out:
    for row in sorted(rows):
        out.write("%.3f,%.2f,%d,%s\n" % row)
