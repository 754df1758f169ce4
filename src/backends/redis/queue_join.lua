--[[ queue_join.lua — joins a user to a product's waiting room (distributed mode;
RedisWaitingRoom::Join). Positions are handed out by this one script in the product's hash
slot, so every instance sharing the Redis hands out 1, 2, 3, ... with no gap and no repeat.

In this order:
  1. the product (UNKNOWN_PRODUCT) and its waiting room (NO_WAITING_ROOM), from the meta hash;
  2. the frontier is advanced to `now` first (AdvanceFrontier() of src/core/admission.cpp; the
     same function as in queue_advance.lua, whose header states it): a join after a quiet
     spell does not find admissions banked for it;
  3. a user who holds a position gets it back (ALREADY_JOINED: one place per user and product);
  4. an address holding max_places places already is refused (ADDRESS_FULL) when max_places > 0;
  5. else position = joined + 1 (JOINED); the address's count goes up by one; the first join
     sets the queue's generation (HSETNX: never changed after).
Joining before starts_at is allowed (the queue forms before the sale), and so is joining a
sold-out product (the reply says sold_out; the caller decides what to tell).

KEYS[1..4] as queue_advance.lua (meta, stock, sold_out, queue), and:
KEYS[5]  item:{<id>}:queue:users      hash: user id -> position
KEYS[6]  item:{<id>}:queue:addresses  hash: address key -> places it holds
ARGV[1]  user id      ARGV[2]  address key (any bytes)
ARGV[3]  max_places per address, 0 = no cap
ARGV[4]  now, ms since epoch
ARGV[5]  generation to set if the queue has none yet: decimal uint64, random (chosen by the
         caller: Redis' Lua random generator is deterministic)

Returns queue_advance.lua's reply with code "JOINED", "ALREADY_JOINED", "ADDRESS_FULL",
"UNKNOWN_PRODUCT" or "NO_WAITING_ROOM", and position = the user's position (JOINED,
ALREADY_JOINED; 0 otherwise). The state is as after this call (joined counts a new position).
Error reply "FLASHSALE bad ..." for malformed arguments (nothing changed).
]]

local user, address = ARGV[1], ARGV[2]
local max_places, now, generation = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if not now or not max_places or max_places < 0 or not string.match(generation, '^%d+$') then
  return redis.error_reply('FLASHSALE bad now/max_places/generation arguments')
end

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

-- AdvanceFrontier (src/core/admission.cpp); identical in queue_advance.lua.
local from = math.max(as_of, starts_at or 0)
local before = math.floor(admitted)
if now > from and rate > 0 and not sold_out then
  admitted = math.min(admitted + rate * (now - from) / 1000.0, joined)
end
local moved = now > as_of
as_of = math.max(as_of, now)
local newly = math.floor(admitted) - before

local admitted_text, as_of_text = string.format('%.17g', admitted), string.format('%d', as_of)
local function reply(code, position)
  return {code, position, joined, admitted_text, as_of, q[4] or generation,
          sold_out and 1 or 0, newly, meta[2] or '', rate, tonumber(meta[4]) or 0}
end

local held = redis.call('HGET', KEYS[5], user)
local full = false
if not held and max_places > 0 then
  full = (tonumber(redis.call('HGET', KEYS[6], address)) or 0) >= max_places
end
if held or full then
  if moved then redis.call('HSET', KEYS[4], 'admitted', admitted_text, 'as_of', as_of_text) end
  if held then return reply('ALREADY_JOINED', tonumber(held)) end
  return reply('ADDRESS_FULL', 0)
end

joined = joined + 1
redis.call('HSET', KEYS[4], 'joined', string.format('%d', joined), 'admitted', admitted_text, 'as_of', as_of_text)
if not q[4] then redis.call('HSETNX', KEYS[4], 'generation', generation) end
redis.call('HSET', KEYS[5], user, string.format('%d', joined))
redis.call('HINCRBY', KEYS[6], address, 1)
return reply('JOINED', joined)
