"""API2 (broken authentication), API7 (server-side request forgery through
token headers) and API10 (unsafe consumption of a provider's keys): forged
tokens of every kind, throttles under concurrency, the operator's email
claimed in advance, a withdrawn key, a weak key."""

import concurrent.futures
import json
import secrets
import statistics
import time

import jose
from harness import Fail, attack, check, get, post, request, wait_until
from stacks import OPERATOR, identity_env, start_service, tail, url

OPERATOR_SCOPE = "inventory:write pricing:write orders:admin chaos:write"
# Where a good operator token gets 200 on each service of the main stack.
PROTECTED = {
    "inventory": "/items/A001/history",
    "pricing": "/price/A001/history",
    "order": "/orders",
}


def stack_issuer():
    return get(url("identity") + "/.well-known/openid-configuration").json()["issuer"]


def published_key():
    return jose.public_ec_jwk(get(url("identity") + "/.well-known/jwks.json").json()["keys"][0])


def refused_everywhere(tokens, what):
    """Each token must get 401 on every service of the main stack."""
    tokens = tokens if isinstance(tokens, list) else [tokens]
    for token in tokens:
        for service, path in PROTECTED.items():
            answer = get(url(service) + path, token=token)
            check(answer.status == 401, f"{what} at {service} {path}: {answer}")
    return f"401 at inventory, pricing and order ({len(tokens)} token(s))"


def forged_claims(**extra):
    return jose.claims(stack_issuer(), "shop", "forged-" + secrets.token_hex(3), OPERATOR_SCOPE, **extra)


def control(token, what):
    for service, path in PROTECTED.items():
        answer = get(url(service) + path, token=token)
        check(answer.status == 200, f"control: {what} should get 200 at {service} {path}: {answer}")


@attack("API2", "control: a token signed with the stack's own key is accepted (the forgeries below are meaningful)")
def stack_key_control(ctx):
    check(ctx.stack_key is not None, "the identity key generated into DATA_DIR could not be read")
    control(ctx.operator(), "the operator's token")
    control(jose.es256(ctx.stack_key, forged_claims()), "a token signed with the stack's key")
    return "the operator's token and one signed with the stack's key: 200 on every service"


@attack("API2", "alg none (every spelling), and a stripped signature")
def alg_none(ctx):
    claims = forged_claims()
    tokens = [jose.unsigned(claims, alg=alg) for alg in ("none", "None", "NONE", "nOnE")]
    real = ctx.operator()
    tokens.append(real.rsplit(".", 1)[0] + ".")
    return refused_everywhere(tokens, "an unsigned token")


@attack("API2", "key confusion: HS256 signed with the published public key (PEM, JWK, raw point)")
def key_confusion(ctx):
    key = published_key()
    claims = forged_claims()
    point = b"\x04" + jose.int_bytes(key.x, 32) + jose.int_bytes(key.y, 32)
    secrets_tried = [
        key.public_pem().encode(),
        key.public_pem().strip().encode(),
        json.dumps(key.public_jwk()).encode(),
        point,
    ]
    tokens = [jose.hs256(s, claims, kid=key.kid) for s in secrets_tried]
    tokens += [jose.hs256(s, claims) for s in secrets_tried[:1]]
    return refused_everywhere(tokens, "an HS256 token keyed with the public key")


@attack("API2", "a kid pointing elsewhere: the issuer's kid signed by another key, unknown kids, path tricks, another issuer's token")
def foreign_kid(ctx):
    key = published_key()
    mine = jose.EcKey()
    claims = forged_claims()
    tokens = [
        jose.es256(mine, claims, kid=key.kid),
        jose.es256(mine, claims),
        jose.es256(mine, claims, kid="../../../../../../dev/null"),
        jose.es256(mine, claims, kid=""),
        jose.es256(mine, claims, kid=None),
        jose.es256(mine, claims, kid="' OR '1'='1"),
        # The key itself in the header (CVE-2018-0114 style).
        jose.es256(mine, claims, kid=None, jwk=mine.public_jwk()),
        # A token another issuer signed for itself, with the operator's scopes.
        jose.es256(ctx.issuer.signing, ctx.issuer.claims(OPERATOR_SCOPE)),
    ]
    return refused_everywhere(tokens, "a token signed by a key not the issuer's")


