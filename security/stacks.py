"""What the suite attacks: the local stack with tokens required
(scripts/run-local.sh, AUTH=on) and the side processes some attacks need
(their own identity, a stand-in issuer, a stack with AUTH_REQUIRED unset,
the gateway's nginx). Ports 173xx and 183xx; nothing is shared with the
other local stacks of the test run."""

import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import jose
from harness import REPO, Fail, Skip, get, listening, post, wait_until

# The side processes start, wait and build through scripts/lib/stack.sh.
sys.path.insert(0, os.path.join(REPO, "scripts", "lib"))
import stack as launcher  # noqa: E402

PORTS = {
    "inventory": 17301,
    "order": 17302,
    "pricing": 17303,
    "identity": 17304,
    "client": 18380,
    "nats": 17322,
    # Side processes.
    "identity_squat": 17311,
    "identity_load": 17312,
    "identity_limited": 17313,
    "identity_published_key": 17314,
    "identity_hashing": 17315,
    "fc_inventory": 17331,
    "fc_order": 17332,
    "fc_pricing": 17333,
    "fc_nats": 17334,
    "issuer": 17340,
    "inventory_x": 17341,
    "inventory_y": 17342,
    "gateway": 18381,
    "gateway_status": 18382,
}
OPERATOR = ("operator@shop.example", "operator-demo-password")
CLIENT_ORIGIN = f"http://localhost:{PORTS['client']}"


def url(name):
    return f"http://127.0.0.1:{PORTS[name]}"


def bin_dir():
    profile = os.environ.get("PROFILE", "debug")
    return os.path.join(REPO, "target", "debug" if profile in ("dev", "debug") else profile)


def nats_server():
    return launcher.nats_server()


class Context:
    """What attacks share: the processes, a scratch directory, the stand-in
    issuer and helpers for accounts and tokens."""

    def __init__(self, procs, scratch):
        self.procs = procs
        self.scratch = scratch
        self.issuer = None
        self.stack_key = None
        self.events_on = False
        self._operator = None
        self.lock = threading.Lock()

    def path(self, *parts):
        return os.path.join(self.scratch, *parts)

    def log(self, name):
        return self.path(f"{name}.log")

    # -- accounts and tokens on the main stack's identity --

    def customer(self, identity="identity", label="c"):
        """A fresh account on `identity`: (customer_id, token, email, password)."""
        email = f"{label}-{secrets.token_hex(5)}@example.com"
        password = "p-" + secrets.token_hex(8)
        made = patiently(lambda: post(url(identity) + "/accounts", {"email": email, "password": password, "name": "Attacker"}))
        if made.status != 201:
            raise Fail(f"could not sign up on {identity}: {made}")
        token = self.sign_in(email, password, identity)
        return made.json()["customer_id"], token, email, password

    def sign_in(self, email, password, identity="identity"):
        answer = patiently(lambda: post(url(identity) + "/sessions", {"email": email, "password": password}))
        if answer.status != 200:
            raise Fail(f"could not sign in {email} on {identity}: {answer}")
        return answer.json()["access_token"]

    def operator(self):
        with self.lock:
            if self._operator is None:
                self._operator = self.sign_in(*OPERATOR)
            return self._operator

    def order(self, token, skus=("A002",), key=None):
        headers = {"Idempotency-Key": key} if key else None
        answer = post(url("order") + "/orders", {"skus": list(skus)}, token=token, headers=headers)
        if answer.status not in (200, 201):
            raise Fail(f"could not place an order: {answer}")
        return answer.json()


def patiently(call, attempts=10):
    """`call()`, again after its Retry-After while it answers 503 (identity's
    bounded hashing turns some concurrent sign-ins away; a client retries)."""
    for _ in range(attempts):
        answer = call()
        if answer.status != 503:
            return answer
        time.sleep(min(float(answer.header("retry-after") or 1), 2))
    return answer


# --- the main stack -------------------------------------------------------------


