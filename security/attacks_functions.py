"""API5 (function level authorization) and API9 (inventory of routes):
every route is found in its service's /openapi.json at run time, so a new
route is attacked without a change here."""

from harness import attack, check, get, request
from stacks import url

SERVICES = ("inventory", "pricing", "order", "identity")
# Writes anyone may make, by design: signing up and in, a client's token
# request, and reading prices in bulk.
PUBLIC_WRITES = {("identity", "POST", "/accounts"), ("identity", "POST", "/sessions"),
                 ("identity", "POST", "/token"), ("pricing", "POST", "/price/bulk")}
# Routes served only when configured, so perhaps absent from a description.
ADMIN_ROUTES = [("GET", "/admin/chaos"), ("PUT", "/admin/chaos")]
SAMPLE_BODIES = {
    ("POST", "/orders"): {"skus": ["A002"]},
    ("PUT", "/items/{sku}"): {"name": "Probe", "category": "electronics"},
    ("POST", "/items/{sku}/stock"): {"delta": 1, "reason": "probe"},
    ("PUT", "/price/{sku}"): {"base_price": 1, "discount_percent": 0},
    ("POST", "/reservations"): {"reservation_id": "00000000-0000-7000-8000-000000000001",
                                "lines": [{"sku": "A001", "quantity": 1}]},
    # Harmless if it gets through: the attack must not break the stack it reports on.
    ("PUT", "/admin/chaos"): {"delay_rate": 0, "failure_rate": 0},
}
PATH_VALUES = {"sku": "A001", "id": "00000000-0000-7000-8000-000000000001", "sequence": "1"}


def operations(base):
    """(method, path template, needs a token by its description) of every documented route."""
    spec = get(base + "/openapi.json").json() or {}
    found = []
    for path, item in (spec.get("paths") or {}).items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                found.append((method.upper(), path, bool(op.get("security"))))
    return found


def concrete(path):
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    return path


def call(base, method, path, token=None):
    body = SAMPLE_BODIES.get((method, path))
    if body is None and method in ("POST", "PUT", "PATCH"):
        body = {}
    return request(method, base + concrete(path), body=body, token=token)


def must_refuse(base, service, routes, token, expected):
    wrong = []
    for method, path in routes:
        answer = call(base, method, path, token)
        if answer.status != expected:
            wrong.append(f"{method} {path} {answer.status}")
    return wrong


def guarded_routes(base, service, fail_closed=False):
    """What must refuse an anonymous caller: every route with a security
    requirement; with tokens required, every other write and the customer
    routes too."""
    scoped, customer = [], []
    for method, path, secured in operations(base):
        if secured:
            scoped.append((method, path))
        elif fail_closed:
            continue
        elif path.startswith("/orders") or (method != "GET" and (service, method, path) not in PUBLIC_WRITES):
            customer.append((method, path))
    for route in ADMIN_ROUTES:
        if route not in scoped:
            scoped.append(route)
    return scoped, customer


@attack("API5", "every write and admin route (from each /openapi.json, /admin/chaos on every service and identity) refuses anonymous callers: 401")
def anonymous_everywhere(ctx):
    wrong, counted = [], 0
    for service in SERVICES:
        scoped, customer = guarded_routes(url(service), service)
        counted += len(scoped) + len(customer)
        wrong += [f"{service} {w}" for w in must_refuse(url(service), service, scoped + customer, None, 401)]
    check(counted > 15, f"only {counted} routes found in the descriptions")
    check(not wrong, f"served to an anonymous caller: {'; '.join(wrong)}")
    return f"{counted} routes, each 401"


@attack("API5", "a customer's token gets 403 on every scoped route (catalogue, prices, reservations, dead letters, chaos)")
def customer_everywhere(ctx):
    _, token, *_ = ctx.customer(label="scopes")
    wrong, counted = [], 0
    for service in SERVICES:
        scoped, _ = guarded_routes(url(service), service)
        counted += len(scoped)
        wrong += [f"{service} {w}" for w in must_refuse(url(service), service, scoped, token, 403)]
    check(not wrong, f"a customer's token was not refused with 403: {'; '.join(wrong)}")
    return f"{counted} scoped routes, each 403"


@attack("API5", "fail closed: AUTH_ISSUER set, AUTH_REQUIRED unset: every scoped route still refuses anonymous callers", group="failclosed")
def fail_closed(ctx):
    from stacks import start_fail_closed_stack

    start_fail_closed_stack(ctx)
    wrong, counted = [], 0
    for service in ("inventory", "pricing", "order"):
        base = url(f"fc_{service}")
        scoped, _ = guarded_routes(base, service, fail_closed=True)
        counted += len(scoped)
        wrong += [f"{service} {w}" for w in must_refuse(base, service, scoped, None, 401)]
    check(not wrong, f"served to an anonymous caller without AUTH_REQUIRED: {'; '.join(wrong)}")
    return f"{counted} scoped routes, each 401"


@attack("API9", "every admin and stream route a service serves is in its /openapi.json; no debug or legacy paths answer")
def route_inventory(ctx):
    missing, answering = [], []
    for service in SERVICES:
        documented = {(m, p) for m, p, _ in operations(url(service))}
        for method, path in ADMIN_ROUTES:
            if get(url(service) + path).status != 404 and (method, path) not in documented:
                missing.append(f"{service} {method} {path}")
        # The stream never ends by itself: its presence is read from the log line, not probed.
        if service == "order" and ctx.events_on and ("GET", "/events/stream") not in documented:
            missing.append("order GET /events/stream")
        # With events off the stream does not exist: 404 (an answer that ends), undescribed.
        if service == "order" and not ctx.events_on:
            stream = get(url(service) + "/events/stream").status
            if stream != 404 or ("GET", "/events/stream") in documented:
                answering.append(f"order /events/stream {stream} with events off")
        for probe in ("/debug", "/admin", "/swagger-ui/", "/actuator", "/.env", "/v0/orders", "/internal", "/config"):
            answer = get(url(service) + probe)
            if answer.status not in (401, 404, 405):
                answering.append(f"{service} {probe} {answer.status}")
    check(not missing, f"served but undescribed: {'; '.join(missing)}")
    check(not answering, f"unexpected routes answer: {'; '.join(answering)}")
    return "admin and stream routes described; 8 debug/legacy probes 404 on each service"
