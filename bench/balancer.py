"""The balancer scenario: three inventory replicas and two pricing replicas on
loopback (each service's replicas share its SQLite store), and the order service
balancing its calls over them, at a steady order rate (oha, latency counted from
when each request was due). Four cases, each run with LOAD_BALANCER=p2c and with
round_robin (order started afresh for each), in one run:

  1. healthy: every replica as it is; also the CPU time per order of every process
     (order and the five replicas) against order calling one inventory and one
     pricing endpoint (a plain URL each);
  2. sick: one inventory replica fails half its calls (its own /admin/chaos);
  3. slow: one inventory replica answers 300 ms late on every call;
  4. kill: one inventory replica SIGKILLed a third into the run, and a new one
     started on its address a second later.

For each it prints the share of orders placed, p50/p99, and each inventory
replica's share of order's reservation calls (from each replica's own /metrics);
in case 4 also the share the new replica took in the run's last third.

Usage: python3 bench/balancer.py    (scripts/bench.sh --balancer builds first)
Settings: BIN_DIR (default target/release), OHA (default .cache/oha/bin/oha),
BALANCER_RATE (orders/s, default 200), BALANCER_SECONDS (per case, default 20),
BENCH_PORT_BASE (27000; this run uses BASE+21..BASE+29). BALANCER_CPU_PAIRS=N measures
only case 1's CPU per order with p2c against one endpoint each, in N pairs.
"""

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (its processes, oha and /proc helpers)

RATE = int(os.environ.get("BALANCER_RATE", "200"))
SECONDS = int(os.environ.get("BALANCER_SECONDS", "20"))
BASE = int(os.environ.get("BENCH_PORT_BASE", "27000")) + 20
INVENTORY_PORTS = [BASE + 1, BASE + 2, BASE + 3]
PRICING_PORTS = [BASE + 4, BASE + 5]
ORDER_PORT = BASE + 6
RESERVATIONS = 'route="/reservations"'


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"Content-Type": "application/json"})
        res = conn.getresponse()
        return res.status, res.read().decode()
    finally:
        conn.close()


def reservations(port):
    """Reservation calls this inventory replica answered (0 when it is down)."""
    try:
        _, text = request(port, "GET", "/metrics")
    except OSError:
        return 0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("http_requests_total{") and RESERVATIONS in line)


class Shop:
    """The replicas, and an order service started per case."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-balancer-")
        self.procs = {}
        self.killed_ticks = 0

    def env(self, port, **extra):
        env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), RUST_LOG="warn", DATA_DIR=self.dir)
        env.update(extra)
        return env

    def launch(self, name, service, port, **extra):
        log = os.path.join(self.dir, f"{name}.log")
        proc = run.PROCESSES.start(run.launcher.service_argv(service, run.BIN_DIR), self.env(port, **extra), log)
        self.procs[name] = proc
        run.wait_ready(name, port, "/health/ready", proc, log)

    def inventory(self, index):
        self.launch(f"inventory-{index}", "inventory", INVENTORY_PORTS[index],
                    INVENTORY_CATALOG=run.CATALOG, CHAOS_CONTROL="on")

    def start(self):
        for index in range(len(INVENTORY_PORTS)):
            self.inventory(index)
        for index, port in enumerate(PRICING_PORTS):
            self.launch(f"pricing-{index}", "pricing", port)
        return self

    def order(self, balancer, inventory=None, pricing=None):
        """Order, started afresh, over every replica (or the URLs given)."""
        if "order" in self.procs:
            run.PROCESSES.stop(self.procs.pop("order"))
        urls = lambda ports: ",".join(f"http://127.0.0.1:{p}" for p in ports)  # noqa: E731
        self.launch("order", "order", ORDER_PORT, LOAD_BALANCER=balancer,
                    INVENTORY_URL=inventory or urls(INVENTORY_PORTS), PRICING_URL=pricing or urls(PRICING_PORTS))

    def kill(self, index):
        proc = self.procs.pop(f"inventory-{index}")
        self.killed_ticks += run.proc_ticks(proc.pid)
        proc.kill()
        proc.wait()
        run.PROCESSES.running.remove(proc)

    def ticks(self):
        """CPU ticks of every process so far, the killed ones' up to their end."""
        return sum(run.proc_ticks(p.pid) for p in self.procs.values()) + self.killed_ticks


def chaos(index, settings):
    status, text = request(INVENTORY_PORTS[index], "PUT", "/admin/chaos", settings)
    if status != 200:
        sys.exit(f"PUT /admin/chaos on inventory-{index}: HTTP {status} {text[:200]}")


HEALED = {"delay_rate": 0, "failure_rate": 0}


def steady():
    """oha at RATE for SECONDS against order."""
    run.PORTS["order"] = ORDER_PORT
    return run.oha(RATE, f"{SECONDS}s")


def shares(before, after):
    calls = [max(0.0, b - a) for a, b in zip(before, after)]
    total = sum(calls) or 1.0
    return [round(100 * c / total) for c in calls]


