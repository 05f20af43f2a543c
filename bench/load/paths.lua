-- paths.lua: the wrk script of bench/load's -driver wrk. Each request is a
-- GET of a path drawn at random from a file (one path per line), with the
-- bearer token read from a file, as bench/load's own client sends it.
--   wrk ... -s paths.lua URL -- PATHS_FILE TOKEN_FILE
-- At the end it prints one JSON line: requests, errors and latencies (us).

local threads = {}

function setup(thread)
  thread:set("seed", #threads + 1)
  threads[#threads + 1] = thread
end

local paths = {}

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then paths[#paths + 1] = line end
  end
  local f = assert(io.open(args[2]))
  local token = f:read("*l")
  f:close()
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
  wrk.headers["Accept"] = "application/fhir+json"
  math.randomseed(seed * 7919)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
