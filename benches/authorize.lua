-- wrk script: GET /v1/authorize (or any path of a static nginx), round-robin over the API
-- keys in $KEYS_FILE, sent as X-Api-Key.
ROTATION_FILE = "KEYS_FILE"
dofile("benches/rotation.lua")
request = function()
  return wrk.format("GET", nil, { ["X-Api-Key"] = next_line() })
end
