-- wrk script: one single-unit order per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"customer_id": "bench", "items": [{"sku": "A002", "quantity": 1}]}'
