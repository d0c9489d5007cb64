"""Order load and invariant checks for scripts/netfault.sh (standard library only).

Subcommands (scripts/netfault.sh runs each inside the load client's namespace):

  load ORDER_URL RATE SECONDS CUSTOMER OUT.jsonl [--plain]
      Sends orders on a fixed schedule (one thread per order, so a slow answer
      never delays the next), each with its own Idempotency-Key; every 10th key
      is sent again 0.5 s later and every 25th twice at once, on purpose. One
      JSON line per request: key, time sent, latency, status, order id/status.
  probe ORDER_URL SECONDS
      Places one-unit orders (customer nf-probe) until one is answered 201:
      the order service and its breakers are back after a fault.
  stock INVENTORY_URL OUT.json
      The stock of the skus the load orders (the initial stock).
  check ...   (see `check --help`)
      After a fault and the reservation TTL: queries inventory's stock and every
      order of every customer the run used, prints a summary row as JSON and
      explains any invariant that fails on stderr.
  table ROWS.jsonl
      Prints the table; exits 1 when any invariant failed.
"""

import argparse
import http.client
import json
import random
import sqlite3
import sys
import threading
import time
import urllib.parse

SKUS = ["A001", "A002", "B001", "C001"]
# B001 is scarce (scripts/netfault/inventory-catalog.json): orders compete for it.
WEIGHTS = [3, 3, 1, 3]


def request(url, method, path, body=None, headers=None, timeout=10.0):
    """(status, parsed JSON body or None); status 0 when no answer came in time."""
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        payload = json.dumps(body) if body is not None else None
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        all_headers.update(headers or {})
        conn.request(method, path, payload, all_headers)
        res = conn.getresponse()
        raw = res.read()
        try:
            return res.status, json.loads(raw) if raw else None
        except ValueError:
            return res.status, None
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        conn.close()


def order_body(rng, customer, plain=False):
    if plain:  # ample stock only: every refusal is the network's doing
        return {"customer_id": customer, "items": [{"sku": rng.choice(["A001", "A002", "C001"]), "quantity": 1}]}
    skus = rng.sample(SKUS, k=rng.choice([1, 1, 2]), counts=WEIGHTS)
    lines = {sku: rng.randint(1, 3) for sku in skus}
    return {"customer_id": customer, "items": [{"sku": s, "quantity": q} for s, q in lines.items()]}


def load(args):
    rng = random.Random(args.customer)
    total = int(args.rate * args.seconds)
    schedule = []  # (due seconds, key, body)
    for n in range(total):
        key = f"{args.customer}-{n:05d}"
        body = order_body(rng, args.customer, args.plain)
        due = n / args.rate
        schedule.append((due, key, body))
        if args.plain:
            continue
        if n % 10 == 0:
            schedule.append((due + 0.5, key, body))
        if n % 25 == 0:
            schedule.append((due, key, body))
    schedule.sort(key=lambda s: s[0])
    rows, lock = [], threading.Lock()

    def send(due, key, body):
        sent = time.monotonic()
        status, answer = request(args.url, "POST", "/orders", body, {"Idempotency-Key": key}, args.timeout)
        took = (time.monotonic() - sent) * 1000
        answer = answer if isinstance(answer, dict) else {}
        order = answer if 200 <= status < 300 else {}  # else a problem body
        row = {"key": key, "t": round(due, 3), "ms": round(took, 1), "status": status,
               "order_id": order.get("order_id"), "order_status": order.get("status"),
               "code": answer.get("code")}
        with lock:
            rows.append(row)

    start = time.monotonic()
    threads = []
    for due, key, body in schedule:
        delay = start + due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=send, args=(due, key, body), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    with open(args.out, "w") as out:
        for row in sorted(rows, key=lambda r: r["t"]):
            out.write(json.dumps(row) + "\n")


