-- wrk script: one single-unit order per request, as the customer whose bearer
-- token is in BENCH_TOKEN (access control on: the customer is the token's subject).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
wrk.body = '{"items": [{"sku": "A002", "quantity": 1}]}'
