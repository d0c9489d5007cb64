-- wrk script: a bulk price request for four skus.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"items": [{"sku": "A001", "quantity": 1}, {"sku": "A002", "quantity": 10}, {"sku": "B001", "quantity": 2}, {"sku": "C001", "quantity": 60}]}'