@attack("API7", "jku and x5u headers naming a key set we serve are neither fetched nor trusted")
def jku_x5u(ctx):
    issuer = ctx.issuer
    mine = jose.EcKey()
    with issuer.lock:
        issuer.keys["/evil-jwks.json"] = [mine.jwk()]
    before = issuer.hits_of("/evil-jwks.json")
    claims = forged_claims()
    evil = issuer.base + "/evil-jwks.json"
    tokens = [
        jose.es256(mine, claims, jku=evil),
        jose.es256(mine, claims, x5u=evil),
        jose.es256(mine, claims, jku=evil, kid=published_key().kid),
    ]
    detail = refused_everywhere(tokens, "a token with jku/x5u")
    time.sleep(0.3)
    fetched = issuer.hits_of("/evil-jwks.json") - before
    check(fetched == 0, f"the services fetched the jku/x5u URL {fetched} times")
    return detail + "; the URL was never fetched"


@attack("API2", "tampering: truncated signature, scopes edited under the original signature, spliced signature")
def tampered(ctx):
    _, customer, *_ = ctx.customer(label="tamper")
    head, body, signature = customer.split(".")
    claims = jose.payload_of(customer)
    claims["scope"] = OPERATOR_SCOPE
    edited = jose.b64url(json.dumps(claims))
    tokens = [
        customer[:-8],
        f"{head}.{body}.{signature[:-2]}AA",
        f"{head}.{edited}.{signature}",
        jose.es256(jose.EcKey(), forged_claims()).rsplit(".", 1)[0] + "." + signature,
    ]
    for token in tokens[:1] + tokens[2:]:
        answer = get(url("inventory") + PROTECTED["inventory"], token=token)
        check(answer.status == 401, f"a tampered token at inventory: {answer}")
    return refused_everywhere(tokens, "a tampered token")


@attack("API2", "other algorithms under the issuer's kid (RS256, ES384, PS256, EdDSA, HS512)")
def other_algorithms(ctx):
    key = published_key()
    mine = jose.EcKey()
    claims = forged_claims()
    tokens = [jose.es256(mine, claims, kid=key.kid, alg=alg) for alg in ("RS256", "ES384", "PS256", "EdDSA", "HS512")]
    return refused_everywhere(tokens, "a token with another alg")


@attack("API2", "validly signed but wrong: issuer, audience, expired, not yet valid, issued in the future, no sub")
def wrong_claims(ctx):
    check(ctx.stack_key is not None, "the identity key generated into DATA_DIR could not be read")
    key, now = ctx.stack_key, int(time.time())
    cases = {
        "another issuer": forged_claims(iss="http://evil.example"),
        "issuer with a slash": forged_claims(iss=stack_issuer() + "/"),
        "another audience": forged_claims(aud="another-api"),
        "audience list without ours": forged_claims(aud=["x", "y"]),
        "expired 2 minutes ago": forged_claims(exp=now - 120, iat=now - 300, nbf=now - 300),
        "nbf in 2 minutes": forged_claims(nbf=now + 120),
        "iat in 2 minutes": forged_claims(iat=now + 120, nbf=now),
        "no sub": forged_claims(sub=None),
        "no exp": forged_claims(exp=None),
    }
    for what, claims in cases.items():
        refused_everywhere(jose.es256(key, claims), what)
    return f"{len(cases)} kinds, each 401 on every service"


@attack("API2", "typ must be JWT or at+jwt: a validly signed dpop+jwt (or id-token-like) token is refused")
def token_type(ctx):
    check(ctx.stack_key is not None, "the identity key generated into DATA_DIR could not be read")
    claims = forged_claims()
    control(jose.es256(ctx.stack_key, claims, typ="at+jwt"), "a token of typ at+jwt")
    tokens = [jose.es256(ctx.stack_key, claims, typ=typ) for typ in ("dpop+jwt", "logout+jwt", "secevent+jwt")]
    return refused_everywhere(tokens, "a token with typ dpop+jwt")


