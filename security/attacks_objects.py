"""API1 (object level), API3 (object property level) and API6 (sensitive
business flows): one customer reaching another's orders, fields nobody may
set, stock held without an order."""

import secrets

import jose
from harness import attack, check, get, post, request
from stacks import url


def two_customers(ctx):
    a_id, a_token, *_ = ctx.customer(label="alice")
    b_id, b_token, *_ = ctx.customer(label="bob")
    return (a_id, a_token), (b_id, b_token)


@attack("API1", "another customer's order by id: read and cancel answer 404")
def orders_by_id(ctx):
    (a_id, a_token), (_, b_token) = two_customers(ctx)
    order = ctx.order(a_token)
    oid = order["order_id"]
    read = get(url("order") + f"/orders/{oid}", token=b_token)
    check(read.status == 404, f"bob read alice's order: {read}")
    cancel = post(url("order") + f"/orders/{oid}/cancel", token=b_token)
    check(cancel.status == 404, f"bob's cancel of alice's order: {cancel}")
    anonymous = get(url("order") + f"/orders/{oid}")
    check(anonymous.status == 401, f"anonymous read of an order: {anonymous}")
    still = get(url("order") + f"/orders/{oid}", token=a_token).json() or {}
    check(still.get("status") != "cancelled", "alice's order was cancelled by bob")
    return "read 404, cancel 404 (order untouched), anonymous 401"


@attack("API1", "list filters: ?customer_id= of another customer shows none of their orders")
def list_filter(ctx):
    (a_id, a_token), (b_id, b_token) = two_customers(ctx)
    oid = ctx.order(a_token)["order_id"]
    seen = []
    for query in (f"?customer_id={a_id}", "", f"?customer_id={a_id}&customer_id={b_id}", f"?customer_id={a_id}&limit=1000"):
        answer = get(url("order") + "/orders" + query, token=b_token)
        check(answer.status in (200, 400, 403, 404), f"GET /orders{query} as bob: {answer}")
        check(oid.encode() not in answer.body and a_id.encode() not in answer.body,
              f"GET /orders{query} as bob shows alice's order: {answer}")
        seen.append(f"{query or '(none)'} {answer.status}")
    anonymous = get(url("order") + f"/orders?customer_id={a_id}")
    check(anonymous.status == 401, f"anonymous list: {anonymous}")
    return "; ".join(seen) + "; anonymous 401"


@attack("API1", "an order placed in another customer's name is refused (403 customer_mismatch)")
def order_for_another(ctx):
    (a_id, _), (_, b_token) = two_customers(ctx)
    answer = post(url("order") + "/orders", {"customer_id": a_id, "skus": ["A002"]}, token=b_token)
    check(answer.status == 403, f"bob ordered as alice: {answer}")
    return f"{answer.status} {answer.code()}"


@attack("API1", "an Idempotency-Key reused by another customer never returns the first one's order")
def idempotency_key_reuse(ctx):
    (a_id, a_token), (b_id, b_token) = two_customers(ctx)
    key = "shared-" + secrets.token_hex(6)
    first = ctx.order(a_token, key=key)
    # The very same request as alice's, with her key.
    again = post(url("order") + "/orders", {"skus": ["A002"]}, token=b_token, headers={"Idempotency-Key": key})
    leaked = first["order_id"].encode() in again.body or a_id.encode() in again.body
    check(not leaked, f"bob's request with alice's key returned alice's order: {again}")
    check(again.status < 500, f"bob's request with alice's key: {again}")
    return f"bob got {again.status} {again.code()} without alice's order"


