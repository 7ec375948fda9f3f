-- wrk script: POST /v1/keys/verify, round-robin over the API keys in $KEYS_FILE, with the
-- caller's key ($VERIFIER_KEY).
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = os.getenv("VERIFIER_KEY")
request = function()
  i = i % #keys + 1
  return wrk.format(nil, nil, nil, '{"key":"' .. keys[i] .. '","required_scopes":["dns:read"]}')
end