def probe(args):
    deadline = time.monotonic() + args.seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        body = {"customer_id": "nf-probe", "items": [{"sku": "A002", "quantity": 1}]}
        key = f"nf-probe-{time.time_ns()}-{n}"
        status, _ = request(args.url, "POST", "/orders", body, {"Idempotency-Key": key}, 5.0)
        if status == 201:
            return 0
        time.sleep(0.25)
    print(f"the order service placed no order within {args.seconds:g} s", file=sys.stderr)
    return 1


def stock_of(url):
    status, body = request(url, "GET", "/items?skus=" + ",".join(SKUS))
    if status != 200:
        raise SystemExit(f"GET /items answered {status}")
    return {item["sku"]: item["stock"] for item in body["items"]}


def stock(args):
    with open(args.out, "w") as out:
        json.dump(stock_of(args.url), out)


def orders_of(url, customer):
    """Every order of one customer, paging through GET /orders."""
    orders, cursor = [], None
    while True:
        query = {"customer_id": customer, "limit": "200"}
        if cursor:
            query["cursor"] = cursor
        status, body = request(url, "GET", "/orders?" + urllib.parse.urlencode(query))
        if status != 200:
            raise SystemExit(f"GET /orders for {customer} answered {status}")
        orders.extend(body["orders"])
        cursor = body.get("next_cursor")
        if not cursor:
            return orders


def percentile(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100 + 0.999999) - 1)]


def idempotency_problems(rows, orders, db_path):
    """Why the one-key-one-order rule is broken, if it is (a list of reasons)."""
    problems = []
    by_key, by_order = {}, {}
    for row in rows:
        if row["order_id"]:
            by_key.setdefault(row["key"], set()).add(row["order_id"])
            by_order.setdefault(row["order_id"], set()).add(row["key"])
    problems += [f"key {k} answered with orders {sorted(v)}" for k, v in by_key.items() if len(v) > 1]
    problems += [f"order {o} answered for keys {sorted(v)}" for o, v in by_order.items() if len(v) > 1]
    keys = {row["key"] for row in rows}
    if len(orders) > len(keys):
        problems.append(f"{len(orders)} orders stored for {len(keys)} keys")
    if db_path:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        for key, count in db.execute(
            "SELECT idempotency_key, COUNT(*) FROM orders WHERE idempotency_key IS NOT NULL "
            "GROUP BY idempotency_key HAVING COUNT(*) > 1"
        ):
            problems.append(f"key {key} has {count} orders in the store")
    return problems


def placed_units(orders):
    units = {}
    for order in orders:
        if order["status"] in ("confirmed", "pending_pricing"):
            for item in order["items"]:
                units[item["sku"]] = units.get(item["sku"], 0) + item["quantity"]
    return units