@attack("API10", "RSA keys under 2048 bits published by the provider are not trusted", group="issuer")
def weak_rsa(ctx):
    issuer = ctx.issuer
    target = url("inventory_x") + "/items/A001/history"
    good = get(target, token=jose.es256(issuer.signing, issuer.claims()))
    check(good.status in (200, 404), f"control: ES256 from the stand-in issuer: {good}")
    strong = get(target, token=jose.rs256(issuer.rsa_strong, issuer.claims()))
    check(strong.status in (200, 404), f"control: RS256 with a 2048-bit key: {strong}")
    weak = get(target, token=jose.rs256(issuer.rsa_weak, issuer.claims()))
    check(weak.status == 401, f"an RS256 token from a 1024-bit key was accepted: {weak}")
    return f"2048-bit {strong.status}, 1024-bit 401"


@attack("API10", "AUTH_JWKS_REFRESH_MS=1 has a floor: forged kids cannot make a service hammer the provider", group="issuer")
def refresh_floor(ctx):
    proc = ctx.inventory_y
    wait_until(lambda: proc.poll() is not None or get_ok(url("inventory_y") + "/health/ready"), 30)
    if proc.poll() is not None:
        return f"refused to start with AUTH_JWKS_REFRESH_MS=1: {tail(ctx.log('inventory-y'), 2)}"
    issuer = ctx.issuer
    before = issuer.hits_of("/jwks-y.json")
    started = time.monotonic()
    for _ in range(40):
        get(url("inventory_y") + "/items/A001/history", token=jose.es256(jose.EcKey(), issuer.claims()))
        time.sleep(0.02)
    took = time.monotonic() - started
    fetched = issuer.hits_of("/jwks-y.json") - before
    check(fetched <= 8, f"40 unknown kids in {took:.1f}s made {fetched} key-set fetches")
    return f"40 unknown kids in {took:.1f}s: {fetched} key-set fetches"


def get_ok(address):
    try:
        return get(address, timeout=2).status == 200
    except OSError:
        return False


@attack("API2", "a withdrawn key's tokens are refused within one refresh period", group="withdraw")
def withdrawn_key(ctx):
    issuer = ctx.issuer
    target = url("inventory_x") + "/items/A001/history"
    token = jose.es256(issuer.rotated, issuer.claims(ttl=600))
    first = get(target, token=token)
    check(first.status in (200, 404), f"control: a token of the second published key: {first}")
    issuer.withdraw(issuer.rotated.kid)
    withdrawn = time.monotonic()
    # A fresh token of the same key too: the memory of verified tokens must go as well.
    fresh = lambda: jose.es256(issuer.rotated, issuer.claims(ttl=600))
    refused = wait_until(
        lambda: get(target, token=token).status == 401 and get(target, token=fresh()).status == 401, 40, every=0.5
    )
    seconds = time.monotonic() - withdrawn
    check(refused, f"still accepted {seconds:.0f}s after the key left the key set")
    ctx.figures["seconds from a key's withdrawal to its tokens' refusal"] = round(seconds, 1)
    still = get(target, token=jose.es256(issuer.signing, issuer.claims()))
    check(still.status in (200, 404), f"the key that stayed is refused after the refresh: {still}")
    return f"refused {seconds:.1f}s after withdrawal; the remaining key still works"