def measure(shop, name, balancer, during=None):
    """One case: order started afresh, the load, what `during` does meanwhile."""
    shop.order(balancer)
    before = [reservations(p) for p in INVENTORY_PORTS]
    ticks = shop.ticks()
    extra = {}
    worker = threading.Thread(target=during, args=(extra,)) if during else None
    if worker:
        worker.start()
    out = steady()
    if worker:
        worker.join()
    cpu = (shop.ticks() - ticks) / run.TICK
    after = [reservations(p) for p in INVENTORY_PORTS]
    # A killed replica's calls: those it answered before it died, then its successor's.
    after[2] += extra.pop("killed_replica_calls", 0)
    total = out["orders"] + out["non_2xx"]
    row = {"case": name, "balancer": balancer, "placed_pct": round(100 * out["orders"] / total, 2) if total else 0.0,
           "p50_ms": out["p50_ms"], "p99_ms": out["p99_ms"], "shares_pct": shares(before, after),
           "cpu_ms_per_order": round(1000 * cpu / out["orders"], 3) if out["orders"] else None,
           "failures": out["non_2xx_by_kind"]}
    row.update(extra)
    return row


def killing(shop):
    """Case 4's fault: replica 2 SIGKILLed a third into the run, a new one on its
    address a second later; records the new replica's share of the last third."""
    def during(extra):
        time.sleep(SECONDS / 3)
        extra["killed_replica_calls"] = reservations(INVENTORY_PORTS[2])
        shop.kill(2)
        time.sleep(1)
        shop.inventory(2)
        time.sleep(max(0.0, SECONDS / 3 - 1))
        start = [reservations(p) for p in INVENTORY_PORTS]
        time.sleep(max(0.0, SECONDS / 3 - 1))
        extra["new_replica_last_third_pct"] = shares(start, [reservations(p) for p in INVENTORY_PORTS])[2]
    return during


def cpu_pairs(shop, pairs):
    """The balancer's own cost: case 1 with p2c and order over one endpoint each, in
    turns, PAIRS times (one run to the next varies more on this machine than the
    difference): each pair's ratio and the median."""
    ratios = []
    for i in range(pairs):
        one = measure_single(shop)["cpu_ms_per_order"]
        p2c = measure(shop, "healthy", "p2c")["cpu_ms_per_order"]
        ratios.append(p2c / one)
        print(f"pair {i + 1}: one endpoint {one} ms, p2c over the replicas {p2c} ms CPU per order "
              f"({100 * p2c / one:.1f} %)", flush=True)
    ratios.sort()
    print(f"p2c / one endpoint, median of {pairs}: {100 * ratios[len(ratios) // 2]:.1f} % "
          f"(from {100 * ratios[0]:.1f} to {100 * ratios[-1]:.1f} %)")


def main():
    if not os.path.exists(run.OHA):
        sys.exit(f"balancer: oha not found at {run.OHA} (scripts/bench.sh builds it)")
    shop = Shop().start()
    if os.environ.get("BALANCER_CPU_PAIRS"):
        return cpu_pairs(shop, int(os.environ["BALANCER_CPU_PAIRS"]))
    rows = []
    one = measure_single(shop)
    for balancer in ("p2c", "round_robin"):
        rows.append(measure(shop, "healthy", balancer))
        chaos(0, {"failure_rate": 0.5})
        rows.append(measure(shop, "sick (50 % failures)", balancer))
        chaos(0, HEALED)
        chaos(0, {"delay_rate": 1, "delay_ms": {"min": 300, "max": 300}})
        rows.append(measure(shop, "slow (+300 ms)", balancer))
        chaos(0, HEALED)
        rows.append(measure(shop, "kill and replace", balancer, killing(shop)))
    print(f"balancer scenario: {RATE} orders/s for {SECONDS} s per case; 3 inventory and 2 pricing replicas")
    print(f"one endpoint each (plain URLs): {one['placed_pct']} % placed, p50 {one['p50_ms']} ms, "
          f"p99 {one['p99_ms']} ms, {one['cpu_ms_per_order']} ms CPU per order")
    print(f"{'case':<22} {'balancer':<12} {'placed %':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/order':>13}  "
          "inventory shares %  (new replica, last third)")
    for r in rows:
        extra = f"  ({r['new_replica_last_third_pct']} %)" if "new_replica_last_third_pct" in r else ""
        print(f"{r['case']:<22} {r['balancer']:<12} {r['placed_pct']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} "
              f"{r['cpu_ms_per_order']!s:>13}  {r['shares_pct']}{extra}  {r['failures'] or ''}")
    out = os.path.join("bench", "results", "balancer.json")
    with open(out, "w") as f:
        json.dump({"rate": RATE, "seconds": SECONDS, "bin_dir": run.BIN_DIR, "one_endpoint": one, "rows": rows},
                  f, indent=1)
    print(f"written to {out}")


def measure_single(shop):
    """Order over one inventory and one pricing endpoint (plain URLs, as before
    the balancer), healthy: the yardstick of case 1's CPU per order."""
    shop.order("p2c", inventory=f"http://127.0.0.1:{INVENTORY_PORTS[0]}",
               pricing=f"http://127.0.0.1:{PRICING_PORTS[0]}")
    ticks = shop.ticks()
    out = steady()
    cpu = (shop.ticks() - ticks) / run.TICK
    total = out["orders"] + out["non_2xx"]
    return {"placed_pct": round(100 * out["orders"] / total, 2) if total else 0.0, "p50_ms": out["p50_ms"],
            "p99_ms": out["p99_ms"], "cpu_ms_per_order": round(1000 * cpu / out["orders"], 3) if out["orders"] else None}


if __name__ == "__main__":
    main()
