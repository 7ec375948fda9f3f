-- wrk script: GET /v1/authorize, round-robin over the access tokens in $TOKENS_FILE, sent
-- as Authorization: Bearer.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
