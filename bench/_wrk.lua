-- wrk script for bench/authorize.py, bench/x402.py and bench/stripe_webhook.py: sends
-- pre-built requests (each with its own network id or idempotency key, read from the file
-- in WRK_REQUESTS, separated by NUL bytes), counts the decisions in the answers (a 201 is
-- a signed x402 payment; Stripe's answers say "approved": true, or "applied": true for an
-- event) and prints the figures as one JSON line.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local count = tonumber(os.getenv("WRK_THREADS"))
  local file = assert(io.open(os.getenv("WRK_REQUESTS"), "rb"))
  local data = file:read("*a")
  file:close()
  requests = {}
  local k = 0
  for raw in string.gmatch(data, "([^%z]+)") do
    if k % count == index then
      table.insert(requests, raw)
    end
    k = k + 1
  end
  position = 0
  approved = 0
  declined = 0
  other = 0
  exhausted = 0
end

function request()
  position = position + 1
  if position > #requests then
    exhausted = 1
    position = 1
  end
  return requests[position]
end

function response(status, headers, body)
  if status == 201 then
    approved = approved + 1
  elseif status ~= 200 then
    other = other + 1
  elseif string.find(body, '"decision":"approved"', 1, true)
      or string.find(body, '"approved": true', 1, true)
      or string.find(body, '"applied": true', 1, true) then
    approved = approved + 1
  else
    declined = declined + 1
  end
end

function done(summary, latency, requests_done)
  local approved_n, declined_n, other_n, exhausted_n = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    approved_n = approved_n + thread:get("approved")
    declined_n = declined_n + thread:get("declined")
    other_n = other_n + thread:get("other")
    exhausted_n = exhausted_n + thread:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"min_us":%d,"approved":%d,"declined":%d,"other":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"ran_out_of_requests":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, latency.min, approved_n, declined_n,
    other_n, e.connect, e.read, e.write, e.status, e.timeout, exhausted_n))
end
