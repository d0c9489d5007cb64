"""The live stream (order's GET /events/stream): whose events a listener
sees (API1), what an anonymous listener learns (API3), how long a token's
stream lives (API2) and how many streams one caller may hold (API4)."""

import secrets
import time

import jose
from harness import EventStream, Skip, attack, check, post, request, wait_until
from stacks import url

STREAM = "/events/stream"


def needs_events(ctx):
    if not ctx.events_on:
        raise Skip("events are off in the local stack (no nats-server)")


def stream_scene(ctx):
    """Once for both attacks below: an anonymous listener, alice and bob
    listen; alice orders, an operator restocks. The texts each one received."""
    if getattr(ctx, "scene", None):
        return ctx.scene
    needs_events(ctx)
    a_id, a_token, *_ = ctx.customer(label="alice")
    _, b_token, *_ = ctx.customer(label="bob")
    operator = ctx.operator()
    streams = {
        "anonymous": EventStream(url("order") + STREAM),
        "alice": EventStream(url("order") + STREAM, token=a_token),
        "bob": EventStream(url("order") + STREAM, token=b_token),
    }
    try:
        for who, stream in streams.items():
            check(stream.status == 200, f"{who}'s stream: {stream.status}")
        time.sleep(0.5)
        oid = ctx.order(a_token)["order_id"]
        # A new item of its own, restocked by the operator: its sku marks the restock's event.
        sku = "AUDIT-" + secrets.token_hex(4)
        made = request("PUT", url("inventory") + f"/items/{sku}", body={"name": "Audit", "category": "electronics"},
                       token=operator)
        check(made.status == 201, f"the operator's new item: {made}")
        restock = post(url("inventory") + f"/items/{sku}/stock", {"delta": 5, "reason": "audit probe"}, token=operator)
        check(restock.status == 200, f"the operator's restock: {restock}")
        arrived = wait_until(lambda: oid in streams["alice"].text() and sku in streams["anonymous"].text(), 15)
        check(arrived, "alice's order event or the restock's event never arrived")
        time.sleep(1.0)
        ctx.scene = {
            "alice_id": a_id,
            "order_id": oid,
            "operator_sub": jose.payload_of(operator)["sub"],
            "texts": {who: stream.text() for who, stream in streams.items()},
            "anonymous_events": len(streams["anonymous"].events),
        }
        return ctx.scene
    finally:
        for stream in streams.values():
            stream.close()


@attack("API1", "the event stream shows a customer their own orders and never another's", group="stream")
def stream_audience(ctx):
    scene = stream_scene(ctx)
    bob = scene["texts"]["bob"]
    check(scene["order_id"] not in bob and scene["alice_id"] not in bob, "bob's stream carries alice's order")
    check(scene["order_id"] in scene["texts"]["alice"], "control: alice's stream lacks her order")
    return "alice saw her order's events, bob none of them"


@attack("API3", "anonymous listeners of the event stream see no staff subject, order or reservation id", group="stream")
def stream_redaction(ctx):
    scene = stream_scene(ctx)
    anonymous = scene["texts"]["anonymous"]
    leaks = [name for name, value in (("the operator's subject", scene["operator_sub"]),
                                      ("alice's order (= reservation) id", scene["order_id"]),
                                      ("alice's customer id", scene["alice_id"])) if value in anonymous]
    at = min((anonymous.find(v) for v in (scene["operator_sub"], scene["order_id"]) if v in anonymous), default=0)
    check(not leaks, f"an anonymous listener sees {', '.join(leaks)}: …{anonymous[max(0, at - 120):at + 60]}…")
    return f"{scene['anonymous_events']} catalogue events, none naming staff, orders or reservations"


@attack("API2", "a stream ends when its token expires", group="stream")
def stream_expiry(ctx):
    needs_events(ctx)
    if ctx.stack_key is None:
        raise Skip("the identity key generated into DATA_DIR could not be read")
    from attacks_auth import stack_issuer

    # A token good for 4 more seconds, signed with the stack's key.
    claims = jose.claims(stack_issuer(), "shop", "stream-" + secrets.token_hex(3), "", ttl=4)
    stream = EventStream(url("order") + STREAM, token=jose.es256(ctx.stack_key, claims))
    check(stream.status == 200, f"the stream of a valid token answered {stream.status}")
    opened = time.monotonic()
    try:
        # At most the verifiers' clock-skew leeway (30 s) past its expiry.
        ended = wait_until(lambda: stream.closed_at is not None, 4 + 30 + 3, every=0.25)
        check(ended, "the stream was still open 33 s after its token expired")
        return f"ended {stream.closed_at - opened:.1f}s after connect, its token expiring at 4 s"
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