@attack("API2", "the sign-in throttle holds under 40 parallel guesses with the right password inside the wave", group="load")
def throttle_wave(ctx):
    email = f"wave-{secrets.token_hex(4)}@example.com"
    password = "right-" + secrets.token_hex(6)
    made = post(url("identity_load") + "/accounts", {"email": email, "password": password, "name": "Wave"})
    check(made.status == 201, f"sign-up: {made}")
    guesses = [f"wrong-{i}-{secrets.token_hex(3)}" for i in range(40)]
    guesses[20] = password

    def guess(pw):
        return post(url("identity_load") + "/sessions", {"email": email, "password": pw}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(guess, guesses))
    statuses = [a.status for a in answers]
    evaluated = sum(1 for s in statuses if s in (200, 401))
    ctx.figures["guesses evaluated of a parallel wave of 40"] = evaluated
    after = post(url("identity_load") + "/sessions", {"email": email, "password": password})
    summary = f"{evaluated} of 40 evaluated ({statuses.count(429)} throttled, {statuses.count(503)} busy); right password after the wave: {after.status}"
    check(evaluated <= 5, summary)
    check(after.status == 429, summary)
    return summary


@attack("API4", "200 concurrent sign-ins: 503 + Retry-After beyond the hashing bound, /health answers, RSS < 150 MiB", group="load")
def hashing_bound(ctx):
    from harness import vm_hwm_kib

    # An identity of its own: its peak memory is this attack's alone.
    proc = start_service(ctx, "identity-hashing", "identity", "identity_hashing", identity_env("identity_hashing"))
    base = url("identity_hashing")
    health_times, stop = [], []

    def poll_health():
        while not stop:
            started = time.monotonic()
            try:
                status = get(base + "/health", timeout=10).status
            except OSError:
                status = 0
            health_times.append((status, time.monotonic() - started))
            time.sleep(0.05)

    def sign_in(i):
        started = time.monotonic()
        answer = post(base + "/sessions", {"email": f"nobody-{i}-{secrets.token_hex(3)}@example.com",
                                           "password": "not-the-password"}, timeout=120)
        return answer, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(201) as pool:
        poller = pool.submit(poll_health)
        results = list(pool.map(sign_in, range(200)))
        stop.append(True)
        poller.result()
    statuses = [a.status for a, _ in results]
    busy = [a for a, _ in results if a.status == 503]
    with_retry = sum(1 for a in busy if a.header("retry-after"))
    health_ok = all(s == 200 for s, _ in health_times)
    latencies = sorted(t for _, t in health_times)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan")
    peak_mib = vm_hwm_kib(proc.pid) / 1024
    ctx.figures["identity peak RSS under 200 concurrent sign-ins (MiB)"] = round(peak_mib)
    ctx.figures["identity /health p99 under that load (ms)"] = round(p99 * 1000)
    summary = (f"{statuses.count(401)} evaluated, {len(busy)} 503 ({with_retry} with Retry-After), "
               f"peak RSS {peak_mib:.0f} MiB, /health {len(health_times)} polls, all 200: {health_ok}, p99 {p99 * 1000:.0f} ms")
    check(busy and with_retry == len(busy), summary)
    check(health_ok and peak_mib < 150, summary)
    check(all(s in (401, 503, 429) for s in statuses), summary)
    return summary


