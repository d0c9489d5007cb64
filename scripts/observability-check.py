#!/usr/bin/env python3
"""The dashboards and alerts checked against a real Prometheus and a real local stack.

Starts inventory, pricing, order and identity (the cargo-built binaries, on free ports,
each with its own temporary DATA_DIR), a JetStream nats-server so the events metrics are
live, and Debian's `prometheus` (installed with apt-get when missing) scraping them every
second with the repo's rule files loaded. Then:

1. drives known traffic: orders with live prices, item lookups (and two unknown skus),
   an account, a sign-in and a failed one, a restock and a price change, a message that
   is no CloudEvent (retried, then dead-lettered by the order service's consumer), a
   reservation left to expire and one released, and a pricing outage (pricing killed:
   orders priced from fallback, the order service's pricing breaker opens; pricing
   restarted: the breaker closes again);
2. asserts, through Prometheus's HTTP API, that each counter moved by exactly the traffic
   sent (waiting for the scrapes, with a timeout);
3. evaluates every query of every panel in observability/grafana/dashboards/*.json
   (template variables replaced by their current value): each must return data;
4. checks every rule Prometheus loaded (GET /api/v1/rules): healthy, no error, each
   recording rule's series present (with the rule's labels), each alert's expression
   evaluating, and every series an alert names present (a matcher on a value only a
   failure produces, such as status=~"5..", may match nothing if the series without it
   exist). Queries naming only the gateway's or the broker's exporters are skipped.

Exits non-zero, with the reasons, on any failure. Everything it starts is stopped at the
end, whatever happens.

Usage: scripts/observability-check.py [--profile debug|release] [--rules GLOB ...]
       [--dashboards DIR] [--orders N] [--outage-orders K] [--lookups M] [--keep]
       [--screenshots DIR [--screenshot-seconds S]]
With --screenshots, once the checks pass: S seconds (default 150) of steady traffic with
pricing down for the middle 30 %, then the overview dashboard drawn from its JSON and
Prometheus's data (observability/render/, headless Chromium) to DIR/shop-overview.png.
Environment: PROFILE (as --profile), CARGO_TARGET_DIR, NATS_SERVER_BIN (default: nats-server
on PATH, else /usr/sbin/nats-server), PROMETHEUS_BIN (default /usr/bin/prometheus).
Standard library only.
"""

import argparse
import calendar
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The stack starts, waits and builds through scripts/lib/stack.sh.
sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
import stack as launcher  # noqa: E402
SERVICES = ("inventory", "pricing", "order", "identity")
# Settings that make the interesting things happen within seconds: a breaker that opens
# after two failures and tries again after two seconds, reservations that expire after four.
BREAKER_THRESHOLD = 2
BREAKER_RESET_MS = 2000
RESERVATION_TTL_MS = 4000
# A poison event is delivered twice (the second time a redelivery), then dead-lettered.
EVENTS_MAX_DELIVER = 2
POISON_SUBJECT = "shop.pricing.price_changed"
POISON_CONSUMER = "order-prices"
# Live-priced orders and outage orders use skus with plenty of stock.
ORDER_SKUS = ["A002", "C001"]
LOOKUP_SKUS = ["A001", "A002", "B001", "C001"]
SCRAPE_TIMEOUT_S = 60
POLL_S = 0.25


def log(message=""):
    print(message, flush=True)


# ---------------------------------------------------------------------------- HTTP


def http(method, url, body=None, headers=None, form=None, timeout=10):
    """(status, parsed JSON or text) of one request; connection errors raise OSError."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- processes


class Process:
    """One child process, its output in a log file; stopped by its own pid only."""

    def __init__(self, name, argv, env, log_path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc = None

    def start(self):
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        out.close()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """Stops it at once (an outage, not a shutdown)."""
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def wait_until(what, ready, processes=(), timeout=60):
    """Polls ready() until true; fails early when one of processes has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        for p in processes:
            if not p.running():
                raise RuntimeError(f"{p.name} exited while waiting for {what}:\n{p.tail()}")
        time.sleep(POLL_S / 2)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def answers(url):
    def check():
        try:
            return http("GET", url, timeout=2)[0] == 200
        except OSError:
            return False

    return check


# ---------------------------------------------------------------------------- the stack


def binary_dir(profile):
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "debug" if profile in ("debug", "dev") else profile)


