-- PUT /transfer between two random users of 1..accounts.
-- Arguments: accounts=N [max_cents=100] [seed=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local accounts, max_cents

function init(args)
   local options = common.options(args)
   accounts = common.number(options, "accounts")
   max_cents = common.number(options, "max_cents", 100)
   common.seed(options)
end

function request()
   local sender = math.random(1, accounts)
   local receiver = common.other_user(accounts, sender)
   local body = string.format("sender_id=%d&receiver_id=%d&balance=%s",
                              sender, receiver, common.amount(max_cents))
   return wrk.format("PUT", "/transfer", common.FORM, body)
end
