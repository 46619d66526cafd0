-- POST /points/{uid}/add: a grant of 1 to max_points points from a random payer to a
-- random member of first..first+members-1 (JSON; no timestamp: the service's clock).
-- Arguments: members=N payers=A,B,... [first=1] [max_points=1000] [seed=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local members, first, max_points, payers

function init(args)
   local options = common.options(args)
   members = common.number(options, "members")
   first = common.number(options, "first", 1)
   max_points = common.number(options, "max_points", 1000)
   payers = common.list(options.payers)
   if #payers == 0 then
      error("missing argument payers=A,B,...")
   end
   common.seed(options)
end

function request()
   local body = string.format('{"payer": "%s", "points": %d}',
                              payers[math.random(1, #payers)], math.random(1, max_points))
   local member = first + math.random(0, members - 1)
   return wrk.format("POST", "/points/" .. member .. "/add", common.JSON, body)
end
