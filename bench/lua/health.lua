-- GET /health: the service's cheapest request, no database involved.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local path = "/health"

function init(args)
   local options = common.options(args)
   path = options.path or path
end

function request()
   return wrk.format("GET", path)
end