def ensure_binaries(profile):
    bins = binary_dir(profile)
    missing = [s for s in SERVICES if not os.access(os.path.join(bins, s), os.X_OK)]
    if missing:
        log(f"building {', '.join(missing)} ({profile})")
        packages = [arg for s in missing for arg in ("-p", s)]
        cargo_profile = "dev" if profile in ("debug", "dev") else profile
        launcher.build("", "--profile", cargo_profile, "--bins", "--quiet", *packages, cwd=ROOT)
    return bins


def find_nats_server():
    found = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server")
    if not found and os.access("/usr/sbin/nats-server", os.X_OK):
        found = "/usr/sbin/nats-server"
    if not found:
        raise RuntimeError("no nats-server: apt-get install nats-server, or set NATS_SERVER_BIN")
    return found


def ensure_prometheus():
    found = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if not found and os.access("/usr/bin/prometheus", os.X_OK):
        found = "/usr/bin/prometheus"
    if found:
        return found
    log("installing Debian's prometheus")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "prometheus"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdout=subprocess.DEVNULL,
    )
    return "/usr/bin/prometheus"


class Stack:
    """The four services and a nats-server, on free ports, in one temporary folder."""

    def __init__(self, workdir, bins):
        self.workdir, self.bins = workdir, bins
        self.ports = {name: free_port() for name in SERVICES}
        self.nats_port = free_port()
        self.processes = {}

    def url(self, service):
        return f"http://127.0.0.1:{self.ports[service]}"

    def env(self, service):
        data_dir = os.path.join(self.workdir, service)
        os.makedirs(data_dir, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", self.workdir),
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
            "HOST": "127.0.0.1",
            "PORT": str(self.ports[service]),
            "DATA_DIR": data_dir,
            "NATS_URL": f"nats://127.0.0.1:{self.nats_port}",
            "SHUTDOWN_DRAIN_MS": "0",
        }
        if service == "inventory":
            env["RESERVATION_TTL_MS"] = str(RESERVATION_TTL_MS)
        if service == "order":
            env.update(
                INVENTORY_URL=self.url("inventory"),
                PRICING_URL=self.url("pricing"),
                BREAKER_FAILURE_THRESHOLD=str(BREAKER_THRESHOLD),
                BREAKER_RESET_TIMEOUT_MS=str(BREAKER_RESET_MS),
                EVENTS_MAX_DELIVER=str(EVENTS_MAX_DELIVER),
                EVENTS_REDELIVERY_BACKOFF_MS="100",
            )
        if service == "identity":
            env["IDENTITY_ISSUER"] = self.url("identity")
        return env

    def start_nats(self, nats_server):
        store = os.path.join(self.workdir, "nats")
        os.makedirs(store, exist_ok=True)
        argv = launcher.nats_argv(self.nats_port, store)
        env = dict(os.environ, NATS_SERVER_BIN=nats_server)
        nats = Process("nats-server", argv, env, os.path.join(self.workdir, "nats.log")).start()
        self.processes["nats"] = nats
        launcher.listening("nats-server", self.nats_port, nats.proc, nats.log_path, timeout=60)

    def start_service(self, service):
        argv = launcher.service_argv(service, self.bins)
        path = os.path.join(self.workdir, f"{service}.log")
        process = Process(service, argv, self.env(service), path).start()
        self.processes[service] = process
        return process

    def wait_ready(self, service):
        process = self.processes[service]
        launcher.ready(service, self.url(service) + "/health/ready", process.proc, process.log_path, timeout=60)

    def start(self, nats_server):
        self.start_nats(nats_server)
        for service in SERVICES:
            self.start_service(service)
        for service in SERVICES:
            self.wait_ready(service)

    def stop(self):
        for process in reversed(list(self.processes.values())):
            process.stop()


# ---------------------------------------------------------------------------- Prometheus


