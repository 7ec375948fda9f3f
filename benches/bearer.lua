-- wrk script: GET /v1/authorize, round-robin over the access tokens in $TOKENS_FILE, sent
-- as Authorization: Bearer.
ROTATION_FILE = "TOKENS_FILE"
dofile("benches/rotation.lua")
request = function()
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. next_line() })
end
