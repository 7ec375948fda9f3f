-- wrk script: POST /v1/keys with the admin key from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = os.getenv("ADMIN_KEY")
wrk.body = '{"name": "bench", "permissions": ["dns:read"], "metadata": {"plan": "pro"}}'
