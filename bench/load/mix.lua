-- wrk script: a fixed rate of a mix of routes (wrk paces each connection with delay(): rate = connections *
-- 1000 / FOREXRISK_DELAY_MS), counting answers by status class per thread; done() prints them as JSON.
local threads = {}
local key = os.getenv("FOREXRISK_KEY")
local free_key = os.getenv("FOREXRISK_FREE_KEY")
local delay_ms = tonumber(os.getenv("FOREXRISK_DELAY_MS") or "100")
local position = '{"accountBalance":10000,"accountCurrency":"USD","currencyPair":"EURUSD","entryPrice":1.185,' ..
                 '"stopLoss":1.182,"riskPercentage":2,"leverage":30}'
local pip = '{"accountCurrency":"USD","currencyPair":"EURUSD","lots":1}'
local pip_jpy = '{"accountCurrency":"USD","currencyPair":"GBPJPY","lots":0.5,"price":190.5}'
local requests = {}

function setup(thread)
  table.insert(threads, thread)
end

local names = {"position-size", "position-size", "position-size", "position-size", "pip-value", "pip-value-jpy-422",
               "instruments", "calculations", "readyz", "position-size-free"}
local window_s = tonumber(os.getenv("FOREXRISK_WINDOW_S") or "5")

function init(args)
  counts = {["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["429"] = 0, ["5xx"] = 0}
  -- Every answer other than 2xx/expected 4xx, by time window and route slot: "window|slot|status|problem type".
  -- The slot travels in the request id (the API echoes a valid X-Request-Id), so an answer is tied to its
  -- request even though wrk's response() does not say which request it answers.
  failures = {}
  started = os.time()
  local auth = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  local free = {["Authorization"] = "Bearer " .. free_key, ["Content-Type"] = "application/json"}
  local function with_slot(headers, slot)
    local h = {}
    for k, v in pairs(headers) do h[k] = v end
    h["X-Request-Id"] = "soak-slot-" .. slot
    return h
  end
  -- 10 slots: 4 position sizing, 2 pip value (GBPJPY in USD without a USDJPY rate: production has no snapshot, so
  -- this slot is the 422 missing-conversion-rate path on purpose), 1 instruments, 1 stored list,
  -- 1 readiness, 1 free-tier sizing (which the free tier's limit answers 429 at this rate)
  requests = {
    wrk.format("POST", "/api/v1/calculate/position-size", with_slot(auth, 1), position),
    wrk.format("POST", "/api/v1/calculate/position-size", with_slot(auth, 2), position),
    wrk.format("POST", "/api/v1/calculate/position-size", with_slot(auth, 3), position),
    wrk.format("POST", "/api/v1/calculate/position-size", with_slot(auth, 4), position),
    wrk.format("POST", "/api/v1/calculate/pip-value", with_slot(auth, 5), pip),
    wrk.format("POST", "/api/v1/calculate/pip-value", with_slot(auth, 6), pip_jpy),
    wrk.format("GET", "/api/v1/instruments", with_slot(auth, 7)),
    wrk.format("GET", "/api/v1/calculations?limit=5", with_slot(auth, 8)),
    wrk.format("GET", "/readyz", with_slot({}, 9)),
    wrk.format("POST", "/api/v1/calculate/position-size", with_slot(free, 10), position),
  }
end

function request()
  return requests[math.random(#requests)]
end

function delay()
  return delay_ms
end

function response(status, headers, body)
  if status == 429 then counts["429"] = counts["429"] + 1
  elseif status >= 500 then counts["5xx"] = counts["5xx"] + 1
  elseif status >= 400 then counts["4xx"] = counts["4xx"] + 1
  elseif status >= 300 then counts["3xx"] = counts["3xx"] + 1
  else counts["2xx"] = counts["2xx"] + 1 end
  local slot = tonumber(string.match(headers["x-request-id"] or headers["X-Request-Id"] or "", "^soak%-slot%-(%d+)$"))
  local expected = (slot == 6 and status == 422) or (slot == 10 and status == 429)
  if status >= 400 and not expected then
    local window = math.floor((os.time() - started) / window_s) * window_s
    local kind = string.match(body or "", '"type"%s*:%s*"([^"]*)"') or ""
    local k = window .. "|" .. (slot and names[slot] or "?") .. "|" .. status .. "|" .. kind
    failures[k] = (failures[k] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = {["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["429"] = 0, ["5xx"] = 0}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for k, v in pairs(c) do total[k] = total[k] + v end
  end
  -- The unexpected answers, one line each: FAIL <window s> <slot> <status> <problem type> <count>
  for _, thread in ipairs(threads) do
    local f = thread:get("failures")
    for k, v in pairs(f) do io.write("FAIL " .. k .. "|" .. v .. "\n") end
  end
  local e = summary.errors
  io.write(string.format('SOAK {"requests": %d, "duration_s": %.1f, "status": {"2xx": %d, "3xx": %d, "4xx": %d, ' ..
    '"429": %d, "5xx": %d}, "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"non_2xx_3xx": %d, "latency_ms": {"p50": %.2f, "p90": %.2f, "p99": %.2f, "p999": %.2f, "max": %.2f}}\n',
    summary.requests, summary.duration / 1e6, total["2xx"], total["3xx"], total["4xx"], total["429"], total["5xx"],
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
