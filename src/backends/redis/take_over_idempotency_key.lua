--[[ take_over_idempotency_key.lua — RedisIdempotencyStore::TakeOver: a retry takes over a pending
Idempotency-Key whose owner did not finish within pending_ttl_ms (its Finish was lost, or it
crashed). A compare-and-set, so that of several racing retries exactly one takes the key; the
others see the new value and poll it.

KEYS[1]  idem:<Idempotency-Key>  string (see claim_idempotency_key.lua)

ARGV[1]  the stale pending value the caller read ("P|...")
ARGV[2]  the caller's pending value "P|<user>|<product>|<amount>|<order id>|<now ms>"

Returns 1 when KEYS[1] held exactly ARGV[1] and now holds ARGV[2] (its TTL kept: KEEPTTL, so a
takeover never extends the key's life), 0 when it held anything else or nothing (nothing written).

Hash slots: one key: single-slot, works unchanged on a Redis Cluster.
]]

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
