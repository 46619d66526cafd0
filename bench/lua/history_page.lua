-- GET /history?uid={uid}[&after_id={id}][&limit={limit}]: a user's history by id, a page
-- of it or all of it. The user is a random one of first..first+accounts-1 (first: 1 unless
-- given), or always uid= when given; after_id, when first_id= and last_id= are given, is a
-- random id in that range.
-- Arguments: accounts=N [first=N] | uid=N, [limit=N] [first_id=N last_id=N] [seed=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local accounts, first, uid, limit, first_id, last_id

function init(args)
   local options = common.options(args)
   uid = common.number(options, "uid", 0)
   if uid == 0 then
      accounts = common.number(options, "accounts")
      first = common.number(options, "first", 1)
   end
   limit = common.number(options, "limit", 0)
   first_id = common.number(options, "first_id", 0)
   last_id = common.number(options, "last_id", 0)
   common.seed(options)
end

function request()
   local path = "/history?uid=" .. (uid ~= 0 and uid or first + math.random(0, accounts - 1))
   if last_id > 0 then
      path = path .. "&after_id=" .. math.random(first_id, last_id)
   end
   if limit > 0 then
      path = path .. "&limit=" .. limit
   end
   return wrk.format("GET", path)
end
