--[[ seed_product.lua — start-up seeding of one product from the database (RedisStockStore::Seed,
SETNX semantics): create the product unless Redis has it, with its remaining units and the
buyer records of what the database says was sold; an existing product is left alone.
One product's hash slot only (keys item:{<id>}:..., see reserve_stock.lua); the product index
items:index is written by the caller, a separate idempotent ZADD.

KEYS[1]  item:{<id>}:meta      hash (see put_product.lua); restock_epoch starts at 0, version at
                               the database row's version, so that the next admin change gets a
                               version newer than the row's (the row is kept only if not older)
KEYS[2]  item:{<id>}:stock     string: remaining units
KEYS[3]  item:{<id>}:sold_out  the L2 flag: deleted
KEYS[4]  item:{<id>}:buyers    hash: "<user>" -> units held, "<user>:o" -> latest order id
KEYS[5]  item:{<id>}:buyers:seed:<token>  a staging hash of buyer fields written beforehand in
                               chunks (for a product with more buyers than one command should
                               carry), renamed into KEYS[4] when ARGV[7] is "1"; dropped either way

ARGV[1]  price   ARGV[2]  stock   ARGV[3]  limit_per_user   ARGV[4]  starts_at
ARGV[5]  ends_at ("" = open)      ARGV[6]  remaining        ARGV[7]  staged 0/1
ARGV[8]  version (the database row's)
ARGV[9]  payment_window_s (seconds, "" = no payment step)
ARGV[10] wr_admit_per_s   ARGV[11] wr_pass_ttl_s (the waiting room, as in put_product.lua;
         both "" = none)
ARGV[12..] (user, units, latest order id) triples

Returns 1 created, 0 kept. Error reply "FLASHSALE bad waiting_room" (nothing changed) for a half
alone or a value out of range, as put_product.lua.
]]

local function in_range(v, max)
  return string.match(v, '^[1-9]%d*$') ~= nil and #v <= #tostring(max) and tonumber(v) <= max
end
if not ((ARGV[10] == '' and ARGV[11] == '') or (in_range(ARGV[10], 1000000) and
                                                in_range(ARGV[11], 86400))) then
  return redis.error_reply('FLASHSALE bad waiting_room ' .. ARGV[10] .. ' ' .. ARGV[11])
end

if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[7] == '1' then redis.call('DEL', KEYS[5]) end
  return 0
end
redis.call('DEL', KEYS[3], KEYS[4])
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('RENAME', KEYS[5], KEYS[4])
  redis.call('PERSIST', KEYS[4])
end
for i = 12, #ARGV, 3 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1], ARGV[i] .. ':o', ARGV[i + 2])
end
redis.call('SET', KEYS[2], ARGV[6])
redis.call('HSET', KEYS[1], 'price', ARGV[1], 'stock', ARGV[2], 'limit_per_user', ARGV[3],
           'starts_at', ARGV[4], 'ends_at', ARGV[5], 'restock_epoch', '0', 'version', ARGV[8],
           'payment_window_s', ARGV[9], 'wr_admit_per_s', ARGV[10], 'wr_pass_ttl_s', ARGV[11])
return 1