class Prometheus:
    """Debian's prometheus on a free port, scraping the stack every second."""

    def __init__(self, binary, workdir, stack, rule_files):
        self.binary, self.workdir, self.stack, self.rule_files = binary, workdir, stack, rule_files
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def config(self):
        jobs = [
            {
                "job_name": service,
                "static_configs": [{"targets": [f"127.0.0.1:{self.stack.ports[service]}"]}],
            }
            for service in SERVICES
        ]
        jobs.append(
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}]}
        )
        # JSON is YAML: no YAML library needed.
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": self.rule_files,
            "scrape_configs": jobs,
        }

    def start(self):
        path = os.path.join(self.workdir, "prometheus.yml")
        with open(path, "w") as f:
            json.dump(self.config(), f, indent=2)
        argv = [
            self.binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={os.path.join(self.workdir, 'prometheus-data')}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        log_path = os.path.join(self.workdir, "prometheus.log")
        self.process = Process("prometheus", argv, None, log_path).start()
        wait_until("prometheus ready", answers(self.url + "/-/ready"), [self.process])

    def api(self, path, **params):
        query = urllib.parse.urlencode(params)
        status, body = http("GET", f"{self.url}/api/v1/{path}?{query}", timeout=10)
        if not isinstance(body, dict):
            raise RuntimeError(f"prometheus /api/v1/{path}: {status} {body}")
        return body

    def query(self, expr):
        """(result list, error or None) of an instant query now."""
        body = self.api("query", query=expr)
        if body.get("status") != "success":
            return [], f"{body.get('errorType')}: {body.get('error')}"
        data = body["data"]
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            result = [{"value": result}]
        return result, None

    def value(self, expr):
        """The single number expr evaluates to (0 when it has no series)."""
        result, error = self.query(f"sum({expr})")
        if error:
            raise RuntimeError(f"{expr}: {error}")
        return float(result[0]["value"][1]) if result else 0.0

    def scraped_since(self, moment, jobs=SERVICES):
        """Whether every job's latest successful scrape started after `moment` (epoch s)."""
        result, _ = self.query("timestamp(up == 1)")
        latest = {r["metric"].get("job"): float(r["value"][1]) for r in result}
        return all(latest.get(job, 0) > moment for job in jobs)

    def stop(self):
        if self.process:
            self.process.stop()


# ---------------------------------------------------------------------------- traffic


def publish_poison(nats_port):
    """Publishes a message that is no CloudEvent on a subject the order service consumes
    (NATS's text protocol: no client library needed); JetStream keeps it in the stream."""
    payload = b"this is not a CloudEvent"
    with socket.create_connection(("127.0.0.1", nats_port), timeout=5) as conn:
        reader = conn.makefile("rb")
        if not reader.readline().startswith(b"INFO"):
            raise RuntimeError("nats-server did not greet with INFO")
        conn.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n'
                     + f"PUB {POISON_SUBJECT} {len(payload)}\r\n".encode() + payload
                     + b"\r\nPING\r\n")
        answer = reader.readline()
        if not answer.startswith(b"PONG"):
            raise RuntimeError(f"nats-server answered {answer!r} to a publish")


class Traffic:
    """Sends the traffic and counts what it sent, as the counters should."""

    def __init__(self, stack):
        self.stack = stack
        self.orders = []  # each order's JSON body
        self.lookups = {"200": 0, "404": 0}
        self.reserved = 0
        self.released = 0
        self.to_expire = []

    def place_order(self, customer):
        body = {"customer_id": customer, "skus": ORDER_SKUS}
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        status, order = http("POST", self.stack.url("order") + "/orders", body, headers)
        if status != 201 or not isinstance(order, dict):
            raise RuntimeError(f"POST /orders answered {status}: {order}")
        self.orders.append(order)
        return order

    def look_up(self, sku):
        status, item = http("GET", f"{self.stack.url('inventory')}/items/{sku}")
        if str(status) not in self.lookups:
            raise RuntimeError(f"GET /items/{sku} answered {status}: {item}")
        self.lookups[str(status)] += 1

    def reserve(self, quantity=1):
        # Not shaped like an order id (a UUID): the order service's expiry consumer would
        # otherwise release it too when it expires (see order/src/consumers.rs).
        reservation_id = f"observability-check-{uuid.uuid4().hex[:12]}"
        body = {"reservation_id": reservation_id, "lines": [{"sku": "C001", "quantity": quantity}]}
        status, answer = http("POST", self.stack.url("inventory") + "/reservations", body)
        if status != 201:
            raise RuntimeError(f"POST /reservations answered {status}: {answer}")
        self.reserved += 1
        return reservation_id

    def release(self, reservation_id):
        url = f"{self.stack.url('inventory')}/reservations/{reservation_id}"
        status, answer = http("DELETE", url)
        if status != 204:
            raise RuntimeError(f"DELETE /reservations answered {status}: {answer}")
        self.released += 1

    def catalogue_changes(self):
        """A restock and a price change: their events reach the order service's consumers."""
        body = {"delta": 10, "reason": "observability check"}
        status, answer = http("POST", self.stack.url("inventory") + "/items/C001/stock", body)
        if status != 200:
            raise RuntimeError(f"POST /items/C001/stock answered {status}: {answer}")
        price = {"base_price": 549.0, "discount_percent": 5, "tiers": []}
        status, answer = http("PUT", self.stack.url("pricing") + "/price/B002", price)
        if status != 200:
            raise RuntimeError(f"PUT /price/B002 answered {status}: {answer}")

    def identity(self):
        base = self.stack.url("identity")
        email = f"observer-{uuid.uuid4().hex[:8]}@shop.example"
        password = "observability-check-password-42"
        account = {"email": email, "password": password, "name": "Observer"}
        status, answer = http("POST", base + "/accounts", account)
        if status != 201:
            raise RuntimeError(f"POST /accounts answered {status}: {answer}")
        status, answer = http("POST", base + "/sessions", {"email": email, "password": password})
        if status != 200:
            raise RuntimeError(f"POST /sessions answered {status}")
        wrong = {"email": email, "password": "not-the-password-at-all"}
        status, answer = http("POST", base + "/sessions", wrong)
        if status != 401:
            raise RuntimeError(f"POST /sessions with a wrong password answered {status}: {answer}")

    def count(self, key, value):
        return sum(1 for order in self.orders if order.get(key) == value)


