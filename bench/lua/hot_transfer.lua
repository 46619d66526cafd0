-- PUT /transfer from one hot sender to a random user of 1..accounts.
-- Arguments: accounts=N hot=ID [max_cents=100] [seed=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local accounts, hot, max_cents

function init(args)
   local options = common.options(args)
   accounts = common.number(options, "accounts")
   hot = common.number(options, "hot")
   max_cents = common.number(options, "max_cents", 100)
   common.seed(options)
end

function request()
   local body = string.format("sender_id=%d&receiver_id=%d&balance=%s",
                              hot, math.random(1, accounts), common.amount(max_cents))
   return wrk.format("PUT", "/transfer", common.FORM, body)
end
