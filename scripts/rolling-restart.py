#!/usr/bin/env python3
"""A rolling restart under a steady order rate drops nothing.

Two replicas each of identity, inventory, pricing and order on one PostgreSQL (a database
per service, shared by its replicas) and one JetStream nats-server, with access control on
(AUTH_REQUIRED): customers sign in at identity and order with their tokens, order calls
inventory with a token of its own (client credentials), every service verifies tokens with
identity's published keys. Identity's replicas sit behind one address, as behind a
Kubernetes Service: a forwarder on one port that hands each new connection to a replica
whose /health/ready answers 200, in turn (kube-proxy's part); that address is the issuer
every service trusts. The two identity replicas share the signing key (the development key
that the first generates into their shared DATA_DIR). Each order replica's INVENTORY_URL and
PRICING_URL list both replicas of each (its balancer ejects an endpoint it cannot reach and
probes it back). The client sends orders at a steady rate to the order replicas in turn,
through a balancer of its own: it sends only to replicas whose /health/ready answers 200
(polled every 100 ms, so a draining replica gets no new orders), and an order whose
connection was refused goes to the other replica (it never reached a server; every order
carries an Idempotency-Key, so a dropped connection is retried too). Beside the orders,
customers sign in through the identity address, two a second.

Meanwhile every replica is restarted one at a time, identity's, inventory's, pricing's,
then order's: SIGTERM, wait for it to exit (its drain), start the new binary on the same
port, wait until it is ready and back in rotation (the forwarder's, for identity; both order
replicas', for inventory and pricing). Then:

  failed      orders not answered 201 (or 200, a replay), sign-ins not answered 200
  oversold    per sku, stock now + units held by confirmed and pending_pricing orders
              differs from the stock before the run
  unreadable  an order answered 201 that GET /orders/{id} does not return, or returns with
              another status
  exits       a replica that did not exit within SHUTDOWN_TIMEOUT_MS + 5 s of its SIGTERM

One run per RUN argument, LABEL=FROM_BIN_DIR:TO_BIN_DIR (e.g. the baseline's binaries
replaced by HEAD's: the real upgrade); a table of the runs; exit 1 when anything failed.

    scripts/with-postgres.sh python3 scripts/rolling-restart.py head=target/debug:target/debug

scripts/rolling-restart.sh runs it HEAD -> HEAD and baseline -> HEAD. Settings:
ROLLING_RATE (orders a second, default 10), ROLLING_KEEP=1 (keep the logs), NATS_SERVER_BIN.
Needs DATABASE_SERVER_URL (scripts/with-postgres.sh sets it) and psql.
"""

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import stack  # noqa: E402

SKUS = ["A001", "A002", "B001", "C001", "C002"]
RESTOCK = 5000
SERVICES = ("identity", "inventory", "pricing", "order")
CUSTOMERS = 13
PASSWORD = "rolling-restart-password"
OPERATOR = {"email": "operator@rolling.example", "password": "rolling-operator-password", "name": "Operator"}
ORDER_CLIENT = {"client_id": "order", "client_secret": "rolling-order-secret", "scopes": ["inventory:reserve"]}
HELD = ("confirmed", "pending_pricing")


def log(message):
    print(f"rolling-restart: {message}", file=sys.stderr, flush=True)


def http(method, url, body=None, headers=None, timeout=10):
    """(status, parsed body); status 0 with the error's name when no answer came."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None
    except urllib.error.URLError as e:
        return 0, type(e.reason).__name__
    except (OSError, ValueError) as e:
        return 0, type(e).__name__


class Replica(stack.Replica):
    """A replica that runs the binary of the bin_dir it is started from."""

    def start(self, bin_dir):
        super().start(bin_dir)
        running, wanted = os.readlink(f"/proc/{self.proc.pid}/exe"), os.path.realpath(f"{bin_dir}/{self.service}")
        if running != wanted:
            raise stack.StackError(f"{self.name} runs {running}, not {wanted}")

    def terminate(self, limit):
        """SIGTERM, then the seconds it took to exit (None: it did not within limit)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=limit)
            return time.monotonic() - started
        except subprocess.TimeoutExpired:
            stack.stop(self.proc)
            return None


