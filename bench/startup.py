"""Time from process start to the first 200 from /health/ready, per service.

Usage: python3 bench/startup.py BIN_DIR [RUNS]

Each service starts on the embedded store, first on an empty data folder
(migrations and catalogue seeding included), then again on the data it left.
Prints the median and the worst of RUNS starts for each case.
"""

import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN_DIR = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        conn.request("GET", "/health/ready")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def start_to_ready(service, data_dir):
    port = free_port()
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", DATA_DIR=data_dir, RUST_LOG="warn")
    if service == "order":
        # Nothing listens there: order degrades around its dependencies and is
        # ready without them.
        env.update(INVENTORY_URL=f"http://127.0.0.1:{free_port()}", PRICING_URL=f"http://127.0.0.1:{free_port()}")
    started = time.perf_counter()
    proc = subprocess.Popen([os.path.join(BIN_DIR, service)], env=env)
    try:
        while not ready(port):
            if proc.poll() is not None:
                sys.exit(f"{service} exited with {proc.returncode}")
            if time.perf_counter() - started > 10:
                sys.exit(f"{service} not ready after 10 s")
            time.sleep(0.001)
        return (time.perf_counter() - started) * 1000
    finally:
        proc.terminate()
        proc.wait()


print(f"{'service':<10} {'data':<8} {'median_ms':>10} {'max_ms':>8}   (start to /health/ready 200, {RUNS} runs)")
for service in ("inventory", "pricing", "order"):
    fresh, existing = [], []
    for _ in range(RUNS):
        data_dir = tempfile.mkdtemp()
        try:
            fresh.append(start_to_ready(service, data_dir))
            existing.append(start_to_ready(service, data_dir))
        finally:
            shutil.rmtree(data_dir)
    for label, times in (("empty", fresh), ("existing", existing)):
        print(f"{service:<10} {label:<8} {statistics.median(times):>10.1f} {max(times):>8.1f}")
