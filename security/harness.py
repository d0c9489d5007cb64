"""The suite's plumbing: an HTTP client that never raises on a status, the
processes it starts (and always stops), the attack registry and the report."""

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import traceback
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CI = os.environ.get("CI") == "true"


# --- HTTP ---------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def code(self):
        body = self.json()
        return body.get("code") if isinstance(body, dict) else None

    def __repr__(self):
        return f"{self.status} {self.body[:160]!r}"


def request(method, url, body=None, token=None, headers=None, timeout=15, raw=None):
    """One request on a fresh connection. `body` is sent as JSON, `raw` as is."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent = {"Accept": "application/json"}
    if body is not None:
        raw = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    if token:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    try:
        conn.request(method, path or "/", body=raw, headers=sent)
        answer = conn.getresponse()
        data = answer.read()
        hdrs = {k.lower(): v for k, v in answer.getheaders()}
        return Response(answer.status, hdrs, data, time.monotonic() - started)
    finally:
        conn.close()


def get(url, **kw):
    return request("GET", url, **kw)


def post(url, body=None, **kw):
    return request("POST", url, body=body, **kw)


class EventStream:
    """A Server-Sent Events listener on its own thread: `events` fills as
    frames arrive; `closed_at` is set when the server ends the stream."""

    def __init__(self, url, token=None, headers=None):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        sent = {"Accept": "text/event-stream", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        self.conn.request("GET", parts.path, headers=sent)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.raw = []
        self.events = []
        self.closed_at = None
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read()
            self.conn.close()

    def _read(self):
        try:
            for line in self.response:
                line = line.decode(errors="replace").rstrip("\n")
                self.raw.append(line)
                if line.startswith("data:"):
                    try:
                        self.events.append(json.loads(line[5:].strip()))
                    except ValueError:
                        pass
        except Exception:  # the server ended the stream, or close() pulled the socket away
            pass
        self.closed_at = time.monotonic()

    def text(self):
        return "\n".join(self.raw)

    def close(self):
        try:
            self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def wait_until(check, timeout, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    return check()


def listening(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


# --- processes ----------------------------------------------------------------


class Processes:
    """Everything the suite starts, stopped (process group and all) at the end."""

    def __init__(self):
        self.running = []
        self.lock = threading.Lock()

    def start(self, name, argv, env=None, log=None, cwd=REPO):
        environment = {k: v for k, v in os.environ.items() if not stripped(k)}
        environment.update(env or {})
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(
            argv, env=environment, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc.suite_name, proc.log = name, log
        with self.lock:
            self.running.append(proc)
        return proc

    def stop(self, proc, timeout=10):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with self.lock:
            if proc in self.running:
                self.running.remove(proc)

    def stop_all(self):
        for proc in list(reversed(self.running)):
            self.stop(proc)


def stripped(name):
    """Settings of the caller's shell that would change what a started service does."""
    return name.startswith(("AUTH_", "IDENTITY_", "RATE_LIMIT_", "CORS_", "CHAOS_", "GATEWAY_")) or name in (
        "SERVICE_TOKEN", "NATS_URL", "DATABASE_URL", "TRUSTED_PROXIES", "ACCESS_TOKEN_TTL_S",
    ) or name.endswith("_DATABASE_URL")


def vm_hwm_kib(pid):
    """Peak resident memory of a process (VmHWM), KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


# --- attacks and the report ---------------------------------------------------


class Fail(Exception):
    """The attack found a hole (or could not be set up: under CI a failure)."""


class Skip(Exception):
    """The attack cannot run here (a failure under CI=true)."""


ATTACKS = []


def attack(risk, name, group="main"):
    """Registers an attack: a function(ctx) returning a detail line, raising
    Fail on a hole. `group` runs it with the attacks of the same group in
    order; groups run side by side."""

    def register(fn):
        ATTACKS.append({"risk": risk, "name": name, "fn": fn, "group": group})
        return fn

    return register


def check(condition, detail):
    if not condition:
        raise Fail(detail)


class Report:
    def __init__(self):
        self.lines = []
        self.lock = threading.Lock()
        self.passed = self.failed = self.skipped = 0

    def record(self, risk, name, outcome, detail):
        detail = " ".join(str(detail).split())[:700]
        with self.lock:
            if outcome == "PASS":
                self.passed += 1
            elif outcome == "FAIL":
                self.failed += 1
            else:
                self.skipped += 1
            line = f"{outcome}  {risk}  {name}: {detail}"
            self.lines.append(line)
            print(line, flush=True)

    def run(self, entry, ctx):
        started = time.monotonic()
        try:
            detail = entry["fn"](ctx)
            outcome = "PASS"
        except Fail as e:
            outcome, detail = "FAIL", str(e)
        except Skip as e:
            outcome, detail = ("FAIL" if CI else "SKIP"), f"cannot run: {e}"
        except Exception as e:  # an attack that breaks is a failure, never a pass
            outcome, detail = "FAIL", f"the attack broke: {e!r} {traceback.format_exc(limit=2)}"
        took = time.monotonic() - started
        self.record(entry["risk"], entry["name"], outcome, f"{detail} ({took:.1f}s)")
