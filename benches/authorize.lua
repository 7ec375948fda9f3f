-- wrk script: GET /v1/authorize (or any path of a static nginx), round-robin over the API
-- keys in $KEYS_FILE, sent as X-Api-Key.
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local i = 0
request = function()
  i = i % #keys + 1
  return wrk.format("GET", nil, { ["X-Api-Key"] = keys[i] })
end
