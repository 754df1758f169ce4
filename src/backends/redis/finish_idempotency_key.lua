--[[ finish_idempotency_key.lua — RedisIdempotencyStore::Finish (remember = true): store the first
answer of a pending Idempotency-Key, index it, and keep the store under its cap (Redis runs without
eviction, so the store enforces its own bound; see redis_idempotency_store.hpp).

Steps, in one atomic call:
  1. KEYS[1] must be pending ("P|..."); else nothing changes and the reply is 0 (the key expired,
     was deleted, or another owner already finished it).
  2. "P|<user>|<product>|<amount>|..." becomes "F|<user>|<product>|<amount>" .. ARGV[1], with a
     fresh TTL ARGV[2] (24 h from the answer).
  3. The key goes into its index, score = now: KEYS[3] if accepted (ARGV[3] = "1"), else KEYS[2].
  4. Both indexes drop entries older than now - TTL (their keys have expired).
  5. While both indexes together hold more than ARGV[5] keys, the oldest are popped: refusals
     first, then accepted answers. A popped key is deleted only if it is still finished ("F|"):
     a key claimed again since it expired is pending and is left alone. When accepted answers
     were popped, KEYS[4] is set (TTL ARGV[2]): claims then ask the order record.
Invariant: every finished key this script wrote is in exactly one index until it expires or is
popped; pending keys are never indexed (they are as many as the requests in flight).

KEYS[1]  idem:<Idempotency-Key>        string: "P|..." -> "F|<user>|<product>|<amount>|
                                       <OUTCOME>|<s>|<order id>"
KEYS[2]  idem-index:refused            sorted set: finished refusals, score = finish time ms
KEYS[3]  idem-index:accepted           sorted set: finished ACCEPTED answers, same scores
KEYS[4]  idem-index:accepted-let-go    string "1", TTL ARGV[2]: accepted answers were let go

ARGV[1]  "|<OUTCOME>|<s>|<order id>": the outcome's name ("SOLD_OUT"), "OK" or "UNKNOWN", the
         order id ("" when none)
ARGV[2]  TTL of a finished key in ms (also the index horizon)
ARGV[3]  "1" if the answer is ACCEPTED, else "0"
ARGV[4]  now, ms since epoch
ARGV[5]  max keys (both indexes together)
ARGV[6]  the Idempotency-Key itself (the index member)
ARGV[7]  the key prefix "idem:" (popped members are deleted as ARGV[7] .. member)

Returns 1 when the answer was stored, 0 when KEYS[1] was not pending.

Hash slots: NOT single-slot, and not Cluster-ready. KEYS[1..4] are in different slots, and the
keys deleted in step 5 are built from ARGV[7] and the index members, not passed in KEYS: Redis
allows that on a standalone server only. On a Redis Cluster the cap would have to be enforced
apart (e.g. per-slot indexes with hash-tagged keys, or trimming by separate commands).
]]

local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 2) ~= 'P|' then return 0 end
local fp = string.match(v, '^P|([^|]*|[^|]*|[^|]*)')
redis.call('SET', KEYS[1], 'F|' .. fp .. ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', ARGV[3] == '1' and KEYS[3] or KEYS[2], ARGV[4], ARGV[6])
local horizon = tonumber(ARGV[4]) - tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', horizon)
local over = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[5])
-- Pops the n oldest members of `index`, deletes their keys if still finished; how many popped.
local function drop(index, n)
  local popped = redis.call('ZPOPMIN', index, n)
  for i = 1, #popped, 2 do
    local k = ARGV[7] .. popped[i]
    local kv = redis.call('GET', k)
    if kv and string.sub(kv, 1, 2) == 'F|' then redis.call('DEL', k) end
  end
  return #popped / 2
end
if over > 0 then over = over - drop(KEYS[2], over) end
if over > 0 then
  drop(KEYS[3], over)
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[2])
end
return 1