class Shop:
    """The replicas of one run, on databases of their own."""

    def __init__(self, label, work, database_server, nats_url):
        self.label, self.work = label, work
        self.server = database_server.rstrip("/").rsplit("/", 1)[0]
        self.nats_url = nats_url
        self.replicas = {}
        self.identity = None

    def database(self, service, replica=None):
        name = f"rolling_{self.label.replace('-', '_')}_{service}"
        return f"{self.server}/{name}" + (f"?application_name={replica}" if replica else "")

    def create(self):
        common = {"NATS_URL": self.nats_url, "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
                  "CHAOS_DELAY_RATE": "0", "CHAOS_FAILURE_RATE": "0", "AUTH_REQUIRED": "true"}
        for service in SERVICES:
            name = self.database(service).rsplit("/", 1)[1]
            subprocess.run(["psql", "-q", "-d", f"{self.server}/postgres", "-c", f"CREATE DATABASE {name}"],
                           check=True, capture_output=True)
            self.replicas[service] = [
                Replica(service, i, dict(common, DATABASE_URL=self.database(service, f"{service}-{i}")), self.work)
                for i in range(2)]
        self.identity = Forwarder(self.replicas["identity"])
        for replica in self.all():
            replica.env["AUTH_ISSUER"] = self.identity.url
        for replica in self.replicas["identity"]:
            replica.env.update(IDENTITY_ISSUER=self.identity.url, DATA_DIR=os.path.join(self.work, "identity"),
                               IDENTITY_CLIENTS=json.dumps([ORDER_CLIENT]), IDENTITY_OPERATORS=OPERATOR["email"],
                               IDENTITY_ACCOUNTS=json.dumps([OPERATOR]))
        urls = {s: ",".join(r.url for r in self.replicas[s]) for s in ("inventory", "pricing")}
        for replica in self.replicas["order"]:
            replica.env.update(INVENTORY_URL=urls["inventory"], PRICING_URL=urls["pricing"],
                               AUTH_CLIENT_ID=ORDER_CLIENT["client_id"],
                               AUTH_CLIENT_SECRET=ORDER_CLIENT["client_secret"])

    def start(self, bin_dir):
        self.identity.start()
        for service in SERVICES:
            for replica in self.replicas[service]:
                replica.start(bin_dir)

    def all(self):
        return [r for service in SERVICES for r in self.replicas[service]]

    def stop(self):
        for replica in self.all():
            replica.stop()
        if self.identity is not None:
            self.identity.stop()

    def in_rotation(self, replica):
        """Whether both order replicas list REPLICA's URL as an active endpoint, breaker closed."""
        def views(node):
            if isinstance(node, dict):
                if node.get("url") == replica.url and "state" in node:
                    yield node
                for value in node.values():
                    yield from views(value)
            elif isinstance(node, list):
                for value in node:
                    yield from views(value)

        for order in self.replicas["order"]:
            status, health = http("GET", order.url + "/health", timeout=2)
            found = list(views(health)) if status in (200, 503) else []
            breaker = lambda v: v.get("breaker", {}).get("state", "closed") if isinstance(  # noqa: E731
                v.get("breaker"), dict) else v.get("breaker", "closed")
            if not found or any(v["state"] != "active" or breaker(v) != "closed" for v in found):
                return False
        return True


class Readiness:
    """Which replicas answer /health/ready with 200, polled every 100 ms."""

    def __init__(self, replicas):
        self.replicas = replicas
        self.ready = {r.url: True for r in replicas}
        self.turns = itertools.count()
        self.running = True
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self):
        while self.running:
            for replica in self.replicas:
                self.ready[replica.url] = http("GET", replica.url + "/health/ready", timeout=1)[0] == 200
            time.sleep(0.1)

    def next_turn(self):
        """Every replica, starting one further than last time, the ready ones first."""
        turn = next(self.turns) % len(self.replicas)
        ordered = self.replicas[turn:] + self.replicas[:turn]
        return [r for r in ordered if self.ready[r.url]] + [r for r in ordered if not self.ready[r.url]]

    def stop(self):
        self.running = False
        if self.thread.is_alive():
            self.thread.join()