def pricing_outage(stack, traffic, outage_orders):
    """Pricing killed: orders priced from fallback, the breaker opens. Pricing back:
    orders placed (fallback while the breaker stays open) until one is priced live."""
    stack.processes["pricing"].kill()
    for i in range(outage_orders):
        order = traffic.place_order(f"outage-{i}")
        if order.get("pricing") != "fallback":
            raise RuntimeError(f"an order placed while pricing is down was priced {order}")
    stack.start_service("pricing")
    stack.wait_ready("pricing")
    deadline = time.monotonic() + BREAKER_RESET_MS / 1000 + 30
    while traffic.place_order("recovery").get("pricing") != "live":
        if time.monotonic() > deadline:
            raise RuntimeError("the pricing breaker did not close after pricing came back")
        time.sleep(POLL_S)


def drive(stack, traffic, args):
    expiring = traffic.reserve()
    traffic.to_expire.append(expiring)
    traffic.release(traffic.reserve())
    traffic.identity()
    traffic.catalogue_changes()
    publish_poison(stack.nats_port)
    for i in range(args.orders):
        traffic.place_order(f"observer-{i % 5}")
    for i in range(args.lookups):
        traffic.look_up(LOOKUP_SKUS[i % len(LOOKUP_SKUS)])
    for sku in ("ZZ999", "ZZ998"):
        traffic.look_up(sku)
    pricing_outage(stack, traffic, args.outage_orders)


# ---------------------------------------------------------------------------- counters


