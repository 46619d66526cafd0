-- Shared by the benchmark scripts: "key=value" arguments, a random seed per
-- thread, and one machine-readable summary line printed when wrk finishes.
--
-- Load it from a script with:
--   local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local common = {}

common.FORM = {["Content-Type"] = "application/x-www-form-urlencoded"}
common.JSON = {["Content-Type"] = "application/json"}

-- The service's API key, from the environment (bench/wrk.py sets it): on
-- every request, those that name their own headers and those that do not.
local token = os.getenv("BENCH_API_TOKEN")
if token and token ~= "" then
   local authorization = "Bearer " .. token
   wrk.headers["Authorization"] = authorization
   common.FORM["Authorization"] = authorization
   common.JSON["Authorization"] = authorization
end

local threads_started = 0

-- Runs in wrk's main Lua state once per thread, before that thread's init().
function setup(thread)
   threads_started = threads_started + 1
   thread:set("thread_number", threads_started)
end

-- The arguments given after "--" on wrk's command line, as a table.
function common.options(args)
   local options = {}
   for _, argument in ipairs(args or {}) do
      local key, value = argument:match("^([^=]+)=(.*)$")
      if key then
         options[key] = value
      end
   end
   return options
end

function common.number(options, key, default)
   local value = tonumber(options[key] or "")
   if value == nil then
      if default == nil then
         error("missing argument " .. key .. "=N")
      end
      return default
   end
   return value
end

-- A different, reproducible random sequence in every thread.
function common.seed(options)
   local base = common.number(options, "seed", 1)
   math.randomseed(base * 7919 + (thread_number or 0) * 104729)
   for _ = 1, 10 do
      math.random()
   end
end

-- An amount of 0.01 to max_cents/100 as form text ("0.37").
function common.amount(max_cents)
   local cents = math.random(1, max_cents)
   return string.format("%d.%02d", math.floor(cents / 100), cents % 100)
end

-- "A,B,C" as the list {"A", "B", "C"}.
function common.list(text)
   local items = {}
   for item in (text or ""):gmatch("[^,]+") do
      items[#items + 1] = item
   end
   return items
end

-- A random user id in 1..count other than `other`.
function common.other_user(count, other)
   local user = math.random(1, count - 1)
   if user >= other then
      user = user + 1
   end
   return user
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
      "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}, " ..
      "\"latency_us\": {\"min\": %d, \"mean\": %.1f, \"stdev\": %.1f, \"max\": %d, " ..
      "\"p50\": %d, \"p75\": %d, \"p90\": %d, \"p99\": %d, \"p99.9\": %d}}\n",
      summary.requests, summary.duration, summary.bytes,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)))
end

return common
