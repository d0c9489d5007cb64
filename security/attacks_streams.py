"""The live stream (order's GET /events/stream): whose events a listener
sees (API1), what an anonymous listener learns (API3), how long a token's
stream lives (API2) and how many streams one caller may hold (API4)."""

import secrets
import time

import jose
from harness import EventStream, Skip, attack, check, post, wait_until
from stacks import url

STREAM = "/events/stream"


def needs_events(ctx):
    if not ctx.events_on:
        raise Skip("events are off in the local stack (no nats-server)")


@attack("API1", "the event stream shows a customer only their own orders; anonymous listeners no staff, order or reservation ids", group="stream")
def stream_audience(ctx):
    needs_events(ctx)
    a_id, a_token, *_ = ctx.customer(label="alice")
    b_id, b_token, *_ = ctx.customer(label="bob")
    operator = ctx.operator()
    operator_sub = jose.payload_of(operator)["sub"]
    streams = {
        "anonymous": EventStream(url("order") + STREAM),
        "alice": EventStream(url("order") + STREAM, token=a_token),
        "bob": EventStream(url("order") + STREAM, token=b_token),
    }
    try:
        for who, stream in streams.items():
            check(stream.status == 200, f"{who}'s stream: {stream.status}")
        time.sleep(0.5)
        order = ctx.order(a_token)
        oid = order["order_id"]
        restock = post(url("inventory") + "/items/A002/stock", {"delta": 1, "reason": "audit probe"}, token=operator)
        check(restock.status == 200, f"the operator's restock: {restock}")
        arrived = wait_until(lambda: oid in streams["alice"].text() and "A002" in streams["anonymous"].text(), 15)
        check(arrived, "alice's order event or the catalogue's events never arrived")
        time.sleep(1.0)
        bob = streams["bob"].text()
        check(oid not in bob and a_id not in bob, "bob's stream carries alice's order")
        anonymous = streams["anonymous"].text()
        leaks = [name for name, value in (("the operator's subject", operator_sub), ("alice's order or reservation id", oid),
                                          ("alice's customer id", a_id)) if value in anonymous]
        check(not leaks, f"an anonymous listener sees {', '.join(leaks)}: {anonymous[-300:]}")
        return f"alice saw her order; bob nothing of it; anonymous saw {len(streams['anonymous'].events)} catalogue events without ids or staff"
    finally:
        for stream in streams.values():
            stream.close()


@attack("API2", "a stream ends when its token expires", group="stream")
def stream_expiry(ctx):
    needs_events(ctx)
    if ctx.stack_key is None:
        raise Skip("the identity key generated into DATA_DIR could not be read")
    from attacks_auth import stack_issuer

    now = int(time.time())
    # Expired 25 s ago: still inside the verifiers' 30 s clock-skew leeway, so
    # it is accepted at connect today and must not keep the stream open.
    claims = jose.claims(stack_issuer(), "shop", "stream-" + secrets.token_hex(3), "", iat=now - 600, nbf=now - 600)
    claims["exp"] = now - 25
    stream = EventStream(url("order") + STREAM, token=jose.es256(ctx.stack_key, claims))
    if stream.status == 401:
        return "refused at connect (401)"
    check(stream.status == 200, f"the stream answered {stream.status}")
    opened = time.monotonic()
    try:
        ended = wait_until(lambda: stream.closed_at is not None, 20, every=0.25)
        check(ended, "the stream of an expired token was still open 20 s after its expiry (and leeway)")
        return f"ended {stream.closed_at - opened:.1f}s after connect, the token having expired"
    finally:
        stream.close()


@attack("API4", "one caller holds at most a few streams (by subject, else by address)", group="stream")
def streams_per_caller(ctx):
    needs_events(ctx)
    _, token, *_ = ctx.customer(label="streams")
    held = []
    try:
        for tokens_label, token_used in (("a customer", token), ("an anonymous address", None)):
            refused = None
            opened = []
            for _ in range(12):
                stream = EventStream(url("order") + STREAM, token=token_used)
                if stream.status != 200:
                    refused = stream.status
                    break
                opened.append(stream)
            held += opened
            check(refused in (429, 503), f"{tokens_label} opened {len(opened)} streams at once (no refusal)")
            for stream in opened:
                stream.close()
        return "a customer and an anonymous address are each refused past a few streams"
    finally:
        for stream in held:
            stream.close()
