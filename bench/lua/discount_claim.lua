-- GET /discounts/{brand}/code?user_id=U (the clean form; the admin key names
-- the user): every request a claimant not asked before, so every answer is a
-- new claim. Thread t of T asks first+t-1, first+t-1+T, ...; past the last
-- claimant it starts again, and the repeats (reads of a held code) show up as
-- more answers than claims.
-- Arguments: brand=N first=N count=N threads=N [seed=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local brand, first, count, threads, asked

function init(args)
   local options = common.options(args)
   brand = common.number(options, "brand")
   first = common.number(options, "first")
   count = common.number(options, "count")
   threads = common.number(options, "threads")
   asked = 0
end

function request()
   local index = ((thread_number or 1) - 1 + asked * threads) % count
   asked = asked + 1
   return wrk.format("GET", string.format("/discounts/%d/code?user_id=%d", brand, first + index))
end
