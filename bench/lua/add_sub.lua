-- PUT /balance/{uid}: a deposit or a withdrawal (half each) on a random user.
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
   local operation = "add"
   if math.random() < 0.5 then
      operation = "sub"
   end
   local body = string.format("operation=%s&balance=%s", operation, common.amount(max_cents))
   return wrk.format("PUT", "/balance/" .. math.random(1, accounts), common.FORM, body)
end
