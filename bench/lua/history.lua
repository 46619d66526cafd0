-- GET /history/uid={uid}&date-start={day}&date-end={day + span - 1}: one user's
-- journal rows over a few days (two by default), at a random day of the seeded range.
-- Arguments: accounts=N start=EPOCH_SECONDS days=N [span=2] [seed=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local accounts, start, days, span

function init(args)
   local options = common.options(args)
   accounts = common.number(options, "accounts")
   start = common.number(options, "start")
   days = common.number(options, "days")
   span = common.number(options, "span", 2)
   common.seed(options)
end

local function day(offset)
   return os.date("!%Y-%m-%d", start + offset * 86400)
end

function request()
   local first = math.random(0, days - span)
   local path = string.format("/history/uid=%d&date-start=%s&date-end=%s",
                              math.random(1, accounts), day(first), day(first + span - 1))
   return wrk.format("GET", path)
end