def start_main_stack(ctx):
    """scripts/run-local.sh with AUTH=on (tokens required), chaos off,
    CORS limited to the web client's origin; the identity key generated into
    the suite's DATA_DIR is read back to sign short-lived tokens."""
    data = ctx.path("main")
    os.makedirs(data)
    env = {
        "PROFILE": os.environ.get("PROFILE", "debug"),
        "AUTH": "on",
        "DEMO_CHAOS": "off",
        "DATA_DIR": data,
        "INVENTORY_PORT": str(PORTS["inventory"]),
        "ORDER_PORT": str(PORTS["order"]),
        "PRICING_PORT": str(PORTS["pricing"]),
        "IDENTITY_PORT": str(PORTS["identity"]),
        "CLIENT_PORT": str(PORTS["client"]),
        "NATS_PORT": str(PORTS["nats"]),
        "CORS_ALLOWED_ORIGINS": CLIENT_ORIGIN,
    }
    log = ctx.log("main-stack")
    proc = ctx.procs.start("main stack", ["scripts/run-local.sh"], env=env, log=log)

    def ready():
        if proc.poll() is not None:
            raise Fail(f"the local stack exited: {tail(log)}")
        with open(log, errors="replace") as f:
            return "Ctrl-C stops everything" in f.read()

    if not wait_until(ready, 420, every=0.5):
        raise Fail(f"the local stack did not start: {tail(log)}")
    with open(log, errors="replace") as f:
        ctx.events_on = "events     on" in f.read()
    key_file = os.path.join(data, "identity-signing-key.pem")
    blocks = jose.pem_blocks(open(key_file).read()) if os.path.exists(key_file) else []
    ctx.stack_key = jose.EcKey.from_pkcs8(blocks[0]) if blocks else None
    if ctx.stack_key:
        jwks = get(url("identity") + "/.well-known/jwks.json").json() or {"keys": []}
        kids = [k.get("kid") for k in jwks["keys"]]
        # Identity's kid is the key's thumbprint; trust the published one if it differs.
        if ctx.stack_key.kid not in kids and kids:
            ctx.stack_key.kid = kids[0]


