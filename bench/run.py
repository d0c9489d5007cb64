#!/usr/bin/env python3
"""The main benchmark of scripts/bench.sh: every row of the performance targets.

Usage (scripts/bench.sh calls it; Python 3, standard library only):

    python3 bench/run.py store sqlite|postgres PARTS_DIR
        Measures one store and writes its rows to PARTS_DIR/STORE.json (after
        every row, so a run cut short keeps what it measured). PostgreSQL runs
        inside scripts/with-postgres.sh (PGHOST, PGPORT, PGUSER, PGDATA).
    python3 bench/run.py report PARTS_DIR OUT_JSON
        Merges the stores' rows with the date, the machine, the commit and the
        settings into OUT_JSON and prints the table (row, store, measured,
        target, PASS/MISS/info) and the soak's per-minute figures.

Per store: GET /items/{sku} against the bare yardstick (order/examples/baseline.rs,
started in the same run), POST /orders flat out (wrk) and at a steady 1,000/s
three times (oha, --latency-correction), the CPU time per order of each steady
run (services, and every PostgreSQL server process), the same order rows with
access control and events on against a fresh stack with both off, and on
PostgreSQL a soak at 500 orders/s (per-minute RSS and p99; its RSS row needs 2
minutes or more to be judged, its p99 row, last minute against the second, 3 or
more). GET /price/{sku},
POST /price/bulk and the services' peak RSS are info rows.

Settings (environment): BIN_DIR (default target/release), OHA (default
.cache/oha/bin/oha), DURATION (10s), CONNECTIONS (32), THREADS (2),
AUTH_EVENTS=off (skip the access-control-and-events rows), AUTH_EVENTS_ROUNDS
(1: off then on; more rounds take them in turns), SOAK=off, SOAK_MINUTES (10),
BENCH_PORT_BASE (27000). Ports: services BASE+1..3 (inventory, order, pricing), the
yardstick BASE+4, identity BASE+5, nats-server BASE+10 (27001-27010 by default, below
Linux's ephemeral range; 27280 puts them at 27281-27290).
"""

import atexit
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import bench_table

# The processes are started, waited for and stopped by scripts/lib/stack.sh.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "lib"))
import stack as launcher  # noqa: E402

BIN_DIR = os.environ.get("BIN_DIR", "target/release")
OHA = os.environ.get("OHA", ".cache/oha/bin/oha")
DURATION = os.environ.get("DURATION", "10s")
CONNECTIONS = os.environ.get("CONNECTIONS", "32")
THREADS = os.environ.get("THREADS", "2")
SOAK_MINUTES = int(os.environ.get("SOAK_MINUTES", "10"))
ROUNDS = int(os.environ.get("AUTH_EVENTS_ROUNDS", "1"))
CATALOG = "bench/inventory-catalog.json"
BASE = int(os.environ.get("BENCH_PORT_BASE", "27000"))
PORTS = {"inventory": BASE + 1, "order": BASE + 2, "pricing": BASE + 3, "baseline": BASE + 4, "identity": BASE + 5}
NATS_PORT = BASE + 10
ORDER_BODY = '{"customer_id": "bench", "items": [{"sku": "A002", "quantity": 1}]}'
# With access control on, the customer is the token's subject.
AUTH_ORDER_BODY = '{"items": [{"sku": "A002", "quantity": 1}]}'
ORDER_CLIENT = [{"client_id": "order", "client_secret": "bench-order-secret", "scopes": ["inventory:reserve"]}]
STEADY_RATE = 1000
SOAK_RATE = 500
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes


class Processes:
    """Every process this run starts, stopped on exit (Ctrl-C and SIGTERM included)."""

    def __init__(self):
        self.running = []

    def start(self, argv, env, log_path):
        log = open(log_path, "ab")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.running.append(proc)
        return proc

    def stop(self, proc):
        launcher.stop(proc)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self):
        for proc in list(reversed(self.running)):
            self.stop(proc)