@attack("API3", "sign-up mass assignment: scope, scopes, role, customer_id, is_operator are not taken")
def signup_mass_assignment(ctx):
    email = f"mass-{secrets.token_hex(5)}@example.com"
    forged_id = "01936f3e-8a7b-7c3d-9e2f-1a2b3c4d5e6f"
    body = {
        "email": email,
        "password": "p-" + secrets.token_hex(8),
        "name": "Mallory",
        "scope": "inventory:write pricing:write orders:admin chaos:write",
        "scopes": ["orders:admin", "chaos:write"],
        "role": "operator",
        "customer_id": forged_id,
        "is_operator": True,
        "operator": True,
    }
    made = post(url("identity") + "/accounts", body)
    if made.status == 400:
        return "400: unknown fields refused"
    check(made.status == 201, f"sign-up with extra fields: {made}")
    check(made.json().get("customer_id") != forged_id, "the customer_id sent was taken")
    claims = jose.payload_of(ctx.sign_in(email, body["password"]))
    check(not claims.get("scope"), f"the token carries scopes {claims.get('scope')!r}")
    check(claims.get("sub") != forged_id, "the token's sub is the one sent")
    return "201 with the extra fields ignored: token without scopes, its own customer id"


@attack("API3", "catalogue writes: stock and updated_by in PUT /items are not taken; history names the token")
def catalogue_mass_assignment(ctx):
    operator = ctx.operator()
    sub = jose.payload_of(operator)["sub"]
    sku = "Z" + str(secrets.randbelow(900) + 100)
    body = {"name": "Probe", "category": "electronics", "stock": 999, "updated_by": "mallory", "actor": "mallory"}
    made = request("PUT", url("inventory") + f"/items/{sku}", body=body, token=operator)
    if made.status == 400:
        return "400: unknown fields refused"
    check(made.status in (200, 201), f"PUT /items/{sku}: {made}")
    check(made.json().get("stock") == 0, f"the item took the stock sent: {made}")
    history = get(url("inventory") + f"/items/{sku}/history", token=operator).json() or {}
    actors = {c.get("actor") for c in history.get("changes", [])}
    check(actors == {sub}, f"history actors {actors}, the token's sub is {sub}")
    price = request("PUT", url("pricing") + f"/price/{sku}",
                    body={"base_price": 10, "discount_percent": 0, "final_price": 0.01, "updated_by": "mallory"},
                    token=operator)
    if price.status == 200:
        check(price.json().get("final_price") != 0.01, f"the price took final_price: {price}")
    return f"new item stock 0, history actor = token sub; PUT /price with extra fields {price.status}"


@attack("API3", "order mass assignment: status, total and unit prices sent are not taken")
def order_mass_assignment(ctx):
    _, token, *_ = ctx.customer()
    body = {
        "items": [{"sku": "A002", "quantity": 1, "unit_price": 0.01, "line_total": 0.01}],
        "status": "confirmed",
        "total": 0.01,
        "pricing": "live",
        "order_id": "00000000-0000-7000-8000-000000000000",
    }
    answer = post(url("order") + "/orders", body, token=token)
    if answer.status == 400:
        return "400: unknown fields refused"
    check(answer.status == 201, f"order with extra fields: {answer}")
    order = answer.json()
    check(order["total"] != 0.01 and order["order_id"] != body["order_id"], f"fields taken: {order}")
    return f"201 priced by the shop (total {order['total']})"


@attack("API6", "a customer cannot hold stock without an order (reservation endpoints need inventory:reserve)")
def reserve_without_order(ctx):
    _, token, *_ = ctx.customer()
    rid = "00000000-0000-7000-8000-" + secrets.token_hex(6)
    answer = post(url("inventory") + "/reservations",
                  {"reservation_id": rid, "lines": [{"sku": "A001", "quantity": 50}]}, token=token)
    check(answer.status == 403, f"a customer reserved stock directly: {answer}")
    huge = post(url("order") + "/orders", {"items": [{"sku": "A002", "quantity": 10_000_000}]}, token=token)
    check(huge.status in (400, 409, 422), f"an order for 10 million: {huge}")
    lines = post(url("order") + "/orders",
                 {"items": [{"sku": f"A{i:03d}", "quantity": 1} for i in range(500)]}, token=token)
    check(lines.status in (400, 413, 422), f"an order of 500 lines: {lines}")
    return f"reserve 403; quantity 10^7 {huge.status}; 500 lines {lines.status}"
