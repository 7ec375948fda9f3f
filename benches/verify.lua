-- wrk script: POST /v1/keys/verify, round-robin over the API keys in $KEYS_FILE, with the
-- caller's key ($VERIFIER_KEY).
ROTATION_FILE = "KEYS_FILE"
dofile("benches/rotation.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = os.getenv("VERIFIER_KEY")
request = function()
  return wrk.format(nil, nil, nil, '{"key":"' .. next_line() .. '","required_scopes":["dns:read"]}')
end
