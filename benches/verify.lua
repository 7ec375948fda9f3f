-- wrk script: POST /v1/keys/verify, round-robin over the API keys in $KEYS_FILE, with the
-- caller's key ($VERIFIER_KEY). Each wrk thread starts at its own place in the list (see
-- authorize.lua).
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
local i = nil
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = os.getenv("VERIFIER_KEY")
request = function()
  i = ((i or offset or 0) % #keys) + 1
  return wrk.format(nil, nil, nil, '{"key":"' .. keys[i] .. '","required_scopes":["dns:read"]}')
end
