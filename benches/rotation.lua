-- Loaded by the wrk scripts (run from the repository's root): `next_line()` walks the lines
-- of a file round-robin. The script sets the global `ROTATION_FILE` to the name of the
-- environment variable that holds the file's path. Each wrk thread
-- starts at its own place in the list, so the threads do not send the same credential at the
-- same moment (which would make the server's cores contend for one credential's state on
-- every request, a worst case rather than many clients' traffic), and those places are
-- spread over the whole list (steps of the golden ratio), so that the threads together
-- send every line soon. `ROTATION_START` (default 0) moves every thread's first line on by
-- that many: a run can go on where the last one stopped.
local path = assert(os.getenv(ROTATION_FILE), ROTATION_FILE .. " is not set")
local lines = {}
for line in io.lines(path) do lines[#lines + 1] = line end
local threads = 0
function setup(thread)
  local start = tonumber(os.getenv("ROTATION_START") or "0")
  thread:set("offset", (start + math.floor(#lines * ((threads * 0.6180339887) % 1))) % #lines)
  threads = threads + 1
end
local i = nil
function next_line()
  i = ((i or offset or 0) % #lines) + 1
  return lines[i]
end
-- After a run, the tail beyond wrk's own percentiles: one line, `Tail: p99.9 … max …`.
function done(summary, latency, requests)
  io.write(string.format("Tail: p99.9 %.2fms, max %.2fms\n",
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
