--[[ queue_join.lua — joins a user to a product's waiting room (distributed mode;
RedisWaitingRoom::Join). Positions are handed out by this one script in the product's hash
slot, so every instance sharing the Redis hands out 1, 2, 3, ... with no gap and no repeat.

Runs after queue_frontier.lua (prepended by the build; its header gives the keys KEYS[1..4],
ARGV[1] = now and the reply), which answered UNKNOWN_PRODUCT / NO_WAITING_ROOM already and
moved the frontier to `now` first: a join after a quiet spell does not find admissions banked
for it. Then:
  1. a user who holds a position gets it back (ALREADY_JOINED: one place per user and product);
  2. an address holding max_places places already is refused (ADDRESS_FULL) when max_places > 0;
  3. else position = joined + 1 (JOINED); the address's count goes up by one; the first join
     sets the queue's generation (never changed after).
Joining before starts_at is allowed (the queue forms before the sale), and so is joining a
sold-out product (the reply says sold_out; the caller decides what to tell).

KEYS[5]  item:{<id>}:queue:users      hash: user id -> position
KEYS[6]  item:{<id>}:queue:addresses  hash: address key -> places it holds
ARGV[2]  user id      ARGV[3]  address key (any bytes)
ARGV[4]  max_places per address, 0 = no cap
ARGV[5]  generation to set if the queue has none yet: decimal uint64, random (chosen by the
         caller: Redis' Lua random generator is deterministic)

Replies code "JOINED", "ALREADY_JOINED" or "ADDRESS_FULL", position = the user's position
(0 for ADDRESS_FULL); the state as after the call (joined counts a new position).
]]

local user, address = ARGV[2], ARGV[3]
local max_places, generation = tonumber(ARGV[4]), ARGV[5]
if not max_places or max_places < 0 or not string.match(generation or '', '^%d+$') then
  return redis.error_reply('FLASHSALE bad max_places/generation arguments')
end

local held = redis.call('HGET', KEYS[5], user)
local full = false
if not held and max_places > 0 then
  full = (tonumber(redis.call('HGET', KEYS[6], address)) or 0) >= max_places
end
if held or full then
  if moved then redis.call('HSET', KEYS[4], 'admitted', admitted_text, 'as_of', as_of_text) end
  if held then return reply('ALREADY_JOINED', tonumber(held), q[4] or '') end
  return reply('ADDRESS_FULL', 0, q[4] or '')
end

joined = joined + 1
redis.call('HSET', KEYS[4], 'joined', string.format('%d', joined), 'admitted', admitted_text,
           'as_of', as_of_text)
if not q[4] then redis.call('HSETNX', KEYS[4], 'generation', generation) end
redis.call('HSET', KEYS[5], user, string.format('%d', joined))
redis.call('HINCRBY', KEYS[6], address, 1)
return reply('JOINED', joined, q[4] or generation)