def check(args):
    rows = [json.loads(line) for line in open(args.results)]
    with open(args.initial) as f:
        initial = json.load(f)
    now = stock_of(args.inventory)
    everyone = {c: orders_of(args.order, c) for c in args.customers.split(",")}
    mine = everyone[args.customer]
    placed = placed_units([o for orders in everyone.values() for o in orders])
    why = []

    oversold = [s for s in SKUS if now[s] < 0 or placed.get(s, 0) > initial[s]]
    why += [f"oversold {s}: initial {initial[s]}, stock {now[s]}, in placed orders {placed.get(s, 0)}"
            for s in oversold]
    unconserved = [s for s in SKUS if initial[s] != now[s] + placed.get(s, 0)]
    why += [f"not conserved {s}: initial {initial[s]} != stock {now[s]} + placed {placed.get(s, 0)}"
            for s in unconserved]
    idem = idempotency_problems(rows, mine, args.db)
    why += idem
    pending = [o["order_id"] for orders in everyone.values() for o in orders if o["status"] == "pending"]
    why += [f"order {o} still pending" for o in pending]
    fives = [r for r in rows if r["status"] >= 500]
    if args.inventory_reachable == "yes":
        why += [f"{r['status']} {r['code']} at {r['t']} s (key {r['key']})" for r in fives[:5]]

    statuses = {}
    for o in mine:
        statuses[o["status"]] = statuses.get(o["status"], 0) + 1
    answered = [r["ms"] for r in rows if r["status"]]
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    row = {
        "fault": args.fault, "secs": args.window, "sent": len(rows),
        "2xx": sum(200 <= r["status"] < 300 for r in rows),
        "4xx": sum(400 <= r["status"] < 500 for r in rows),
        "5xx": len(fives), "t/o": sum(r["status"] == 0 for r in rows),
        "conf": statuses.get("confirmed", 0), "pp": statuses.get("pending_pricing", 0),
        "rej": statuses.get("rejected", 0), "fail": statuses.get("failed", 0),
        "p50": round(percentile(answered, 50)), "p99": round(percentile(answered, 99)),
        "oversold": verdict(not oversold), "conserved": verdict(not unconserved),
        "idem": verdict(not idem), "final": verdict(not pending),
        "no5xx": verdict(not fives) if args.inventory_reachable == "yes" else "n/a",
    }
    codes = {}
    for r in rows:
        if not 200 <= r["status"] < 300:
            label = f"{r['status']} {r['code'] or ''}".strip() if r["status"] else "timeout"
            codes[label] = codes.get(label, 0) + 1
    for reason in why:
        print(f"  {args.fault}: {reason}", file=sys.stderr)
    with open(args.rows, "a") as out:
        out.write(json.dumps(row) + "\n")
    print_table([row], header=False)
    fallback = sum(o.get("pricing") == "fallback" for o in mine)
    notes = [f"{n} x {c}" for c, n in sorted(codes.items())] + ([f"{fallback} priced by fallback"] if fallback else [])
    if notes:
        print("    (" + ", ".join(notes) + ")")


COLUMNS = [("fault", 14), ("secs", 4), ("sent", 5), ("2xx", 5), ("4xx", 4), ("5xx", 4), ("t/o", 4),
           ("conf", 5), ("pp", 4), ("rej", 4), ("fail", 4), ("p50", 6), ("p99", 6),
           ("oversold", 8), ("conserved", 9), ("idem", 4), ("final", 5), ("no5xx", 5)]


def print_table(rows, header=True):
    if header:
        print(" ".join(f"{name:>{w}}" if i else f"{name:<{w}}" for i, (name, w) in enumerate(COLUMNS)))
    for row in rows:
        print(" ".join(f"{row[name]!s:>{w}}" if i else f"{row[name]!s:<{w}}"
                       for i, (name, w) in enumerate(COLUMNS)))


def table(args):
    rows = [json.loads(line) for line in open(args.rows)]
    print_table(rows)
    verdicts = ("oversold", "conserved", "idem", "final", "no5xx")
    failed = [f"{r['fault']}:{v}" for r in rows for v in verdicts if r[v] == "FAIL"]
    if failed:
        print("FAIL: " + ", ".join(failed))
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("load")
    p.add_argument("url")
    p.add_argument("rate", type=float)
    p.add_argument("seconds", type=float)
    p.add_argument("customer")
    p.add_argument("out")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--plain", action="store_true", help="no repeated keys, no scarce item (the bench row)")
    p = sub.add_parser("probe")
    p.add_argument("url")
    p.add_argument("seconds", type=float)
    p = sub.add_parser("stock")
    p.add_argument("url")
    p.add_argument("out")
    p = sub.add_parser("check")
    p.add_argument("--inventory", required=True)
    p.add_argument("--order", required=True)
    p.add_argument("--fault", required=True)
    p.add_argument("--window", required=True)
    p.add_argument("--customer", required=True)
    p.add_argument("--customers", required=True, help="comma list: every customer the run used")
    p.add_argument("--results", required=True)
    p.add_argument("--initial", required=True)
    p.add_argument("--inventory-reachable", choices=["yes", "no"], required=True)
    p.add_argument("--db", help="the order service's SQLite file (read only)")
    p.add_argument("--rows", required=True)
    p = sub.add_parser("table")
    p.add_argument("rows")
    args = parser.parse_args()
    return {"load": load, "probe": probe, "stock": stock, "check": check, "table": table}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
