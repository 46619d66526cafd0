-- GET /balance/{uid} for a random user.
-- Arguments: accounts=N [seed=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local accounts

function init(args)
   local options = common.options(args)
   accounts = common.number(options, "accounts")
   common.seed(options)
end

function request()
   return wrk.format("GET", "/balance/" .. math.random(1, accounts))
end