def tail(log, lines=25):
    try:
        with open(log, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- side processes ----------------------------------------------------------------


def start_service(ctx, name, service, port_name, env, wait=True, data=None):
    """One service binary on its own port and data directory (`data`, else one of its own)."""
    data = ctx.path(data or name)
    os.makedirs(data, exist_ok=True)
    full = {"HOST": "127.0.0.1", "PORT": str(PORTS[port_name]), "DATA_DIR": data, "RUST_LOG": "warn"}
    full.update(env)
    proc = ctx.procs.start(name, launcher.service_argv(service, bin_dir()), env=full, log=ctx.log(name))
    if wait:
        try:
            launcher.ready(name, url(port_name) + "/health/ready", proc, ctx.log(name), timeout=90)
        except launcher.StackError as e:
            raise Fail(" | ".join(str(e).splitlines()[-7:]))
    return proc


def identity_env(port_name, **extra):
    env = {"IDENTITY_ISSUER": url(port_name)}
    env.update(extra)
    return env


def start_nats(ctx, name, port_name):
    server = nats_server()
    if not server:
        raise Skip("no nats-server (Debian's nats-server, or NATS_SERVER_BIN)")
    store = ctx.path(name)
    os.makedirs(store, exist_ok=True)
    port = PORTS[port_name]
    proc = ctx.procs.start(name, launcher.nats_argv(port, store), log=ctx.log(name))
    try:
        launcher.listening(name, port, proc, ctx.log(name), timeout=10)
    except launcher.StackError as e:
        raise Fail(" | ".join(str(e).splitlines()[-6:]))
    return f"nats://127.0.0.1:{port}"


def start_fail_closed_stack(ctx):
    """Inventory, pricing and order trusting the main identity with
    AUTH_REQUIRED unset, chaos control on, events on their own nats-server."""
    nats = start_nats(ctx, "fc-nats", "fc_nats")
    issuer = get(url("identity") + "/.well-known/openid-configuration").json()["issuer"]
    common = {"AUTH_ISSUER": issuer, "CHAOS_CONTROL": "on", "NATS_URL": nats}
    start_service(ctx, "fc-inventory", "inventory", "fc_inventory", common)
    start_service(ctx, "fc-pricing", "pricing", "fc_pricing", common)
    start_service(
        ctx,
        "fc-order",
        "order",
        "fc_order",
        {**common, "INVENTORY_URL": url("fc_inventory"), "PRICING_URL": url("fc_pricing")},
    )


# --- a stand-in OpenID provider ---------------------------------------------------


class Issuer:
    """Discovery and key sets served from memory, every fetch counted by path.
    `keys[path]` is the list of JWKs served there."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.keys = {"/jwks.json": [], "/jwks-y.json": [], "/evil-jwks.json": []}
        self.hits = {}
        self.lock = threading.Lock()
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                with issuer.lock:
                    issuer.hits[path] = issuer.hits.get(path, 0) + 1
                    keys = list(issuer.keys.get(path, [])) if path in issuer.keys else None
                if path == "/.well-known/openid-configuration":
                    body = {
                        "issuer": issuer.base,
                        "jwks_uri": issuer.base + "/jwks.json",
                        "token_endpoint": issuer.base + "/token",
                        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
                    }
                elif keys is not None:
                    body = {"keys": keys}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "max-age=1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.signing = jose.EcKey()
        self.rotated = jose.EcKey()
        self.rsa_weak = jose.RsaKey(1024, "rsa-1024")
        self.rsa_strong = jose.RsaKey(2048, "rsa-2048")
        self.keys["/jwks.json"] = [
            self.signing.jwk(),
            self.rotated.jwk(),
            self.rsa_weak.jwk(),
            self.rsa_strong.jwk(),
        ]
        self.keys["/jwks-y.json"] = [self.signing.jwk()]

    def hits_of(self, path):
        with self.lock:
            return self.hits.get(path, 0)

    def withdraw(self, kid):
        with self.lock:
            self.keys["/jwks.json"] = [k for k in self.keys["/jwks.json"] if k["kid"] != kid]

    def claims(self, scope="inventory:write", **extra):
        return jose.claims(self.base, "shop", "attacker-" + secrets.token_hex(3), scope, **extra)

    def stop(self):
        self.server.shutdown()


def start_issuer_and_verifiers(ctx):
    """The stand-in issuer, inventory-x trusting it (tokens required) and
    inventory-y with AUTH_JWKS_REFRESH_MS=1 (the refresh floor's attack)."""
    ctx.issuer = Issuer(PORTS["issuer"])
    base = {"AUTH_ISSUER": ctx.issuer.base, "AUTH_REQUIRED": "true"}
    try:
        start_service(ctx, "inventory-x", "inventory", "inventory_x", {**base, "AUTH_JWKS_REFRESH_MS": "1000"})
    except Fail:
        # A floor above 1 s may refuse that value at start: take the default.
        start_service(ctx, "inventory-x2", "inventory", "inventory_x", base)
    ctx.inventory_y = start_service(
        ctx,
        "inventory-y",
        "inventory",
        "inventory_y",
        {**base, "AUTH_JWKS_REFRESH_MS": "1", "AUTH_JWKS_URL": ctx.issuer.base + "/jwks-y.json"},
        wait=False,
    )


# --- the gateway (nginx), rendered as the image's entrypoint does ------------------


def gateway_variables():
    """The variables the image's entrypoint renders gateway.conf.template with:
    its /docker-entrypoint.d scripts (*.envsh) sourced in name order, with the
    loopback as the trusted proxy in front (GATEWAY_TRUSTED_PROXIES) and as
    resolver; the upstreams are the main stack's services."""
    gateway = os.path.join(REPO, "docker", "gateway")
    scripts = sorted(f for f in os.listdir(gateway) if f.endswith(".envsh"))
    shell = "".join(f'. "{os.path.join(gateway, f)}" && ' for f in scripts) + "env"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GATEWAY_RESOLVER": "127.0.0.1",
           "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}
    out = subprocess.run(["sh", "-c", shell], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise Fail(f"the gateway's entrypoint scripts failed: {out.stderr.strip()}")
    names = dict(line.split("=", 1) for line in out.stdout.splitlines() if line.startswith("GATEWAY_"))
    for service in ("inventory", "pricing", "order", "identity"):
        names[f"{service.upper()}_UPSTREAM"] = f"127.0.0.1:{PORTS[service]}"
    return names


def start_gateway(ctx):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        raise Skip("no nginx (Debian's nginx) for the gateway")
    gateway = os.path.join(REPO, "docker", "gateway")
    work = ctx.path("gateway")
    os.makedirs(work)
    template = open(os.path.join(gateway, "gateway.conf.template")).read()
    for name, value in gateway_variables().items():
        template = template.replace("${" + name + "}", value)
    template = (
        template.replace("listen 8080 default_server;", f"listen 127.0.0.1:{PORTS['gateway']} default_server;")
        .replace("listen 8081;", f"listen 127.0.0.1:{PORTS['gateway_status']};")
        .replace("root /usr/share/nginx/html;", f"root {os.path.join(REPO, 'client')};")
    )
    open(os.path.join(work, "gateway.conf"), "w").write(template)
    for extra in os.listdir(gateway):
        if extra.endswith(".conf") and extra != "nginx.conf":
            shutil.copy(os.path.join(gateway, extra), work)
    main = (
        open(os.path.join(gateway, "nginx.conf"))
        .read()
        .replace("/tmp/", work + "/")
        .replace("access_log /dev/stdout gateway;", f"access_log {work}/access.log gateway;")
        .replace("error_log /dev/stderr notice;", f"error_log {work}/error.log notice;")
    )
    open(os.path.join(work, "nginx.conf"), "w").write(main)
    argv = [nginx, "-p", work, "-c", os.path.join(work, "nginx.conf"), "-e", os.path.join(work, "error.log"),
            "-g", "daemon off;"]
    proc = ctx.procs.start("gateway", argv, log=ctx.log("gateway"))
    wait_until(lambda: proc.poll() is not None or listening(PORTS["gateway"]), 15, every=0.1)
    if proc.poll() is not None or not listening(PORTS["gateway"]):
        raise Fail(f"nginx did not start: {tail(os.path.join(work, 'error.log'), 5)} {tail(ctx.log('gateway'), 5)}")


def make_scratch():
    return tempfile.mkdtemp(prefix="security-suite-")


def build():
    """The binaries the side processes run (run-local.sh builds the same again: a no-op)."""
    profile = os.environ.get("PROFILE", "debug")
    profile = "dev" if profile in ("dev", "debug") else profile
    started = time.monotonic()
    launcher.build("", "--profile", profile, "--bins", "--quiet", cwd=REPO)
    return time.monotonic() - started