def counter_checks(traffic, args):
    """(query, expected delta, comparison) for every counter the traffic moved."""
    orders = len(traffic.orders)
    fallback = traffic.count("pricing", "fallback")
    live = traffic.count("pricing", "live")
    reservations = traffic.reserved + orders
    exact, at_least = "==", ">="
    return [
        ("orders_total", orders, exact),
        ('orders_total{outcome="confirmed"}', traffic.count("status", "confirmed"), exact),
        ('orders_by_pricing_total{source="live"}', live, exact),
        ('orders_by_pricing_total{source="fallback"}', fallback, exact),
        ('http_requests_total{job="order",route="/orders",method="POST"}', orders, exact),
        ('http_requests_total{job="order",route="/orders",method="POST",status="201"}', orders, exact),
        ('http_requests_total{job="inventory",route="/items/{sku}",method="GET",status="200"}',
         traffic.lookups["200"], exact),
        ('http_requests_total{job="inventory",route="/items/{sku}",method="GET",status="404"}',
         traffic.lookups["404"], exact),
        ('http_request_duration_seconds_count{job="order",route="/orders",method="POST"}', orders, exact),
        ('reservations_total{outcome="reserved"}', reservations, exact),
        ('reservations_total{outcome="confirmed"}', orders, exact),
        ('reservations_total{outcome="released"}', traffic.released, exact),
        ("reservations_expired_total", len(traffic.to_expire), exact),
        # dependency_calls_total counts attempts: less the retries, one call per order.
        ('sum(dependency_calls_total{job="order",dependency="pricing"})'
         ' - sum(dependency_retries_total{job="order",dependency="pricing"})', orders, exact),
        # Pricing killed: its refused connections are retried until the breaker opens.
        ('dependency_retries_total{job="order",dependency="pricing",outcome="failure"}', 1, at_least),
        ('dependency_calls_total{job="order",dependency="inventory",outcome="success"}', 2 * orders, exact),
        ('circuit_breaker_transitions_total{dependency="pricing",from="closed",to="open"}', 1, exact),
        ('circuit_breaker_transitions_total{dependency="pricing",from="half_open",to="closed"}', 1, exact),
        ('circuit_breaker_transitions_total{dependency="pricing",to="half_open"}', 1, at_least),
        ('circuit_breaker_rejected_calls_total{dependency="pricing"}', fallback - BREAKER_THRESHOLD, at_least),
        ('dependency_calls_total{dependency="pricing",outcome="rejected"}',
         fallback - BREAKER_THRESHOLD, at_least),
        ("identity_accounts_created_total", 1, exact),
        ("identity_sign_ins_total", 2, exact),
        ('inventory_stock_adjustments_total{direction="in"}', 1, exact),
        ('events_published_total{job="order"}', orders, at_least),
        ('events_published_total{job="inventory"}', 2, at_least),
        # The price change and the expiry, as the order service's consumers saw them.
        ('events_consumed_total{job="order",consumer="order-prices",outcome="handled"}', 1, at_least),
        ('events_consumed_total{job="order",consumer="order-expiries",outcome="handled"}', 1, at_least),
        # The poison event: one failed delivery retried, the last one dead-lettered.
        (f'events_consumed_total{{job="order",consumer="{POISON_CONSUMER}",outcome="retried"}}',
         EVENTS_MAX_DELIVER - 1, exact),
        (f'events_redeliveries_total{{job="order",consumer="{POISON_CONSUMER}"}}',
         EVENTS_MAX_DELIVER - 1, exact),
        (f'events_dead_letters_total{{job="order",consumer="{POISON_CONSUMER}"}}', 1, exact),
    ]


def compare(delta, expected, how):
    return delta == expected if how == "==" else delta >= expected


def read_all(prometheus, queries):
    return {q: prometheus.value(q) for q in queries}


def wait_for_counters(prometheus, before, checks, since):
    """Polls until every counter reached its expectation after a scrape that followed
    the traffic (or the timeout); returns the last values read."""
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while True:
        after = read_all(prometheus, [q for q, _, _ in checks])
        done = all(compare(after[q] - before[q], e, how) for q, e, how in checks)
        if done and prometheus.scraped_since(since):
            return after
        if time.monotonic() > deadline:
            return after
        time.sleep(POLL_S)


def report_counters(before, after, checks):
    failures = []
    width = max(len(q) for q, _, _ in checks)
    log(f"{'query':<{width}}  {'before':>8} {'after':>8} {'delta':>7} {'expected':>10}  result")
    for query, expected, how in checks:
        delta = after[query] - before[query]
        ok = compare(delta, expected, how)
        shown = f"{'' if how == '==' else '>='}{expected:g}"
        log(f"{query:<{width}}  {before[query]:>8g} {after[query]:>8g} {delta:>7g} {shown:>10}  "
            f"{'OK' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"counter {query}: moved by {delta:g}, expected {shown}")
    return failures


# ---------------------------------------------------------------------------- dashboards


def panels_of(container):
    """Every panel, rows' nested panels included (new and old row layouts)."""
    for panel in container.get("panels", []) or []:
        yield panel
        yield from panels_of(panel)
    for row in container.get("rows", []) or []:
        yield from panels_of(row)


def variable_values(dashboard):
    values = {}
    for variable in (dashboard.get("templating") or {}).get("list", []) or []:
        current = (variable.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(".*" if v in ("$__all", "All") else v for v in current) or ".*"
        if current in (None, "", "$__all", "All"):
            current = ".*"
        values[variable["name"]] = str(current)
    return values


BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}


def substitute(expr, values):
    """Grafana's $var, ${var}, ${var:format} and [[var]] replaced by their values."""
    table = {**values, **BUILTINS}

    def replace(match):
        name = match.group(1) or match.group(2) or match.group(3)
        return table.get(name, match.group(0))

    pattern = r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)"
    return re.sub(pattern, replace, expr)