PROCESSES = Processes()
atexit.register(PROCESSES.stop_all)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)


def wait_ready(what, port, path, proc, log_path):
    """Until GET path on port answers 2xx; the run ends when it does not within 60 s."""
    try:
        launcher.ready(what, f"http://127.0.0.1:{port}{path}", proc, log_path, timeout=60)
    except launcher.StackError as e:
        sys.exit(str(e))


def post_json(port, path, body, expect):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        res = conn.getresponse()
        data = res.read()
        if res.status != expect:
            sys.exit(f"POST {path} on :{port}: HTTP {res.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


# ---------------------------------------------------------------- the stack


class Stack:
    """inventory, pricing and order on one store, fresh data; identity and a
    nats-server too when access control and events are on."""

    serial = 0

    def __init__(self, store, secured=False):
        self.store, self.secured = store, secured
        Stack.serial += 1
        self.tag = f"bench_{os.getpid()}_{Stack.serial}"
        self.dir = tempfile.mkdtemp(prefix="bench-")
        self.procs, self.databases, self.token = {}, [], None

    def database(self, service):
        if self.store != "postgres":
            return {}
        name = f"{self.tag}_{service}"
        subprocess.run(["createdb", name], check=True)
        self.databases.append(name)
        return {"DATABASE_URL": f"postgres://{os.environ['PGUSER']}@127.0.0.1:{os.environ['PGPORT']}/{name}"}

    def env(self, service, **extra):
        env = dict(os.environ, HOST="127.0.0.1", PORT=str(PORTS[service]), RUST_LOG="warn", DATA_DIR=self.dir)
        env.update(self.database(service))
        if self.secured:
            env.update(NATS_URL=f"nats://127.0.0.1:{NATS_PORT}")
            if service != "identity":
                env.update(AUTH_ISSUER=f"http://127.0.0.1:{PORTS['identity']}", AUTH_REQUIRED="true")
        env.update(extra)
        return env

    def launch(self, service, env):
        log = os.path.join(self.dir, f"{service}.log")
        proc = PROCESSES.start(launcher.service_argv(service, BIN_DIR), env, log)
        self.procs[service] = proc
        wait_ready(service, PORTS[service], "/health/ready", proc, log)

    def start(self):
        if self.secured:
            log = os.path.join(self.dir, "nats.log")
            argv = launcher.nats_argv(NATS_PORT, os.path.join(self.dir, "nats"))
            self.procs["nats"] = PROCESSES.start(argv, dict(os.environ), log)
            try:
                launcher.listening("nats-server", NATS_PORT, self.procs["nats"], log, timeout=60)
            except launcher.StackError as e:
                sys.exit(str(e))
            self.launch("identity", self.env(
                "identity", IDENTITY_ISSUER=f"http://127.0.0.1:{PORTS['identity']}",
                IDENTITY_CLIENTS=json.dumps(ORDER_CLIENT), ACCESS_TOKEN_TTL_S="3600"))
        self.launch("inventory", self.env("inventory", INVENTORY_CATALOG=CATALOG))
        self.launch("pricing", self.env("pricing"))
        order_auth = {"AUTH_CLIENT_ID": "order", "AUTH_CLIENT_SECRET": "bench-order-secret"} if self.secured else {}
        self.launch("order", self.env(
            "order", INVENTORY_URL=f"http://127.0.0.1:{PORTS['inventory']}",
            PRICING_URL=f"http://127.0.0.1:{PORTS['pricing']}", **order_auth))
        if self.secured:
            self.token = customer_token()
        return self

    def pids(self, names=("inventory", "pricing", "order")):
        return [self.procs[name].pid for name in names]

    def stop(self):
        for proc in reversed(list(self.procs.values())):
            PROCESSES.stop(proc)
        for name in self.databases:
            subprocess.run(["dropdb", "--if-exists", name], check=False)
        subprocess.run(["rm", "-rf", self.dir], check=False)


def customer_token():
    """A customer account at identity, and a bearer token for it."""
    email, password = f"bench-{os.getpid()}@bench.example", f"bench-password-{os.getpid()}-ok"
    post_json(PORTS["identity"], "/accounts", {"email": email, "password": password, "name": "Bench"}, 201)
    session = post_json(PORTS["identity"], "/sessions", {"email": email, "password": password}, 200)
    return session["access_token"]


def start_baseline(stack):
    env = dict(os.environ, PORT=str(PORTS["baseline"]), INVENTORY_URL=f"http://127.0.0.1:{PORTS['inventory']}",
               PRICING_URL=f"http://127.0.0.1:{PORTS['pricing']}")
    log = os.path.join(stack.dir, "baseline.log")
    proc = PROCESSES.start(launcher.service_argv("examples/baseline", BIN_DIR), env, log)
    stack.procs["baseline"] = proc
    wait_ready("baseline", PORTS["baseline"], "/items/A001", proc, log)


# ---------------------------------------------------------------- load tools


def wrk_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]