class Forwarder:
    """One address for a service's replicas, as a Kubernetes Service gives: each new
    connection goes to a ready replica, in turn (or the next, if that one refuses it)."""

    def __init__(self, replicas):
        self.readiness = Readiness(replicas)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def start(self):
        self.readiness.thread.start()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while self.readiness.running:
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.forward, args=(conn,), daemon=True).start()

    def forward(self, conn):
        conn.settimeout(None)
        for replica in self.readiness.next_turn():
            try:
                upstream = socket.create_connection(("127.0.0.1", replica.port), timeout=2)
                break
            except OSError:
                continue
        else:
            conn.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        back.start()
        pump(conn, upstream)
        back.join()
        upstream.close()
        conn.close()

    def stop(self):
        self.readiness.stop()
        self.listener.close()


def pump(source, sink):
    """Copies SOURCE to SINK until SOURCE ends, then ends SINK's writing side."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def sign_in(identity, email, password):
    status, answer = http("POST", identity + "/sessions", {"email": email, "password": password})
    if status != 200:
        raise stack.StackError(f"sign-in of {email}: HTTP {status} {answer}")
    return answer["access_token"]


def customers(identity, label):
    """CUSTOMERS new accounts, signed in: [(email, token)]."""
    signed_in = []
    for i in range(CUSTOMERS):
        email = f"customer-{i}@{label}.rolling.example"
        status, answer = http("POST", identity + "/accounts", {"email": email, "password": PASSWORD, "name": f"Customer {i}"})
        if status != 201:
            raise stack.StackError(f"sign-up of {email}: HTTP {status} {answer}")
        signed_in.append((email, sign_in(identity, email, PASSWORD)))
    return signed_in


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


class Client:
    """Orders at a steady rate, to the ready order replicas in turn, each by one of the
    customers; and sign-ins through identity's address, two a second."""

    def __init__(self, orders, rate, customers, identity):
        self.rate, self.customers, self.identity = rate, customers, identity
        self.readiness = Readiness(orders)
        self.lock = threading.Lock()
        self.placed = []  # (order_id, status, items, customer)
        self.failed = []  # (what, status, detail)
        self.redirected = 0
        self.sign_ins = 0
        self.latencies = []
        self.running = True

    def one(self, n):
        sku = SKUS[n % len(SKUS)]
        items = [{"sku": sku, "quantity": 1 + n % 2}]
        customer = n % len(self.customers)
        headers = dict(bearer(self.customers[customer][1]), **{"Idempotency-Key": str(uuid.uuid4())})
        started = time.monotonic()
        status, answer = 0, None
        for replica in self.readiness.next_turn():
            status, answer = http("POST", replica.url + "/orders", {"items": items}, headers)
            if status != 0:
                break
            with self.lock:
                self.redirected += 1
        with self.lock:
            self.latencies.append(time.monotonic() - started)
            if status in (200, 201) and isinstance(answer, dict):
                self.placed.append((answer["order_id"], answer["status"], items, customer))
            else:
                self.failed.append((f"order {n}", status, answer))

    def sign_in_now_and_then(self):
        n = 0
        while self.running:
            email = self.customers[n % len(self.customers)][0]
            status, answer = http("POST", self.identity + "/sessions", {"email": email, "password": PASSWORD})
            with self.lock:
                self.sign_ins += 1
                if status != 200:
                    self.failed.append((f"sign-in {n}", status, answer))
            n += 1
            time.sleep(0.5)

    def run(self):
        self.readiness.thread.start()
        signing_in = threading.Thread(target=self.sign_in_now_and_then, daemon=True)
        signing_in.start()
        with ThreadPoolExecutor(16) as pool:
            n, started = 0, time.monotonic()
            while self.running:
                pool.submit(self.one, n)
                n += 1
                time.sleep(max(0.0, started + n / self.rate - time.monotonic()))
        signing_in.join()
        self.readiness.stop()
        self.sent = n