def dashboard_queries(directory):
    """(dashboard title, panel title, expression) of every Prometheus query."""
    queries = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as f:
            dashboard = json.load(f)
        dashboard = dashboard.get("dashboard", dashboard)
        title = dashboard.get("title") or os.path.basename(path)
        values = variable_values(dashboard)
        for panel in panels_of(dashboard):
            for target in panel.get("targets", []) or []:
                expr = target.get("expr")
                if expr and not target.get("hide"):
                    panel_title = panel.get("title") or f"panel {panel.get('id')}"
                    queries.append((title, panel_title, substitute(expr, values)))
    return queries


def check_dashboards(prometheus, directory):
    failures = []
    queries = dashboard_queries(directory)
    if not queries:
        failures.append(f"no dashboard queries found in {directory}")
    for dashboard, panel, expr in queries:
        result, error = prometheus.query(expr)
        ok = not error and result
        if not ok and not error and only_exporters(expr):
            log(f"SKIP   0 series  {dashboard} / {panel} (exporters only, none here): {expr}")
            continue
        log(f"{'OK  ' if ok else 'FAIL'} {len(result):>3} series  {dashboard} / {panel}: {expr}")
        if not ok:
            failures.append(f"dashboard {dashboard} / {panel}: {error or 'no data'}: {expr}")
    return failures


# ---------------------------------------------------------------------------- rules

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "atan2", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev",
    "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
}
# Labels whose values may name something that happens only on failure (a 5xx, a breaker
# open, a rejected call): a selector empty with them and full without is still correct.
EVENTUAL_LABELS = {"status", "code", "outcome", "state", "from", "to", "le", "alertstate"}
# Scraped in compose and Kubernetes only: the gateway's and the broker's exporters have no
# stand-in here, so a query that names nothing else is skipped (said so), not failed.
EXPORTER_JOBS = {"gateway", "nats"}
EXPORTER_PREFIXES = ("nginx_", "gnatsd_", "nats_")


def exporter_only(name, matchers):
    """Whether the selector can only match a series from an exporter absent here."""
    if name.startswith(EXPORTER_PREFIXES):
        return True
    job = re.search(r'\bjob\s*=~?\s*"([^"]*)"', matchers)
    return bool(job) and all(j in EXPORTER_JOBS for j in job.group(1).split("|"))


def only_exporters(expr):
    found = selectors(expr)
    return bool(found) and all(exporter_only(name, matchers) for name, matchers in found)


