--[[ queue_frontier.lua — the first half of queue_advance.lua and of queue_join.lua, not a
script on its own: the build (CMakeLists.txt's Lua list, "queue_frontier.lua+queue_join.lua")
and the tests put it in front of each, because a script cannot call another and the frontier
rule must be written once.

It reads the product and its waiting room, answers UNKNOWN_PRODUCT / NO_WAITING_ROOM (nothing
else read or written), and moves the admission frontier to `now` in local variables (the
second half writes it back). The rule is AdvanceFrontier() of src/core/admission.cpp, computed
in the same doubles in the same order, so that every instance, and the embedded store, admit
the same positions at the same times:
  from = max(as_of, starts_at or 0)
  if now > from and admit_per_s > 0 and not sold out:
    admitted = min(admitted + admit_per_s * (now - from) / 1000, joined)
  as_of = max(as_of, now); newly_admitted = floor(admitted after) - floor(admitted before)
Nothing is admitted before starts_at, never past the positions handed out (a quiet queue banks
no admissions), nothing while the product is sold out (and that time is not banked either:
as_of still moves). The C++ tests compare both scripts with AdvanceFrontier on a table of cases.

All keys in the product's hash slot:
KEYS[1]  item:{<id>}:meta      hash (see reserve_stock.lua): price (absent = no product),
                               starts_at (ms; absent or "" = open), wr_admit_per_s and
                               wr_pass_ttl_s (absent or "" = no waiting room)
KEYS[2]  item:{<id>}:stock     string: remaining units (absent = 0)
KEYS[3]  item:{<id>}:sold_out  string: the L2 flag
KEYS[4]  item:{<id>}:queue     hash: joined (positions handed out: 1 .. joined), admitted (the
                               frontier, a double as "%.17g": reads back exactly), as_of (ms,
                               when the frontier was last moved), generation (decimal uint64,
                               set once by the first join)
ARGV[1]  now, ms since epoch

Both scripts reply {code, position, joined, admitted, as_of, generation, sold_out,
newly_admitted, starts_at, admit_per_s, pass_ttl_s}, the state as after the call:
  admitted       the frontier as "%.17g"; generation and starts_at as strings ("" = none)
  sold_out       1 when the L2 flag is set or no unit is left
  UNKNOWN_PRODUCT / NO_WAITING_ROOM: position 0, the rest 0 / "0" / "".
Error reply "FLASHSALE bad ..." for a malformed argument (nothing changed).
]]

local now = tonumber(ARGV[1])
if not now then return redis.error_reply('FLASHSALE bad now ' .. tostring(ARGV[1])) end

local meta = redis.call('HMGET', KEYS[1], 'price', 'starts_at', 'wr_admit_per_s', 'wr_pass_ttl_s')
if not meta[1] then return {'UNKNOWN_PRODUCT', 0, 0, '0', 0, '', 0, 0, '', 0, 0} end
if not meta[3] or meta[3] == '' then return {'NO_WAITING_ROOM', 0, 0, '0', 0, '', 0, 0, '', 0, 0} end
local rate = tonumber(meta[3]) or 0
local starts_at = tonumber(meta[2])  -- nil: open (absent or "")

local q = redis.call('HMGET', KEYS[4], 'joined', 'admitted', 'as_of', 'generation')
local joined, admitted, as_of = tonumber(q[1]) or 0, tonumber(q[2]) or 0, tonumber(q[3]) or 0
local strings = redis.call('MGET', KEYS[3], KEYS[2])
local left = strings[2]
local sold_out = strings[1] ~= false or not left or left == '' or left == '0' or
                 string.sub(left, 1, 1) == '-'

-- AdvanceFrontier (src/core/admission.cpp).
local from = math.max(as_of, starts_at or 0)
local before = math.floor(admitted)
if now > from and rate > 0 and not sold_out then
  admitted = math.min(admitted + rate * (now - from) / 1000.0, joined)
end
local moved = now > as_of  -- the frontier's fields need writing back
as_of = math.max(as_of, now)
local newly = math.floor(admitted) - before
local admitted_text, as_of_text = string.format('%.17g', admitted), string.format('%d', as_of)

-- The reply of both scripts; `generation` is the queue's ("" before the first join).
local function reply(code, position, generation)
  return {code, position, joined, admitted_text, as_of, generation, sold_out and 1 or 0, newly,
          meta[2] or '', rate, tonumber(meta[4]) or 0}
end

-- ---- end of queue_frontier.lua ----