def wait_for(check, limit):
    """Seconds until CHECK() held (polled every 50 ms), or None after LIMIT seconds."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def stock(shop):
    inventory = shop.replicas["inventory"][0].url
    return {sku: http("GET", f"{inventory}/items/{sku}")[1]["stock"] for sku in SKUS}


def restock(shop, token):
    inventory = shop.replicas["inventory"][0].url
    for sku in SKUS:
        status, answer = http("POST", f"{inventory}/items/{sku}/stock", {"delta": RESTOCK, "reason": "rolling restart"},
                              bearer(token))
        if status != 200:
            raise stack.StackError(f"restock of {sku}: HTTP {status} {answer}")


def restart_all(shop, client, to_dir):
    """Every replica in turn; one row per replica (name, exit s, ready s, back s)."""
    limit = int(os.environ.get("SHUTDOWN_TIMEOUT_MS", "20000")) / 1000 + 6
    rows = []
    for replica in shop.all():
        exited = replica.terminate(limit)
        started = time.monotonic()
        replica.start(to_dir)
        ready = time.monotonic() - started
        if replica.service == "order":
            back = wait_for(lambda: client.readiness.ready[replica.url], 10)
        elif replica.service == "identity":
            back = wait_for(lambda: shop.identity.readiness.ready[replica.url], 10)
        else:
            back = wait_for(lambda: shop.in_rotation(replica), 15)
        rows.append((replica.name, exited, ready, back))
        log(f"{replica.name}: exited {fmt(exited)} s after SIGTERM, ready {ready:.1f} s after its start, "
            f"back in rotation {fmt(back)} s after that")
        time.sleep(1)
    return rows


def fmt(seconds):
    return "-" if seconds is None else f"{seconds:.1f}"


def check(shop, client, initial):
    """(unreadable, oversold skus, figures) once every order is in."""
    orders = shop.replicas["order"]
    held = {sku: 0 for sku in SKUS}
    unreadable = []
    for i, (order_id, status, items, customer) in enumerate(client.placed):
        token = client.customers[customer][1]
        got, body = http("GET", f"{orders[i % 2].url}/orders/{order_id}", headers=bearer(token))
        now = body.get("status") if got == 200 and isinstance(body, dict) else None
        if now is None or (now != status and status != "pending_pricing"):
            unreadable.append((order_id, status, got, now))
        if now in HELD:
            for item in items:
                held[item["sku"]] += item["quantity"]
    after = stock(shop)
    oversold = {sku: (initial[sku], after[sku], held[sku]) for sku in SKUS if after[sku] + held[sku] != initial[sku]}
    return unreadable, oversold, held


def refused_calls(work):
    """Order's calls to inventory and pricing that found a replica gone (its logs' warnings):
    each was tried again on the other replica."""
    count = 0
    for replica in ("order-0", "order-1"):
        with open(os.path.join(work, f"{replica}.log"), errors="replace") as f:
            count += sum(1 for line in f if "downstream call failed" in line and "Connection refused" in line)
    return count


def run(label, from_dir, to_dir, database_server, rate):
    work = tempfile.mkdtemp(prefix=f"rolling-{label}-")
    nats_port = stack.free_port()
    nats_log = os.path.join(work, "nats.log")
    nats = subprocess.Popen(stack.nats_argv(nats_port, os.path.join(work, "nats")),
                            stdout=open(nats_log, "ab"), stderr=subprocess.STDOUT)
    shop = Shop(label, work, database_server, f"nats://127.0.0.1:{nats_port}")
    try:
        stack.listening("nats-server", nats_port, nats, nats_log)
        shop.create()
        shop.start(from_dir)
        anonymous = http("POST", shop.replicas["order"][0].url + "/orders", {"items": [{"sku": SKUS[0], "quantity": 1}]})
        if anonymous[0] != 401:
            raise stack.StackError(f"access control is not on: an anonymous order got HTTP {anonymous[0]}")
        restock(shop, sign_in(shop.identity.url, OPERATOR["email"], OPERATOR["password"]))
        initial = stock(shop)
        client = Client(shop.replicas["order"], rate, customers(shop.identity.url, label), shop.identity.url)
        load = threading.Thread(target=client.run)
        started = time.monotonic()
        load.start()
        time.sleep(3)
        restarts = restart_all(shop, client, to_dir)
        time.sleep(3)
        client.running = False
        load.join()
        seconds = time.monotonic() - started
        unreadable, oversold, held = check(shop, client, initial)
        return dict(label=label, sent=client.sent, placed=len(client.placed), failed=client.failed,
                    sign_ins=client.sign_ins,
                    redirected=client.redirected, absorbed=refused_calls(work), seconds=seconds,
                    restarts=restarts, unreadable=unreadable, oversold=oversold, latencies=sorted(client.latencies), held=sum(held.values()))
    finally:
        shop.stop()
        stack.stop(nats)
        if os.environ.get("ROLLING_KEEP") == "1":
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(results):
    print("\nrun              orders  placed  sign-ins  failed  redirected  order retried  oversold  unreadable"
          "  slow exits  p50/p99 ms  s")
    bad = False
    for r in results:
        slow = sum(1 for _, exited, _, back in r["restarts"] if exited is None or back is None)
        lat = r["latencies"] or [0]
        p50, p99 = lat[len(lat) // 2] * 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        print(f"{r['label']:<16} {r['sent']:>6}  {r['placed']:>6}  {r['sign_ins']:>8}  {len(r['failed']):>6}  "
              f"{r['redirected']:>10}  "
              f"{r['absorbed']:>13}  {len(r['oversold']):>8}  {len(r['unreadable']):>10}  {slow:>10}  {p50:>4.0f}/{p99:<5.0f}  "
              f"{r['seconds']:.0f}")
        for what, status, detail in r["failed"][:10]:
            print(f"  failed: {what}: HTTP {status} {detail}")
        for sku, (initial, after, held) in r["oversold"].items():
            print(f"  {sku}: {initial} before, {after} now + {held} held by orders")
        for row in r["unreadable"][:10]:
            print(f"  unreadable: order {row[0]} answered {row[1]}, read back HTTP {row[2]} {row[3]}")
        bad = bad or r["failed"] or r["oversold"] or r["unreadable"] or slow or r["placed"] == 0
    print("\nrestarts (s): replica, exit after SIGTERM, ready after start, back in rotation after ready")
    for r in results:
        print(f"  {r['label']}: " + "; ".join(f"{n} {fmt(e)}/{s:.1f}/{fmt(b)}" for n, e, s, b in r["restarts"]))
    return 1 if bad else 0


def main():
    runs = sys.argv[1:]
    database_server = os.environ.get("DATABASE_SERVER_URL")
    if not runs or not database_server or any("=" not in r or ":" not in r for r in runs):
        print(__doc__.split("\n\n")[-3], file=sys.stderr)
        print("usage: scripts/with-postgres.sh python3 scripts/rolling-restart.py LABEL=FROM_BIN_DIR:TO_BIN_DIR ...",
              file=sys.stderr)
        return 2
    rate = float(os.environ.get("ROLLING_RATE", "10"))
    results = []
    for spec in runs:
        label, dirs = spec.split("=", 1)
        from_dir, to_dir = (os.path.abspath(d) for d in dirs.split(":", 1))
        log(f"{label}: {from_dir} -> {to_dir}, {rate:g} orders/s")
        results.append(run(label, from_dir, to_dir, database_server, rate))
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