def masked(expr):
    """expr with every string literal's content blanked, offsets unchanged."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'',
                  lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[0], expr)


def selectors(expr):
    """Each series selector of a PromQL expression: (metric name, its matchers as written)."""
    text = masked(expr)
    found = set()
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", text):
        name, start = match.group(1), match.start()
        if name.lower() in PROMQL_WORDS or text[match.end():].lstrip().startswith("("):
            continue
        if start > 0 and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # a duration (5m) or a number's exponent
        if in_braces(text, start) or in_brackets(text, start) or in_grouping(text, start):
            continue
        found.add((name, expr[match.start(2): match.end(2)] if match.group(2) else ""))
    return sorted(found)


def in_grouping(text, position):
    """Whether position is inside a by/without/on/ignoring/group_x (...) label list."""
    opening = text.rfind("(", 0, position)
    if opening < 0 or 0 <= text.find(")", opening) < position:
        return False
    return bool(re.search(r"\b(by|without|on|ignoring|group_left|group_right)\s*$", text[:opening]))


def in_braces(text, position):
    return text.rfind("{", 0, position) > text.rfind("}", 0, position)


def in_brackets(text, position):
    return text.rfind("[", 0, position) > text.rfind("]", 0, position)


def without_eventual(matchers):
    kept = [m.strip() for m in split_matchers(matchers)
            if m.strip() and re.match(r"\s*(\w+)", m).group(1) not in EVENTUAL_LABELS]
    return "{" + ",".join(kept) + "}" if kept else ""


def split_matchers(matchers):
    inner = matchers.strip()[1:-1]
    return re.findall(r'\s*\w+\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"', inner)


def check_series(prometheus, name, matchers):
    """(ok, note) for one series an alert names."""
    result, error = prometheus.query(name + matchers)
    if error:
        return False, error
    if result:
        return True, f"{len(result)} series"
    if matchers:
        loose = without_eventual(matchers)
        if loose != matchers:
            result, _ = prometheus.query(name + loose)
            if result:
                return True, f"none yet with {matchers}; {len(result)} series with {loose or 'no matchers'}"
    return False, "no data"


def loaded_rules(prometheus, since):
    """Every rule, once each group has been evaluated after `since` (epoch seconds)."""
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while True:
        groups = prometheus.api("rules")["data"]["groups"]
        evaluated = [g.get("lastEvaluation", "") for g in groups]
        if all(rfc3339_epoch(e) > since for e in evaluated) or time.monotonic() > deadline:
            return [(g["name"], g.get("file", ""), r) for g in groups for r in g["rules"]]
        time.sleep(POLL_S)


def rfc3339_epoch(stamp):
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", stamp or "")
    if not match:
        return 0.0
    seconds = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    return seconds + float(match.group(2) or 0)


def check_rule(prometheus, group, rule):
    failures = []
    label = f"{group} / {rule['name']} ({rule['type']})"
    if rule.get("health") != "ok" or rule.get("lastError"):
        failures.append(f"rule {label}: health {rule.get('health')}: {rule.get('lastError')}")
    result, error = prometheus.query(rule["query"])
    if error:
        failures.append(f"rule {label}: its expression fails: {error}")
    if rule["type"] == "recording":
        # The rule's own labels too: several groups may record one name (by `slo`, say).
        labels = ",".join(f'{k}="{v}"' for k, v in sorted((rule.get("labels") or {}).items()))
        produced, _ = prometheus.query(rule["name"] + (f"{{{labels}}}" if labels else ""))
        detail = f"{len(produced)} series recorded"
        if not produced and only_exporters(rule["query"]):
            detail += " (exporters only, none here: skipped)"
        elif not produced:
            failures.append(f"rule {label}: records no series")
    else:
        state = rule.get("state", "?")
        detail = f"{state}, expression returns {len(result)} series"
        for name, matchers in selectors(rule["query"]):
            ok, note = check_series(prometheus, name, matchers)
            if not ok and exporter_only(name, matchers):
                detail += f"\n       skip {name}{matchers}: no exporter here"
                continue
            detail += f"\n       {'ok  ' if ok else 'FAIL'} {name}{matchers}: {note}"
            if not ok:
                failures.append(f"rule {label}: names {name}{matchers}, which has {note}")
    log(f"{'FAIL' if failures else 'OK  '} {label}: {detail}")
    return failures


def check_rules(prometheus, since, rule_files):
    if not rule_files:
        return ["no rule files to load (see --rules)"]
    rules = loaded_rules(prometheus, since)
    if not rules:
        return ["prometheus loaded no rules from the rule files"]
    failures = []
    for group, _, rule in rules:
        failures += check_rule(prometheus, group, rule)
    return failures


# ---------------------------------------------------------------------------- main


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=os.environ.get("PROFILE", "debug"))
    parser.add_argument("--rules", nargs="*",
                        default=[os.path.join(ROOT, "observability/prometheus/rules/*.yml")],
                        help="rule file globs (default: observability/prometheus/rules/*.yml)")
    parser.add_argument("--dashboards", default=os.path.join(ROOT, "observability/grafana/dashboards"))
    parser.add_argument("--orders", type=int, default=40, help="orders priced live")
    parser.add_argument("--outage-orders", type=int, default=6, help="orders while pricing is down")
    parser.add_argument("--lookups", type=int, default=30, help="GET /items/{sku} of known skus")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    parser.add_argument("--screenshots", metavar="DIR",
                        help="after the checks, send steady traffic with a pricing outage and "
                             "draw the overview dashboard to DIR/shop-overview.png")
    parser.add_argument("--screenshot-seconds", type=int, default=150)
    args = parser.parse_args()
    if args.outage_orders <= BREAKER_THRESHOLD:
        parser.error(f"--outage-orders must be above the breaker threshold ({BREAKER_THRESHOLD})")
    return args


def run(args, workdir):
    rule_files = sorted(f for pattern in args.rules for f in glob.glob(pattern))
    shown = [f[len(ROOT) + 1:] if f.startswith(ROOT + "/") else f for f in rule_files]
    log(f"rule files: {', '.join(shown) or 'none'}")
    bins = ensure_binaries(args.profile)
    stack = Stack(workdir, bins)
    prometheus = Prometheus(ensure_prometheus(), workdir, stack, rule_files)
    try:
        stack.start(find_nats_server())
        log("stack ready: " + ", ".join(f"{s} :{p}" for s, p in stack.ports.items()))
        prometheus.start()
        log(f"prometheus ready on :{prometheus.port}")
        failures = measure(stack, prometheus, args, rule_files)
        if args.screenshots and not failures:
            pictures(stack, prometheus, args)
        return failures
    finally:
        prometheus.stop()
        stack.stop()


def measure(stack, prometheus, args, rule_files):
    start = time.time()
    wait_until("a scrape of every service", lambda: prometheus.scraped_since(start),
               timeout=SCRAPE_TIMEOUT_S)
    traffic = Traffic(stack)
    checks = counter_checks(traffic, args)  # the queries only; expectations come after
    before = read_all(prometheus, [q for q, _, _ in checks])
    drive(stack, traffic, args)
    sent = time.time()
    log(f"\ntraffic sent: {len(traffic.orders)} orders ({traffic.count('pricing', 'fallback')} "
        f"priced from fallback), {sum(traffic.lookups.values())} item lookups, "
        f"{traffic.reserved} direct reservations ({len(traffic.to_expire)} left to expire)\n")
    checks = counter_checks(traffic, args)
    after = wait_for_counters(prometheus, before, checks, sent)
    failures = report_counters(before, after, checks)
    log("\n-- dashboard queries --")
    failures += check_dashboards(prometheus, args.dashboards)
    log("\n-- rules --")
    failures += check_rules(prometheus, sent, rule_files)
    return failures


# ---------------------------------------------------------------------------- pictures


def steady_traffic(stack, traffic, seconds, outage):
    """Orders (about 8 a second) and item lookups for `seconds`, with pricing down for
    the middle `outage` share of the time: what the overview dashboard's picture shows."""
    start = time.monotonic()
    down, up = start + seconds * (1 - outage) / 2, start + seconds * (1 + outage) / 2
    tick = 0
    while (now := time.monotonic()) < start + seconds:
        if down <= now < up and stack.processes["pricing"].running():
            stack.processes["pricing"].kill()
        elif now >= up and not stack.processes["pricing"].running():
            stack.start_service("pricing")
            stack.wait_ready("pricing")
        if tick % 40 == 0:
            for sku in ORDER_SKUS:  # enough stock for the whole run
                body = {"delta": 400, "reason": "observability pictures"}
                http("POST", f"{stack.url('inventory')}/items/{sku}/stock", body)
        traffic.place_order(f"picture-{tick % 7}")
        for sku in LOOKUP_SKUS + (["ZZ999"] if tick % 10 == 0 else []):
            traffic.look_up(sku)
        tick += 1
        time.sleep(max(0.0, start + tick / 8 - time.monotonic()))


