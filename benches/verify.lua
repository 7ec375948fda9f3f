-- wrk script: POST /v1/keys/verify, round-robin over the API keys in $KEYS_FILE, with the
-- caller's key ($VERIFIER_KEY). Every 64th answer of 200 is read: one whose code is not
-- VALID (a key refused, limited or not found) means the run measures something else, and
-- wrk exits with status 1 when it ends. (The same requests sent to /healthz, the baseline,
-- answer 405, which checked_wrk judges.)
ROTATION_FILE = "KEYS_FILE"
dofile("benches/rotation.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = os.getenv("VERIFIER_KEY")
request = function()
  return wrk.format(nil, nil, nil, '{"key":"' .. next_line() .. '","required_scopes":["dns:read"]}')
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

-- Per thread (globals, so that done() can read them through thread:get).
answers, refused, example = 0, 0, nil
function response(status, headers, body)
  answers = answers + 1
  if status == 200 and answers % 64 == 1 and not string.find(body, '"code":"VALID"', 1, true) then
    refused = refused + 1
    example = body
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    local count = thread:get("refused") or 0
    total = total + count
    if count > 0 then
      io.stderr:write("an answer that is not VALID: " .. tostring(thread:get("example")) .. "\n")
    end
  end
  if total > 0 then
    io.stderr:write(total .. " sampled answers were not VALID: the run does not measure verification\n")
    os.exit(1)
  end
end