def wrk(port, path, script=None, token=None):
    """Flat out: wrk with CONNECTIONS connections for DURATION."""
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency"]
    if script:
        argv += ["-s", script]
    env = dict(os.environ, BENCH_TOKEN=token or "")
    out = subprocess.run(argv + [f"http://127.0.0.1:{port}{path}"], env=env, check=True,
                         capture_output=True, text=True).stdout
    found = lambda pattern: re.search(pattern, out, re.M)
    errors = found(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    non_2xx = found(r"Non-2xx or 3xx responses: (\d+)")
    return {
        "rps": round(float(found(r"^Requests/sec:\s+([\d.]+)").group(1))),
        "p50_ms": round(wrk_ms(found(r"^\s+50%\s+(\S+)").group(1)), 2),
        "p99_ms": round(wrk_ms(found(r"^\s+99%\s+(\S+)").group(1)), 2),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def oha(rate, duration, token=None):
    """POST /orders at a steady rate: a request due every 1/rate s whatever the answers'
    pace, latency counted from when it was due (no coordinated omission), up to 100 in flight."""
    argv = [OHA, "-z", duration, "-q", str(rate), "-c", "100", "--latency-correction", "--no-tui",
            "--output-format", "json", "-m", "POST", "-T", "application/json",
            "-d", AUTH_ORDER_BODY if token else ORDER_BODY]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    out = json.loads(subprocess.run(argv + [f"http://127.0.0.1:{PORTS['order']}/orders"], check=True,
                                    capture_output=True, text=True).stdout)
    codes = out.get("statusCodeDistribution") or {}
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    # Requests still in flight when the run ends are "aborted due to deadline": not failures.
    errors_by_kind = {what: n for what, n in (out.get("errorDistribution") or {}).items()
                      if what != "aborted due to deadline"}
    errors = sum(errors_by_kind.values())
    seconds = out["summary"]["total"]
    return {
        "p50_ms": round(out["latencyPercentiles"]["p50"] * 1000, 2),
        "p99_ms": round(out["latencyPercentiles"]["p99"] * 1000, 2),
        "rate": round(ok / seconds, 1) if seconds else 0.0,
        "orders": ok,
        "non_2xx": sum(codes.values()) - ok + errors,
        # What the non-2xx were: status codes, and errors such as timeouts.
        "non_2xx_by_kind": {kind: n for kind, n in list(codes.items()) + list(errors_by_kind.items())
                            if not kind.startswith("2")},
    }


# ---------------------------------------------------------------- /proc


def proc_ticks(pid, with_children=False):
    """utime+stime of a process (and of its reaped children); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is field 3 (state): utime 14, stime 15, cutime 16, cstime 17.
    return sum(int(x) for x in fields[11:15 if with_children else 13])


def postgres_ticks():
    """The postmaster and all its children, those already reaped included (its cutime/cstime)."""
    with open(os.path.join(os.environ["PGDATA"], "postmaster.pid")) as f:
        postmaster = int(f.readline())
    total = proc_ticks(postmaster, True)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == postmaster:
                total += proc_ticks(int(entry), True)
    return total


def cpu_sample(stack):
    sample = {"services": sum(proc_ticks(pid) for pid in stack.pids())}
    if stack.store == "postgres":
        sample["postgres"] = postgres_ticks()
    for extra in ("identity", "nats"):
        if extra in stack.procs:
            sample[extra] = proc_ticks(stack.procs[extra].pid)
    return sample


def cpu_per_order(before, after, orders):
    """µs of CPU per order placed, per group of processes."""
    return {f"{group}_us": round((after[group] - before[group]) / TICK * 1e6 / max(orders, 1))
            for group in before}


def memory_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def steady_with_cpu(stack, rate=STEADY_RATE, duration=DURATION):
    before = cpu_sample(stack)
    result = oha(rate, duration, stack.token)
    return result, cpu_per_order(before, cpu_sample(stack), result["orders"])


# ---------------------------------------------------------------- rows


class Rows:
    """One store's rows, written to its part file after each one."""

    def __init__(self, store, path):
        self.store, self.path, self.rows = store, path, []

    def add(self, row_id, label, measured, target, status):
        row = {"id": row_id, "store": self.store, "label": label, "measured": measured,
               "target": target, "status": status}
        row["summary"] = bench_table.summary(row)
        self.rows.append(row)
        with open(self.path + ".tmp", "w") as f:
            json.dump({"store": self.store, "rows": self.rows}, f, indent=1)
        os.replace(self.path + ".tmp", self.path)
        print(bench_table.line(row), flush=True)


def judge(ok):
    return "PASS" if ok else "MISS"


def main_rows(rows, store):
    stack = Stack(store).start()
    m = {}
    try:
        m["items"] = wrk(PORTS["inventory"], "/items/A001")
        m["price"] = wrk(PORTS["pricing"], "/price/A001")
        m["bulk"] = wrk(PORTS["pricing"], "/price/bulk", "bench/post-bulk.lua")
        m["flat"] = wrk(PORTS["order"], "/orders", "bench/post-order.lua")
        m["steady"] = [steady_with_cpu(stack) for _ in range(3)]
        m["peak"] = {name: memory_kb(stack.procs[name].pid, "VmHWM") for name in ("inventory", "pricing", "order")}
        # The yardstick, against this store's inventory and pricing.
        start_baseline(stack)
        m["bare_items"] = wrk(PORTS["baseline"], "/items/A001")
        m["bare_order"] = wrk(PORTS["baseline"], "/orders", "bench/post-order.lua")
    finally:
        stack.stop()
    add_main_rows(rows, store, m)


def add_main_rows(rows, store, m):
    share = 0.70 if store == "sqlite" else 0.50
    items_ratio = m["items"]["rps"] / m["bare_items"]["rps"]
    rows.add("get_items", "GET /items/{sku}", dict(m["items"], bare_rps=m["bare_items"]["rps"], ratio=round(items_ratio, 3)),
             f"≥ {share * 100:.0f} % of bare GET /items/{{sku}}", judge(items_ratio >= share))
    order_ratio = m["flat"]["rps"] / m["bare_order"]["rps"]
    measured = dict(m["flat"], bare_rps=m["bare_order"]["rps"], ratio=round(order_ratio, 3))
    if store == "sqlite":
        rows.add("order_flat", "POST /orders flat out", measured, "≥ 70 % of bare two-call POST /orders",
                 judge(order_ratio >= 0.70 and m["flat"]["non_2xx"] == 0))
    else:
        rows.add("order_flat", "POST /orders flat out", measured, "≥ 2,000 rps",
                 judge(m["flat"]["rps"] >= 2000 and m["flat"]["non_2xx"] == 0))
    limit = 10 if store == "sqlite" else 15
    for run, (result, cpu) in enumerate(m["steady"], 1):
        ok = result["p99_ms"] < limit and result["rate"] >= 0.95 * STEADY_RATE and result["non_2xx"] == 0
        rows.add(f"order_steady_{run}", f"POST /orders at 1,000/s, run {run}/3", dict(result, run=run),
                 f"p99 < {limit} ms in each of 3 runs, ≥ 950/s, no non-2xx", judge(ok))
    for run, (result, cpu) in enumerate(m["steady"], 1):
        rows.add(f"cpu_per_order_{run}", f"CPU per order at 1,000/s, run {run}/3",
                 dict(cpu, orders=result["orders"], run=run), "report; lower is better", "info")
    rows.add("get_price", "GET /price/{sku}", m["price"], "info", "info")
    rows.add("price_bulk", "POST /price/bulk", m["bulk"], "info", "info")
    rows.add("bare_get_items", "bare GET /items/{sku} (yardstick)", m["bare_items"], "info", "info")
    rows.add("bare_order", "bare two-call POST /orders (yardstick)", m["bare_order"], "info", "info")
    rows.add("peak_rss", "peak RSS per service", {f"{k}_mb": round(v / 1024, 1) for k, v in m["peak"].items()},
             "info", "info")


def secured_round(store):
    """One stack with access control and events off, then one with both on."""
    figures = {}
    for mode in ("off", "on"):
        stack = Stack(store, secured=(mode == "on")).start()
        try:
            script = "bench/post-order-auth.lua" if stack.token else "bench/post-order.lua"
            flat = wrk(PORTS["order"], "/orders", script, stack.token)
            steady, cpu = steady_with_cpu(stack)
        finally:
            stack.stop()
        figures[mode] = (flat, steady, cpu)
    return figures


def secured_rows(rows, store):
    for rnd in range(1, ROUNDS + 1):
        f = secured_round(store)
        (off_flat, off_steady, off_cpu), (on_flat, on_steady, on_cpu) = f["off"], f["on"]
        tag = f", round {rnd}/{ROUNDS}" if ROUNDS > 1 else ""
        ratio = on_flat["rps"] / off_flat["rps"]
        rows.add(f"secured_order_flat_{rnd}", f"auth+events on: POST /orders flat out{tag}",
                 {"on_rps": on_flat["rps"], "off_rps": off_flat["rps"], "ratio": round(ratio, 3),
                  "on_non_2xx": on_flat["non_2xx"], "off_non_2xx": off_flat["non_2xx"], "round": rnd},
                 "within 15 %: rps ≥ 85 % of the same row with both off; no non-2xx", judge(ratio >= 0.85 and on_flat["non_2xx"] == 0))
        ratio = on_steady["p99_ms"] / off_steady["p99_ms"]
        rows.add(f"secured_order_steady_{rnd}", f"auth+events on: POST /orders at 1,000/s{tag}",
                 {"on": on_steady, "off": off_steady, "ratio": round(ratio, 3), "round": rnd},
                 "within 15 %: p99 ≤ 115 % of the same row with both off; ≥ 950/s, no non-2xx",
                 judge(ratio <= 1.15 and on_steady["non_2xx"] == 0 and on_steady["rate"] >= 0.95 * STEADY_RATE))
        rows.add(f"secured_cpu_per_order_{rnd}", f"auth+events on: CPU per order at 1,000/s{tag}",
                 {"on": on_cpu, "off": off_cpu, "round": rnd}, "report; lower is better", "info")


def soak_rows(rows, store):
    stack = Stack(store).start()
    minutes = []
    try:
        names = ("inventory", "pricing", "order")
        for minute in range(1, SOAK_MINUTES + 1):
            result = oha(SOAK_RATE, "60s")
            rss = {f"{n}_mb": round(memory_kb(stack.procs[n].pid, "VmRSS") / 1024, 1) for n in names}
            minutes.append(dict(result, minute=minute, **rss))
            print(f"  soak minute {minute}: p99 {result['p99_ms']} ms, {result['rate']}/s, "
                  f"{result['non_2xx']} non-2xx, RSS " + ", ".join(f"{n} {rss[n + '_mb']} MB" for n in names),
                  flush=True)
    finally:
        stack.stop()
    first = minutes[0]
    growth = {n: round(max(abs(m[f"{n}_mb"] / first[f"{n}_mb"] - 1) for m in minutes), 3) for n in names}
    rows.add("soak_rss", f"soak 500/s × {len(minutes)} min: RSS per service",
             {"minutes": minutes, "max_change": growth},
             "every later minute's RSS within 10 % of the first minute's",
             judge(all(g <= 0.10 for g in growth.values())) if len(minutes) >= 2 else "info")
    if len(minutes) >= 3:
        ratio = minutes[-1]["p99_ms"] / minutes[1]["p99_ms"]
        rows.add("soak_p99", f"soak 500/s × {len(minutes)} min: p99",
                 {"second_p99_ms": minutes[1]["p99_ms"], "last_p99_ms": minutes[-1]["p99_ms"],
                  "ratio": round(ratio, 3), "non_2xx": sum(m["non_2xx"] for m in minutes)},
                 "last minute's p99 within 20 % of the second minute's (≤ 120 %)",
                 judge(ratio <= 1.20 and all(m["non_2xx"] == 0 for m in minutes)))


def measure_store(store, parts_dir):
    rows = Rows(store, os.path.join(parts_dir, f"{store}.json"))
    main_rows(rows, store)
    if os.environ.get("AUTH_EVENTS", "on") != "off":
        secured_rows(rows, store)
    if store == "postgres" and os.environ.get("SOAK", "on") != "off" and SOAK_MINUTES > 0:
        soak_rows(rows, store)


# ---------------------------------------------------------------- report


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown")
    mem_kb = memory_total_kb()
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release,
            "memory_gb": round(mem_kb / 1024 / 1024, 1)}


def memory_total_kb():
    with open("/proc/meminfo") as f:
        return int(next(line for line in f if line.startswith("MemTotal:")).split()[1])


def git_facts():
    run = lambda *argv: subprocess.run(["git", *argv], capture_output=True, text=True).stdout.strip()
    changes = [line for line in run("status", "--porcelain").splitlines() if not line.endswith("bench/results/latest.json")]
    return {"commit": run("rev-parse", "--short", "HEAD"), "dirty": bool(changes)}


def report(parts_dir, out_path):
    rows = []
    for store in ("sqlite", "postgres"):
        path = os.path.join(parts_dir, f"{store}.json")
        if os.path.exists(path):
            with open(path) as f:
                rows += json.load(f)["rows"]
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "git": git_facts(),
        "settings": {"duration": DURATION, "connections": int(CONNECTIONS), "threads": int(THREADS),
                     "steady_rate": STEADY_RATE, "soak_rate": SOAK_RATE,
                     "soak_minutes": SOAK_MINUTES if any(r["id"] == "soak_rss" for r in rows) else 0,
                     "auth_events_rounds": ROUNDS if any(r["id"].startswith("secured_") for r in rows) else 0},
        "rows": rows,
    }
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(bench_table.text_table(result))
    print(f"\nwritten: {out_path}")


def main(argv):
    if len(argv) == 4 and argv[1] == "store" and argv[2] in ("sqlite", "postgres"):
        measure_store(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "report":
        report(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        # Stop what we started, then die of SIGINT ourselves, so that the shell
        # running us (bench.sh, with-postgres.sh) stops too rather than carrying on.
        PROCESSES.stop_all()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