def render_overview(prometheus, directory, since):
    """The overview dashboard drawn from its JSON and Prometheus's data
    (observability/render/), to `directory`/shop-overview.png."""
    render = os.path.join(ROOT, "observability/render")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=render, check=True)
    os.makedirs(directory, exist_ok=True)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    caption = (f"Rendered {day} by scripts/observability-check.py --screenshots from "
               "shop-overview.json and a real Prometheus (not Grafana's own drawing)")
    subprocess.run([
        "node", os.path.join(render, "render-dashboard.mjs"),
        "--prometheus", f"http://127.0.0.1:{prometheus.port}",
        "--dashboard", os.path.join(ROOT, "observability/grafana/dashboards/shop-overview.json"),
        "--out", os.path.join(directory, "shop-overview.png"),
        "--from", str(int(since)), "--to", str(int(time.time())),
        "--caption", caption,
    ], check=True)


def pictures(stack, prometheus, args):
    since = time.time()
    log(f"\n-- {args.screenshot_seconds} s of steady traffic for the pictures --")
    steady_traffic(stack, Traffic(stack), args.screenshot_seconds, outage=0.3)
    time.sleep(2)  # the last scrape
    render_overview(prometheus, args.screenshots, since)


def main():
    args = parse_args()
    # A SIGTERM unwinds like Ctrl-C, so everything started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="observability-check-")
    try:
        failures = run(args, workdir)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        failures = [f"could not run the check: {error}"]
    if failures or args.keep:
        log(f"\nlogs and data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        log(f"\n{len(failures)} failure(s):")
        for failure in failures:
            log(f"  - {failure}")
        return 1
    log("\nall counters, dashboard queries and rules check out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
