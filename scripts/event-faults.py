#!/usr/bin/env python3
"""Events under faults: every committed change has its event once, in order, whatever breaks.

Two replicas of each producing service (inventory, pricing, order) on one PostgreSQL
(one database per service, shared by its replicas), a 3-node JetStream cluster on
loopback (every stream replicated 3 times), and a steady mixed workload: orders
(through either order replica), restocks and stock takes at inventory, price changes at
pricing, and bare reservations left to expire. The run is a series of phases; in each a
share of the operations is sent while one fault is injected, then the script waits for
every outbox to drain and every consumer to catch up, and checks, from the databases
and the streams:

  lost        an outbox row (a committed change) with no message of its id in its stream
  dups        a message id stored more than once in a stream (the duplicate window and the
              relay's fencing must stop a republish)
  reordered   per aggregate (sku, order), the events do not follow each other: each
              stock_changed's previous_stock is the stock of the sku's event before it, each
              price_changed's previous_price the price before it, an order's cancellation
              comes after its confirmation
  effects     each consumer's effect once: order-prices' inbox holds every price_changed
              event (once: it is the inbox's key) and order's last-seen prices equal pricing's;
              no order is left pending (order-expiries, or recovery, resolved it)
  dead        dead letters (none is expected: no poison event is injected)
  projection  the stock level of each sku's last stock_changed event equals GET /items

Faults (in this order; each its own phase):
  baseline      none
  node-kill     SIGKILL a nats-server node (not the inventory stream's leader), start it again
  relay-freeze  SIGSTOP an inventory replica in a burst of its own changes, three times: the
                other replica must drain the outbox while it is frozen (within 20 s); the
                last freeze outlasts the duplicate window and ends in a SIGKILL and a restart
  consumer-kill SIGKILL an order replica while price changes flow to its consumers, start it
  leader-kill   SIGKILL the inventory stream's leader in the middle of a burst, start it again

Prints one row per phase (fault, events, duplicates dropped, reordered, lost, seconds to
drain) and exits 1 when any invariant fails, 2 when it could not run.

    scripts/with-postgres.sh python3 scripts/event-faults.py

Settings: FAULTS_OPERATIONS (default 2000, spread over the phases), FAULTS_CONCURRENCY
(default 8), FAULTS_ONLY (comma list of phases), FAULTS_KEEP=1 (keep the logs), BIN_DIR /
PROFILE (the service binaries; default target/debug), NATS_SERVER_BIN.
Needs DATABASE_SERVER_URL (scripts/with-postgres.sh sets it) and psql.
"""

import base64
import json
import os
import random
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
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import stack  # noqa: E402

SKUS = ["A001", "A002", "B001", "C001", "C002"]
DUPLICATE_WINDOW_MS = 10000  # at least twice the relay lease (5 s), as the services require
RESERVATION_TTL_MS = 1500
PHASES = ["baseline", "node-kill", "relay-freeze", "consumer-kill", "leader-kill"]
STREAMS = {"inventory": "SHOP_INVENTORY", "pricing": "SHOP_PRICING", "order": "SHOP_ORDER"}


def log(message):
    print(f"event-faults: {message}", file=sys.stderr, flush=True)


