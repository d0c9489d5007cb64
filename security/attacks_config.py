"""API8 (security misconfiguration) and the rest of API4 (resource
consumption): CORS, headers and error hygiene, what the gateway exposes,
key material shipped in the repository, body, header and page sizes."""

import os
import re
import shutil
import subprocess

import jose
from harness import REPO, Fail, Skip, attack, check, get, post, request
from stacks import CLIENT_ORIGIN, PORTS, start_gateway, start_service, url

SERVICES = ("inventory", "pricing", "order", "identity")
HOSTILE = "https://evil.example"


@attack("API8", "CORS: a hostile Origin is not allowed (simple and preflight); the web client's origin is")
def cors(ctx):
    for service in SERVICES:
        base = url(service)
        simple = get(base + "/health", headers={"Origin": HOSTILE})
        allowed = simple.header("access-control-allow-origin")
        check(allowed not in (HOSTILE, "*", "null"), f"{service} allows {HOSTILE}: {allowed}")
        preflight = request("OPTIONS", base + "/orders", headers={
            "Origin": HOSTILE, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        allowed = preflight.header("access-control-allow-origin")
        check(allowed not in (HOSTILE, "*", "null"), f"{service} preflight allows {HOSTILE}: {allowed}")
        credentials = preflight.header("access-control-allow-credentials")
        check(not (credentials == "true" and allowed == "*"), f"{service}: credentials with a wildcard origin")
        friend = get(base + "/health", headers={"Origin": CLIENT_ORIGIN})
        check(friend.header("access-control-allow-origin") == CLIENT_ORIGIN,
              f"control: {service} refuses the web client's origin: {friend.headers}")
    return f"{HOSTILE} refused by all four services; {CLIENT_ORIGIN} allowed"


@attack("API8", "errors are problem+json without internals; no version banners; tokens never cached")
def error_hygiene(ctx):
    _, customer, *_ = ctx.customer(label="errors")
    writes = {"inventory": ("PUT", "/items/A001", ctx.operator()), "pricing": ("POST", "/price/bulk", None),
              "order": ("POST", "/orders", customer), "identity": ("POST", "/accounts", None)}
    for service, (method, path, token) in writes.items():
        bad = request(method, url(service) + path, raw=b'{"skus": [', token=token,
                      headers={"Content-Type": "application/json"})
        check(bad.status == 400, f"{service} malformed JSON: {bad}")
        check(bad.header("content-type") and "problem+json" in bad.header("content-type"), f"{service}: {bad.headers}")
        text = bad.body.decode(errors="replace")
        check(not re.search(r"panicked|\.rs:\d|backtrace|sqlx|/src/", text), f"{service} leaks internals: {text}")
        server = bad.header("server") or ""
        check(not re.search(r"\d", server), f"{service} announces a version: {server}")
        missing = get(url(service) + "/nope/../../etc/passwd")
        check(missing.status in (400, 404), f"{service} path traversal probe: {missing}")
    _, _, email, password = ctx.customer(label="cache")
    session = post(url("identity") + "/sessions", {"email": email, "password": password})
    check("no-store" in (session.header("cache-control") or ""), f"a token answer may be cached: {session.headers}")
    return "problem+json 400s without internals; no version banners; token answers no-store"


@attack("API4", "bodies and headers beyond the limits are refused (413/431/400), the service keeps answering")
def sizes(ctx):
    _, token, *_ = ctx.customer(label="sizes")
    big = b'{"skus": ["' + b"A" * (3 * 1024 * 1024) + b'"]}'
    seen = []
    for service, method, path, use in (("order", "POST", "/orders", token), ("identity", "POST", "/accounts", None),
                                       ("pricing", "POST", "/price/bulk", None),
                                       ("inventory", "PUT", "/items/A001", ctx.operator())):
        try:
            answer = request(method, url(service) + path, raw=big, token=use, headers={"Content-Type": "application/json"})
            status = answer.status
        except OSError as e:
            raise Fail(f"{service} dropped the connection on a 3 MiB body: {e}")
        check(status == 413, f"{service} {path} with 3 MiB: {status}")
        seen.append(f"{service} {status}")
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = request("POST", url("pricing") + "/price/bulk", raw=deep, headers={"Content-Type": "application/json"})
    check(answer.status in (400, 413), f"JSON nested 100,000 deep: {answer}")
    for service in SERVICES:
        try:
            answer = get(url(service) + "/health", headers={"X-Padding": "x" * (1024 * 1024)})
            check(answer.status in (400, 413, 431), f"{service} with a 1 MiB header: {answer.status}")
        except OSError:
            pass  # closing the connection on an oversized header is acceptable
        check(get(url(service) + "/health").status == 200, f"{service} stopped answering after the big header")
    return "; ".join(seen) + "; 100,000-deep JSON refused; 1 MiB headers refused, services up"


@attack("API4", "list limits: ?limit=100000 is clamped or refused, never served in full or with a 5xx")
def list_limits(ctx):
    _, token, *_ = ctx.customer(label="limits")
    operator = ctx.operator()
    seen = []
    for service, path, use, key in (("order", "/orders?limit=100000", token, "orders"),
                                    ("order", "/orders?limit=-1", token, "orders"),
                                    ("inventory", "/items?limit=100000", None, "items"),
                                    ("pricing", "/prices?limit=100000", None, "prices"),
                                    ("inventory", "/items/A001/history?limit=100000", operator, "changes"),
                                    ("pricing", "/price/A001/history?limit=100000", operator, "changes"),
                                    ("order", "/admin/dead-letters?limit=4294967295", operator, "dead_letters")):
        answer = get(url(service) + path, token=use)
        check(answer.status < 500, f"{service} {path}: {answer}")
        if answer.status == 200:
            count = len((answer.json() or {}).get(key) or [])
            check(count <= 1000, f"{service} {path} returned {count}")
        seen.append(f"{path.split('?')[0]} {answer.status}")
    return "; ".join(seen)


# --- the gateway ----------------------------------------------------------------


GATEWAY = f"http://127.0.0.1:{PORTS['gateway']}"


@attack("API8", "gateway: security headers on pages and proxied answers, no version banner, no /admin/chaos", group="gateway")
def gateway_headers(ctx):
    start_gateway(ctx)
    page = get(GATEWAY + "/")
    items = get(GATEWAY + "/inventory/items")
    check(items.status == 200, f"control: /inventory/items through the gateway: {items}")
    for answer, what in ((page, "/"), (items, "/inventory/items")):
        for header in ("x-content-type-options", "x-frame-options", "referrer-policy"):
            check(answer.header(header), f"{what} through the gateway lacks {header}")
        check(not re.search(r"\d", answer.header("server") or ""), f"the gateway announces a version on {what}")
    chaos = [f"/{s}/admin/chaos" for s in SERVICES if get(f"{GATEWAY}/{s}/admin/chaos").status == 200]
    check(not chaos, f"anonymous fault control through the gateway: {', '.join(chaos)}")
    return "nosniff, frame and referrer headers present; no version; /admin/chaos closed"


@attack("API8", "gateway: /metrics and /openapi.json of each service are not public", group="gateway")
def gateway_exposure(ctx):
    exposed = [f"/{s}{p}" for s in SERVICES for p in ("/metrics", "/openapi.json")
               if get(f"{GATEWAY}/{s}{p}").status == 200]
    check(not exposed, f"public through the gateway: {', '.join(exposed)}")
    return "neither served to the public"


def gateway_posts(clients, source="127.0.0.1"):
    """POSTs to /identity/sessions through the gateway, one per X-Forwarded-For
    value, from `source`; the statuses."""
    import http.client
    import json as json_module

    statuses = []
    for client in clients:
        conn = http.client.HTTPConnection("127.0.0.1", PORTS["gateway"], timeout=10, source_address=(source, 0))
        body = json_module.dumps({"email": f"gw-{client}@example.com", "password": "not-the-password"})
        conn.request("POST", "/identity/sessions", body=body,
                     headers={"Content-Type": "application/json", "X-Forwarded-For": client})
        statuses.append(conn.getresponse().status)
        conn.close()
    return statuses


@attack("API8", "gateway behind a trusted proxy: each client of X-Forwarded-For has its own bucket; an untrusted peer cannot pick one", group="gateway")
def gateway_real_ip(ctx):
    # identity_posts: 20/min with a burst of 10 per client address (nginx.conf).
    distinct = gateway_posts([f"10.77.0.{i}" for i in range(1, 26)])
    check(429 not in distinct, f"25 clients behind the trusted proxy share one bucket: {distinct}")
    same = gateway_posts(["10.77.1.1"] * 25)
    check(429 in same, f"control: one client's 25 posts were never limited: {same}")
    spoofed = gateway_posts([f"10.77.2.{i}" for i in range(1, 26)], source="127.0.0.2")
    check(429 in spoofed, f"an untrusted peer escaped its bucket with made-up X-Forwarded-For: {spoofed}")
    return "25 clients via the trusted proxy: no 429; one client: limited; an untrusted peer's spoofed headers: limited"


# --- key material -------------------------------------------------------------------


def published_p256_keys():
    """Every P-256 private key in the deployment files of the repository."""
    files = subprocess.run(["git", "ls-files", "k8s", "docker", "docker-compose.yml", "scripts"],
                           cwd=REPO, capture_output=True, text=True).stdout.split()
    keys = []
    for name in files:
        try:
            text = open(os.path.join(REPO, name), errors="replace").read()
        except OSError:
            continue
        for block in jose.pem_blocks(text):
            key = jose.EcKey.from_pkcs8(block)
            if key:
                keys.append((name, key))
    return keys


@attack("API8", "identity refuses to start with a signing key published in this repository", group="pubkey")
def published_key(ctx):
    keys = published_p256_keys()
    if not keys:
        return "no private key is published in the deployment files"
    refused = []
    for i, (name, key) in enumerate(keys):
        path = ctx.path(f"published-{i}.pem")
        with open(path, "w") as f:
            f.write(key.pkcs8_pem())
        try:
            proc = start_service(ctx, f"identity-published-{i}", "identity", "identity_published_key",
                                 {"IDENTITY_ISSUER": url("identity_published_key"), "IDENTITY_SIGNING_KEY_FILES": path})
        except Fail:
            refused.append(name)
            continue
        ctx.procs.stop(proc)
        raise Fail(f"identity started with the key published in {name} (kid {key.kid})")
    return f"refused each of {len(refused)} published key(s): {', '.join(sorted(set(refused)))}"


@attack("API8", "the prod overlay renders no key material and no placeholder secrets")
def prod_overlay(ctx):
    kubectl = shutil.which("kubectl")
    kustomize = shutil.which("kustomize")
    if not kubectl and not kustomize:
        raise Skip("neither kubectl nor kustomize is installed")
    argv = [kubectl, "kustomize"] if kubectl else [kustomize, "build"]
    rendered = subprocess.run(argv + [os.path.join(REPO, "k8s", "overlays", "prod")], capture_output=True, text=True)
    if rendered.returncode != 0:
        return f"does not render without the operator's secret files ({rendered.stderr.strip()[:120]})"
    text = rendered.stdout
    check("PRIVATE KEY" not in text, "the rendered prod overlay holds a private key")
    placeholders = sorted(set(re.findall(r"[\w-]*(?:placeholder|change-?me|demo-password|demo-secret)[\w-]*", text, re.I)))
    check(not placeholders, f"placeholder secrets in prod: {', '.join(placeholders[:6])}")
    return "rendered without key material or placeholders"