@attack("API4", "RATE_LIMIT_SIGNIN_PER_MIN limits /sessions, /accounts and /token per address", group="limited")
def signin_rate_limit(ctx):
    base = url("identity_limited")
    seen = {}
    for route in ("/sessions", "/accounts", "/token"):
        statuses = []
        for i in range(12):
            if route == "/token":
                answer = request("POST", base + route, raw=b"grant_type=client_credentials",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Authorization": "Basic bm9ib2R5Om5vdGhpbmc="})
            else:
                answer = post(base + route, {"email": f"rl-{i}-{secrets.token_hex(3)}@example.com",
                                             "password": "not-the-password-x", "name": "R"})
            statuses.append(answer.status)
            if answer.status == 429:
                check(answer.header("retry-after"), f"429 without Retry-After on {route}")
                break
        seen[route] = statuses
    summary = "; ".join(f"{r}: {s}" for r, s in seen.items())
    check(all(429 in s for s in seen.values()), f"RATE_LIMIT_SIGNIN_PER_MIN=5: {summary}")
    return summary


@attack("API2", "an operator's email signed up in advance never gets operator scopes with the squatter's password", group="squat")
def operator_squatted(ctx):
    email, mine, theirs = "ops@squat.example", "operator-real-password", "squatter-password-1"
    first = start_service(ctx, "identity-squat", "identity", "identity_squat", identity_env("identity_squat"))
    made = post(url("identity_squat") + "/accounts", {"email": email, "password": theirs, "name": "Squatter"})
    check(made.status == 201, f"the squatter's sign-up before the operator exists: {made}")
    squatter_token = post(url("identity_squat") + "/sessions", {"email": email, "password": theirs}).json()
    ctx.procs.stop(first)
    accounts = json.dumps([{"email": email, "password": mine, "name": "Ops"}])
    env = identity_env("identity_squat", IDENTITY_OPERATORS=email, IDENTITY_ACCOUNTS=accounts)
    try:
        start_service(ctx, "identity-squat-2", "identity", "identity_squat", env, data="identity-squat")
    except Fail as refused:
        log = tail(ctx.log("identity-squat-2"), 8)
        check(email in log, f"identity refused to start without naming the account: {log}")
        check(theirs not in log and mine not in log, "a password reached the log")
        return f"identity refused to start, naming {email}"
    answer = post(url("identity_squat") + "/sessions", {"email": email, "password": theirs})
    if answer.status == 200:
        scope = jose.payload_of(answer.json()["access_token"]).get("scope", "")
        check("orders:admin" not in scope and "inventory:write" not in scope,
              f"the squatter's password signs in as operator with scopes {scope!r}")
    operator = post(url("identity_squat") + "/sessions", {"email": email, "password": mine})
    check(operator.status == 200, f"the configured operator password: {operator}")
    scope = jose.payload_of(operator.json()["access_token"]).get("scope", "")
    check("orders:admin" in scope, f"the provisioned operator has scopes {scope!r}")
    old = squatter_token.get("access_token")
    old_scope = jose.payload_of(old).get("scope", "") if old else ""
    check("orders:admin" not in old_scope, "the squatter's earlier token carries operator scopes")
    return f"squatter's password: {answer.status} without operator scopes; the configured one: operator"


@attack("API2", "sign-up does not reveal by timing which emails are operators")
def signup_timing(ctx):
    _, _, taken, _ = ctx.customer(label="taken")
    body = lambda email: {"email": email, "password": "p-" + secrets.token_hex(8), "name": "Probe"}
    operator_times, taken_times = [], []
    for _ in range(5):
        op = post(url("identity") + "/accounts", body(OPERATOR[0]))
        check(op.status == 409, f"signing up the operator's email: {op}")
        operator_times.append(op.elapsed)
        other = post(url("identity") + "/accounts", body(taken))
        taken_times.append(other.elapsed)
    op_ms, taken_ms = statistics.median(operator_times) * 1000, statistics.median(taken_times) * 1000
    summary = f"median {op_ms:.0f} ms for the operator's email, {taken_ms:.0f} ms for a taken one"
    check(op_ms >= 0.3 * taken_ms, summary)
    return summary


@attack("API2", "client credentials: a wrong secret and scopes beyond the client's are refused")
def client_credentials(ctx):
    import base64

    def token(secret, scope=None):
        form = "grant_type=client_credentials" + (f"&scope={scope}" if scope else "")
        basic = base64.b64encode(f"order:{secret}".encode()).decode()
        return request("POST", url("identity") + "/token", raw=form.encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"})

    wrong = token("not-the-secret")
    check(wrong.status == 401 and (wrong.json() or {}).get("error") == "invalid_client", f"a wrong secret: {wrong}")
    greedy = token("order-demo-secret", "orders:admin%20chaos:write")
    if greedy.status == 200:
        scope = greedy.json().get("scope", "")
        check("orders:admin" not in scope and "chaos:write" not in scope, f"the client got {scope!r}")
    return f"wrong secret 401 invalid_client; scopes beyond the client's: {greedy.status} {greedy.json()}"
