--[[ claim_idempotency_key.lua — RedisIdempotencyStore::Claim (SPEC §4): the first request with
an Idempotency-Key owns it; every other one reads the key's value back in the same round trip.

One `SET ... NX GET PX` (Redis >= 7.0): the key is created only if absent, with the TTL; the value
already there comes back unchanged (its TTL too). The script adds one read to it: when this call
created the key, whether accepted answers were let go over the cap (then the caller asks the order
record before it reserves, see redis_idempotency_store.hpp).

KEYS[1]  idem:<Idempotency-Key>        string: "P|<user>|<product>|<amount>|<order id>|<at ms>"
                                       (pending) or "F|<user>|<product>|<amount>|<OUTCOME>|<s>|
                                       <order id>" (finished); written here only when absent
KEYS[2]  idem-index:accepted-let-go    string "1" while accepted answers were let go (read only)

ARGV[1]  the pending value "P|<user>|<product>|<amount>|<order id>|<now ms>"
ARGV[2]  TTL of KEYS[1] in ms

Returns the value already in KEYS[1] (a string: nothing was written), or, when this call created
KEYS[1], an integer: 1 if KEYS[2] exists (ask the order record), else 0.

Hash slots: KEYS[1] and KEYS[2] are in different slots (no hash tag), so this script is NOT
single-slot: on a Redis Cluster the flag would have to be read by a separate command (or both keys
given one hash tag, which puts every Idempotency-Key on one node).
]]

local v = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])
if v then return v end
return redis.call('EXISTS', KEYS[2])
