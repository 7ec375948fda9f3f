-- wrk script: GET /v1/authorize (or any path of a static nginx), round-robin over the API
-- keys in $KEYS_FILE, sent as X-Api-Key. Each wrk thread starts at its own place in the
-- list, so the threads do not send the same key at the same moment (which would make the
-- server's cores contend for one key's state on every request, a worst case rather than
-- many clients' traffic).
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
local i = nil
request = function()
  i = ((i or offset or 0) % #keys) + 1
  return wrk.format("GET", nil, { ["X-Api-Key"] = keys[i] })
end
