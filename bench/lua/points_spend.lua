-- POST /points/{uid}/spend of 1 to max_points points by a random member of
-- first..first+members-1 (JSON); members=1 spends from one member only.
-- Arguments: members=N [first=1] [max_points=10] [seed=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local members, first, max_points

function init(args)
   local options = common.options(args)
   members = common.number(options, "members")
   first = common.number(options, "first", 1)
   max_points = common.number(options, "max_points", 10)
   common.seed(options)
end

function request()
   local body = string.format('{"points": %d}', math.random(1, max_points))
   local member = first + math.random(0, members - 1)
   return wrk.format("POST", "/points/" .. member .. "/spend", common.JSON, body)
end