class Nats:
    """Just enough of the NATS protocol for JetStream API requests (standard library only)."""

    def __init__(self, ports):
        self.ports = ports
        self.sock = None

    def _connect(self):
        last = None
        for port in random.sample(self.ports, len(self.ports)):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                self.sock, self.buffer = sock, b""
                self._line()  # INFO
                sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n'
                             b"SUB _INBOX.faults.* 1\r\nPING\r\n")
                while self._line() != b"PONG":
                    pass
                return
            except OSError as e:
                last = e
        raise OSError(f"no nats-server answers: {last}")

    def _line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("the nats-server closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buffer) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("the nats-server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n + 2:]
        return data

    def request(self, subject, body=None, attempts=20):
        """The JSON answer of a JetStream API request; reconnects to another node on failure."""
        payload = json.dumps(body if body is not None else {}).encode()
        for attempt in range(attempts):
            try:
                if self.sock is None:
                    self._connect()
                inbox = f"_INBOX.faults.{random.getrandbits(64):x}"
                self.sock.sendall(f"PUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\n")
                while True:
                    line = self._line()
                    if line == b"PING":
                        self.sock.sendall(b"PONG\r\n")
                        continue
                    parts = line.split()
                    if parts[:1] == [b"MSG"]:
                        data = self._bytes(int(parts[-1]))
                        if parts[1].decode() == inbox:
                            return json.loads(data)
                    elif parts[:1] == [b"HMSG"]:
                        data = self._bytes(int(parts[-1]))
                        if parts[1].decode() == inbox:
                            raise OSError(f"no answer to {subject}: {data[:60]!r}")
            except (OSError, ValueError) as e:
                if self.sock is not None:
                    self.sock.close()
                self.sock = None
                if attempt == attempts - 1:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def stream_info(self, stream, attempts=40):
        """The stream's info; asked again while the cluster answers with an error (an election)."""
        for _ in range(attempts):
            answer = self.request(f"$JS.API.STREAM.INFO.{stream}")
            if "error" not in answer or answer["error"].get("err_code") == 10059:  # 10059: no such stream
                return answer
            time.sleep(0.25)
        raise OSError(f"no info on {stream}: {answer}")

    def leader(self, stream):
        return self.stream_info(stream).get("cluster", {}).get("leader")

    def messages(self, stream):
        """Every message of `stream`: (sequence, subject, headers text, CloudEvent)."""
        state = self.stream_info(stream)["state"]
        out = []
        if not state["messages"]:
            return out
        for seq in range(state["first_seq"], state["last_seq"] + 1):
            message = self.message(stream, seq)
            if message is None:
                continue
            event = json.loads(base64.b64decode(message.get("data", "")) or b"null")
            headers = base64.b64decode(message.get("hdrs", "") or b"").decode(errors="replace")
            out.append((seq, message["subject"], headers, event))
        return out

    def message(self, stream, seq, attempts=40):
        """Message `seq` of `stream` (None: deleted). An error answer (no leader during an
        election, a node catching up) is asked again: a message unread is not a message lost."""
        for _ in range(attempts):
            answer = self.request(f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": seq})
            if "message" in answer:
                return answer["message"]
            error = answer.get("error", {})
            if error.get("err_code") == 10037:  # no message found: deleted
                return None
            time.sleep(0.25)
        raise OSError(f"{stream} message {seq} could not be read: {answer}")

    def consumer_pending(self, stream, consumer):
        info = self.request(f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")
        if "error" in info:
            return None
        return info["num_pending"] + info["num_ack_pending"]


def http(method, url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


class Cluster:
    """Three JetStream nats-server processes on loopback, routed to each other."""

    def __init__(self, work):
        self.work = work
        self.client = [stack.free_port() for _ in range(3)]
        self.routes = [stack.free_port() for _ in range(3)]
        self.procs = [None, None, None]

    def argv(self, i):
        server = stack.nats_server()
        if not server:
            raise stack.StackError("no nats-server: apt-get install nats-server, or set NATS_SERVER_BIN")
        routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(self.routes) if j != i)
        return [server, "-js", "-sd", os.path.join(self.work, f"nats-{i}"), "-a", "127.0.0.1",
                "-p", str(self.client[i]), "-n", f"n{i}", "--cluster_name", "shopfaults",
                "--cluster", f"nats://127.0.0.1:{self.routes[i]}", "--routes", routes]

    def start(self, i):
        path = os.path.join(self.work, f"nats-{i}.log")
        self.procs[i] = subprocess.Popen(self.argv(i), stdout=open(path, "ab"), stderr=subprocess.STDOUT)
        stack.listening(f"nats n{i}", self.client[i], self.procs[i], path)

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def url(self):
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.client)

    def stop(self):
        for proc in self.procs:
            if proc is not None:
                stack.stop(proc)


class Replica(stack.Replica):
    """A replica started again under the same port after a kill."""

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def metric(self, name, **labels):
        """The sum of `name`'s samples whose labels include `labels` (0 when unreachable)."""
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as answer:
                text = answer.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line[len(name):len(name) + 1] not in ("{", " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


class Shop:
    def __init__(self, work, database_server):
        self.work = work
        self.cluster = Cluster(work)
        self.database_server = database_server.rstrip("/").rsplit("/", 1)[0]
        self.replicas = {}
        # Seconds the other inventory replica took to drain the outbox while one was
        # frozen (None: it did not within 20 s).
        self.frozen_drains = []

    def database(self, service, replica=None):
        """The service's database URL; a replica's names it to PostgreSQL (`application_name`)."""
        url = f"{self.database_server}/faults_{service}"
        return f"{url}?application_name={replica}" if replica else url

    def psql(self, service, sql):
        out = subprocess.run(["psql", "-At", "-F", "\t", "-d", self.database(service), "-c", sql],
                             capture_output=True, text=True, check=True)
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def start(self):
        for service in ("inventory", "pricing", "order"):
            subprocess.run(["psql", "-q", "-d", f"{self.database_server}/postgres", "-c",
                            f"CREATE DATABASE faults_{service}"], check=True, capture_output=True)
        for i in range(3):
            self.cluster.start(i)
        common = {
            "NATS_URL": self.cluster.url(), "EVENTS_STREAM_REPLICAS": "3",
            "EVENTS_DUPLICATE_WINDOW_MS": str(DUPLICATE_WINDOW_MS),
            "EVENTS_OUTBOX_RETENTION_MS": str(24 * 3600 * 1000),
            # A consumer's dependency frozen for a minute (relay-freeze) is not a poison event:
            # deliveries enough to outlast it. A killed consumer's events come back in 5 s.
            "EVENTS_REDELIVERY_BACKOFF_MS": "200,500,1000,2000", "EVENTS_MAX_DELIVER": "100",
            "EVENTS_ACK_WAIT_MS": "5000",
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"), "DRAIN_DELAY_MS": "0",
        }
        for service in ("inventory", "pricing"):
            extra = {"RESERVATION_TTL_MS": str(RESERVATION_TTL_MS)} if service == "inventory" else {}
            self.replicas[service] = [
                Replica(service, i, dict(common, DATABASE_URL=self.database(service, f"{service}-{i}"), **extra),
                        self.work) for i in range(2)]
            for replica in self.replicas[service]:
                replica.start()
        self.replicas["order"] = [
            Replica("order", i, dict(common, DATABASE_URL=self.database("order", f"order-{i}"),
                                     RESERVATION_TTL_MS=str(RESERVATION_TTL_MS),
                                     INVENTORY_URL=self.replicas["inventory"][i].url,
                                     PRICING_URL=self.replicas["pricing"][i].url), self.work)
            for i in range(2)]
        for replica in self.replicas["order"]:
            replica.start()
        self.nats = Nats(self.cluster.client)

    def all_replicas(self):
        return [r for rs in self.replicas.values() for r in rs]

    def stop(self):
        for replica in self.all_replicas():
            replica.stop()
        self.cluster.stop()


class Workload:
    """The operations of one phase, sent from a thread pool; counts the answers."""

    def __init__(self, shop, seed):
        self.shop = shop
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.answers = {}

    def one(self, n):
        rng = random.Random(n)
        kind = rng.choices(["order", "restock", "take", "price", "hold"], weights=[55, 15, 5, 15, 10])[0]
        replicas = self.shop.replicas
        sku = rng.choice(SKUS)
        if kind == "order":
            target = rng.choice(replicas["order"]).url
            status, body = http("POST", target + "/orders", {
                "customer_id": f"faults-{n % 17}", "items": [{"sku": sku, "quantity": rng.randint(1, 3)}]})
            if status == 201 and body and rng.random() < 0.2:
                http("POST", f"{target}/orders/{body['order_id']}/cancel")
        elif kind in ("restock", "take"):
            delta = rng.randint(5, 40) if kind == "restock" else -rng.randint(1, 3)
            status, _ = http("POST", f"{rng.choice(replicas['inventory']).url}/items/{sku}/stock",
                             {"delta": delta, "reason": f"fault run {kind}"})
        elif kind == "price":
            status, _ = http("PUT", f"{rng.choice(replicas['pricing']).url}/price/{sku}", {
                "base_price": round(rng.uniform(5, 500), 2), "discount_percent": rng.choice([0, 5, 10])})
        else:
            status, _ = http("POST", f"{rng.choice(replicas['inventory']).url}/reservations", {
                "reservation_id": f"faults-hold-{n}", "lines": [{"sku": sku, "quantity": 1}]})
        with self.lock:
            self.answers[(kind, status)] = self.answers.get((kind, status), 0) + 1

    def run(self, first, count, concurrency, during=None):
        """Sends operations first..first+count; `during` (a function) runs at the halfway mark."""
        with ThreadPoolExecutor(concurrency) as pool:
            half = count // 2
            list(pool.map(self.one, range(first, first + half)))
            fault = pool.submit(during) if during else None
            list(pool.map(self.one, range(first + half, first + count)))
            if fault:
                fault.result()


def metric_total(shop, name, **labels):
    return sum(r.metric(name, **labels) for r in shop.all_replicas())


def drained(shop):
    """Whether every outbox is empty of unsent rows and order's consumers have caught up."""
    for service in STREAMS:
        if int(shop.psql(service, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")[0][0]):
            return False
    for stream, consumer in (("SHOP_PRICING", "order-prices"), ("SHOP_INVENTORY", "order-expiries")):
        pending = shop.nats.consumer_pending(stream, consumer)
        if pending is None or pending > 0:
            return False
    return True


def wait_drained(shop, limit=120):
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if drained(shop):
            return time.monotonic() - started
        time.sleep(0.2)
    return None


class Counters:
    """A counter summed over the replicas, carried across the kills that reset a replica's."""

    def __init__(self, shop, name, **labels):
        self.shop, self.name, self.labels = shop, name, labels
        self.carried = 0.0

    def total(self):
        return self.carried + metric_total(self.shop, self.name, **self.labels)

    def before_kill(self, replica):
        self.carried += replica.metric(self.name, **self.labels)


def chain_breaks(events, field, previous_field):
    """Events whose `previous_field` is not the `field` of their aggregate's event before them."""
    last, breaks = {}, []
    for event in events:
        data = event.get("data") or {}
        key = event.get("subject")
        before = data.get(previous_field)
        if key in last and before is not None and before != last[key]:
            breaks.append(f"{event['type']} {key}: {previous_field} {before} after {last[key]}")
        last[key] = data.get(field)
    return breaks


def order_breaks(events):
    """Orders whose events are out of their life's order (a cancellation first)."""
    seen, breaks = {}, []
    for event in events:
        kind = event["type"].rsplit(".", 1)[1]
        before = seen.setdefault(event["subject"], [])
        if before and before[-1] == "cancelled":
            breaks.append(f"order {event['subject']}: {kind} after cancelled")
        before.append(kind)
    return breaks


def check(shop):
    """The invariants, from the databases and the streams; (figures, problems)."""
    problems, figures, published = [], {}, {}
    for service, stream in STREAMS.items():
        messages = shop.nats.messages(stream)
        published[service] = [m[3] for m in messages if isinstance(m[3], dict)]
        ids = [event["id"] for event in published[service]]
        outbox = {row[0] for row in shop.psql(service, "SELECT id FROM outbox")}
        lost = outbox - set(ids)
        dups = len(ids) - len(set(ids))
        phantom = set(ids) - outbox
        figures[f"{service}_events"] = len(ids)
        figures["lost"] = figures.get("lost", 0) + len(lost)
        figures["dups"] = figures.get("dups", 0) + dups
        if lost:
            info = shop.nats.stream_info(stream)
            unmarked = shop.psql(service, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")[0][0]
            log(f"{stream}: {len(lost)} of {len(outbox)} outbox rows ({unmarked} unsent) not in the stream; "
                f"its state {json.dumps(info.get('state'))}, cluster {json.dumps(info.get('cluster'))}")
        for name, found in (("lost", sorted(lost)[:3]), ("phantom", sorted(phantom)[:3])):
            if found:
                problems.append(f"{stream}: {name} events, e.g. {found}")
        if dups:
            problems.append(f"{stream}: {dups} message ids stored more than once")
    of_type = lambda service, suffix: [e for e in published[service] if e["type"].endswith(suffix)]  # noqa: E731
    stock = of_type("inventory", ".stock_changed")
    breaks = (chain_breaks(stock, "stock", "previous_stock")
              + chain_breaks(of_type("pricing", ".price_changed"), "price", "previous_price")
              + order_breaks(published["order"]))
    figures["reordered"] = len(breaks)
    problems += [f"out of order: {b}" for b in breaks[:5]]
    problems += check_effects(shop, published)
    dead = shop.nats.messages("SHOP_DEAD_LETTERS")
    if dead:
        reasons = sorted({line.split(":", 1)[1].strip() for _, _, headers, _ in dead
                          for line in headers.splitlines() if line.startswith("Shop-Dead-Letter-Reason:")})
        problems.append(f"{len(dead)} dead letters: {reasons[:3]}")
    projection = {}
    for event in stock:
        projection[event["subject"]] = (event.get("data") or {}).get("stock")
    _, items = http("GET", shop.replicas["inventory"][0].url + "/items?skus=" + ",".join(SKUS))
    for item in (items or {}).get("items", []):
        if item["sku"] in projection and projection[item["sku"]] != item["stock"]:
            problems.append(f"projection: {item['sku']} is {projection[item['sku']]} from the events, "
                            f"{item['stock']} at inventory")
    return figures, problems


def check_effects(shop, published):
    """Order's consumers: every event they take handled once, and the prices they keep current."""
    problems = []
    inbox = {}
    for consumer, event_id in shop.psql("order", "SELECT consumer, event_id FROM inbox"):
        inbox.setdefault(consumer, set()).add(event_id)
    prices = {e["id"] for e in published["pricing"] if e["type"].endswith(".price_changed")}
    missing = prices - inbox.get("order-prices", set())
    if missing:
        problems.append(f"order-prices: {len(missing)} events never handled, e.g. {sorted(missing)[:2]}")
    # order-expiries resolves the pending order whose reservation expired (recovery may
    # have done it first): none is left pending once the events are taken.
    pending = int(shop.psql("order", "SELECT COUNT(*) FROM orders WHERE status = 'pending'")[0][0])
    if pending:
        problems.append(f"order-expiries: {pending} orders still pending")
    kept = {sku: int(cents) for sku, cents in shop.psql("order", "SELECT sku, unit_price_cents FROM last_prices")}
    for sku in SKUS:
        status, price = http("GET", f"{shop.replicas['pricing'][0].url}/price/{sku}")
        if status == 200 and sku in kept and kept[sku] != round(price["final_price"] * 100):
            problems.append(f"order-prices: {sku} kept at {kept[sku]} cents, pricing says {price['final_price']}")
    return problems


def inventory_leader(shop):
    """The index of the node leading the inventory stream."""
    name = shop.nats.leader("SHOP_INVENTORY") or "n0"
    return int(name[1:])


def fault_node_kill(shop, counters):
    node = (inventory_leader(shop) + 1) % 3
    log(f"SIGKILL nats node n{node}")
    shop.cluster.kill(node)
    time.sleep(3)
    shop.cluster.start(node)


def unsent(shop, service):
    return int(shop.psql(service, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")[0][0])


def restock_burst(url, count, threads):
    """`count` one-unit restocks at `url` from `threads` threads (keeps its relay busy)."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: http("POST", f"{url}/items/{SKUS[i % len(SKUS)]}/stock",
                                     {"delta": 1, "reason": "burst"}, timeout=30), range(count)))


def lease_owner(shop):
    rows = shop.psql("inventory", "SELECT owner FROM outbox_lease WHERE name = 'relay'")
    return rows[0][0] if rows else None


def fault_relay_freeze(shop, counters):
    """SIGSTOP inventory-0 in a burst of its own changes (so its relay likely holds the
    outbox's lease), three times; each time the other replica must drain the outbox while
    it is frozen.
    The last freeze outlasts the duplicate window and ends in a SIGKILL."""
    frozen, other = shop.replicas["inventory"]
    for counter in counters:
        counter.before_kill(frozen)
    for attempt in range(3):
        burst = threading.Thread(target=restock_burst, args=(frozen.url, 400, 8))
        burst.start()
        time.sleep(0.3)
        owner = lease_owner(shop)
        frozen.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        # A write of the frozen replica's that holds a sku's row lock holds these up until
        # PostgreSQL ends its idle transaction (idle_in_transaction_session_timeout).
        for i in range(10):
            http("POST", f"{other.url}/items/{SKUS[i % len(SKUS)]}/stock", {"delta": 1, "reason": "beside"},
                 timeout=30)
        written = time.monotonic()
        while unsent(shop, "inventory") and time.monotonic() - written < 20:
            time.sleep(0.1)
        left = unsent(shop, "inventory")
        # The lease moved: the frozen replica held it (it was relaying its burst).
        caught = lease_owner(shop) != owner
        shop.frozen_drains.append(None if left else round(time.monotonic() - written, 1))
        log(f"SIGSTOP {frozen.name} ({attempt + 1}/3, {'holding' if caught else 'not holding'} the lease): "
            f"10 writes through {other.name} took {written - stopped:.1f} s; the outbox "
            + (f"still had {left} unsent 20 s later" if left else
               f"was drained {shop.frozen_drains[-1]:.1f} s later"))
        if attempt < 2:
            frozen.proc.send_signal(signal.SIGCONT)
            burst.join()
    time.sleep(max(0.0, DUPLICATE_WINDOW_MS / 1000 + 1 - (time.monotonic() - stopped)))
    log(f"SIGKILL {frozen.name}, frozen past the duplicate window ({DUPLICATE_WINDOW_MS} ms)")
    frozen.kill()
    burst.join()
    frozen.start()


def fault_consumer_kill(shop, counters):
    replica = shop.replicas["order"][1]
    pricing = shop.replicas["pricing"][1].url
    for i in range(30):
        http("PUT", f"{pricing}/price/{SKUS[i % len(SKUS)]}", {"base_price": 10 + i, "discount_percent": 0})
    for counter in counters:
        counter.before_kill(replica)
    log(f"SIGKILL {replica.name} while its consumers take 30 price changes")
    replica.kill()
    time.sleep(1)
    replica.start()


def fault_leader_kill(shop, counters):
    node = inventory_leader(shop)
    inventory = shop.replicas["inventory"][1].url
    burst = threading.Thread(target=lambda: [http("POST", f"{inventory}/items/{SKUS[i % len(SKUS)]}/stock",
                                                   {"delta": 1, "reason": "burst"}) for i in range(200)])
    burst.start()
    time.sleep(0.3)
    log(f"SIGKILL nats node n{node}, the inventory stream's leader, in a burst of restocks")
    shop.cluster.kill(node)
    time.sleep(2)
    shop.cluster.start(node)
    burst.join()


FAULTS = {"baseline": None, "node-kill": fault_node_kill, "relay-freeze": fault_relay_freeze,
          "consumer-kill": fault_consumer_kill, "leader-kill": fault_leader_kill}


def run_phases(shop, phases, operations, concurrency):
    rows, failed, first = [], False, 0
    workload = Workload(shop, 29)
    dropped = [Counters(shop, "events_published_total", outcome="duplicate"),
               Counters(shop, "events_consumed_total", outcome="duplicate")]
    before = {}
    for phase in phases:
        count = operations // len(phases)
        start = [c.total() for c in dropped]
        fault = FAULTS[phase]
        log(f"phase {phase}: {count} operations")
        workload.run(first, count, concurrency, (lambda f=fault: f(shop, dropped)) if fault else None)
        first += count
        time.sleep(RESERVATION_TTL_MS / 1000 * 2)  # the holds expire: their events are part of the phase
        seconds = wait_drained(shop)
        figures, problems = check(shop)
        events = sum(figures[f"{s}_events"] for s in STREAMS)
        row = {"fault": phase, "events": events - sum(before.get(f"{s}_events", 0) for s in STREAMS),
               "dropped": int(sum(c.total() for c in dropped) - sum(start)),
               "reordered": figures["reordered"], "lost": figures["lost"], "dups": figures["dups"],
               "drain_s": None if seconds is None else round(seconds, 1), "problems": problems}
        if seconds is None:
            problems.append("not drained within 120 s")
        if phase == "relay-freeze" and None in shop.frozen_drains:
            problems.append(f"the outbox stalled while a replica was frozen: {shop.frozen_drains}")
        before = figures
        rows.append(row)
        failed = failed or bool(problems)
        for problem in problems:
            log(f"  {phase}: {problem}")
    return rows, failed, workload.answers


def print_table(rows, answers):
    print(f"{'fault':<14} {'events':>7} {'dups dropped':>13} {'reordered':>10} {'lost':>5} {'dups kept':>10} "
          f"{'drain s':>8}  result")
    for row in rows:
        drain = "-" if row["drain_s"] is None else f"{row['drain_s']:.1f}"
        print(f"{row['fault']:<14} {row['events']:>7} {row['dropped']:>13} {row['reordered']:>10} {row['lost']:>5} "
              f"{row['dups']:>10} {drain:>8}  {'ok' if not row['problems'] else 'FAIL'}")
    print("answers: " + ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(answers.items())))


def main():
    database = os.environ.get("DATABASE_SERVER_URL")
    if not database or not shutil.which("psql"):
        log("needs DATABASE_SERVER_URL and psql (run it under scripts/with-postgres.sh)")
        return 2
    phases = [p for p in os.environ.get("FAULTS_ONLY", ",".join(PHASES)).split(",") if p]
    unknown = [p for p in phases if p not in FAULTS]
    if unknown:
        log(f"unknown phases {unknown}; known: {PHASES}")
        return 2
    work = tempfile.mkdtemp(prefix="event-faults.")
    shop = Shop(work, database)
    try:
        try:
            shop.start()
        except (stack.StackError, subprocess.CalledProcessError, OSError) as e:
            log(f"could not start the shop: {e}")
            return 2
        rows, failed, answers = run_phases(shop, phases, int(os.environ.get("FAULTS_OPERATIONS", "2000")),
                                           int(os.environ.get("FAULTS_CONCURRENCY", "8")))
        print_table(rows, answers)
        return 1 if failed else 0
    finally:
        shop.stop()
        if os.environ.get("FAULTS_KEEP") == "1":
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
