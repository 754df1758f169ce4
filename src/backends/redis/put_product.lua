--[[ put_product.lua — PUT /admin/products/{id} in distributed mode (SPEC §4): create or replace
a product's metadata and remaining units in one step, and decide the change's version.

Same semantics as MemoryStockStore::Put: stock is the total ever sellable, so remaining becomes
stock - sold (sold = the stored stock - remaining); CONFLICT when stock < sold (nothing written).
Units remaining clear the L2 flag; a replaced product that has units again gets a new restock
epoch (every instance's L1 forgets its sold-out flag). Keys use the hash-tagged form
item:{<id>}:... always (see reserve_stock.lua): this script touches one product's hash slot only;
the product index items:index is written by the caller, a separate idempotent ZADD.

The version: every admin change of a product (this script and restock_product.lua) is one
decision made here, atomically, and numbered by HINCRBY version 1. The caller then writes the
database row with that version, and the database keeps a row only if its version is not older
(UpsertProduct: UPDATE ... WHERE version <= new version): racing persists converge to the row of
the last decision, which is what Redis holds.

KEYS[1]  item:{<id>}:meta      hash: price, stock, limit_per_user, starts_at, ends_at ("" = open),
                               payment_window_s ("" = no payment step), wr_admit_per_s and
                               wr_pass_ttl_s (the waiting room; "" or absent = none, both set or
                               both ""), restock_epoch, version (absent = 0)
KEYS[2]  item:{<id>}:stock     string: remaining units
KEYS[3]  item:{<id>}:sold_out  the L2 flag: deleted when units remain

ARGV[1]  price (cents)         ARGV[2]  stock          ARGV[3]  limit_per_user
ARGV[4]  starts_at             ARGV[5]  ends_at (ms since epoch, "" = open)
ARGV[6]  payment_window_s: seconds, 1 .. 604800 (7 days), or "" = no payment step
ARGV[7]  wr_admit_per_s: 1 .. 1000000      ARGV[8]  wr_pass_ttl_s: 1 .. 86400 (seconds)
         (both "" = no waiting room; WaitingRoom's kMaxAdmitPerS / kMaxPassTtlS)

Returns {"OK", created 0/1, reopened 0/1, restock_epoch, version} or {"CONFLICT", sold}.
Error replies (nothing changed): "FLASHSALE bad stock" for a stock that is not a decimal integer,
"FLASHSALE bad payment_window_s" for a window outside 1 .. 604800 (reserve_stock.lua computes
pay_by in doubles, exact for such windows), "FLASHSALE bad waiting_room" for a half alone or a
value out of its range.
]]

local stock = tonumber(ARGV[2])
if not stock or not string.match(ARGV[2], '^%d+$') then
  return redis.error_reply('FLASHSALE bad stock ' .. ARGV[2])
end
local window = ARGV[6]
if window ~= '' and (not string.match(window, '^[1-9]%d*$') or #window > 6 or
                     tonumber(window) > 604800) then
  return redis.error_reply('FLASHSALE bad payment_window_s ' .. window)
end
local function in_range(v, max)
  return string.match(v, '^[1-9]%d*$') ~= nil and #v <= #tostring(max) and tonumber(v) <= max
end
local wr_admit, wr_ttl = ARGV[7], ARGV[8]
if not ((wr_admit == '' and wr_ttl == '') or (in_range(wr_admit, 1000000) and
                                              in_range(wr_ttl, 86400))) then
  return redis.error_reply('FLASHSALE bad waiting_room ' .. wr_admit .. ' ' .. wr_ttl)
end
local exists = redis.call('EXISTS', KEYS[1]) == 1
local sold = 0
if exists then
  sold = tonumber(redis.call('HGET', KEYS[1], 'stock') or '0') -
         tonumber(redis.call('GET', KEYS[2]) or '0')
end
if stock < sold then return {'CONFLICT', sold} end
redis.call('HSET', KEYS[1], 'price', ARGV[1], 'stock', ARGV[2], 'limit_per_user', ARGV[3],
           'starts_at', ARGV[4], 'ends_at', ARGV[5], 'payment_window_s', window,
           'wr_admit_per_s', wr_admit, 'wr_pass_ttl_s', wr_ttl)
local remaining = stock - sold
redis.call('SET', KEYS[2], string.format('%d', remaining))
local reopened = 0
if remaining > 0 then
  redis.call('DEL', KEYS[3])
  if exists then
    reopened = 1
    redis.call('HINCRBY', KEYS[1], 'restock_epoch', 1)
  end
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
return {'OK', exists and 0 or 1, reopened, redis.call('HGET', KEYS[1], 'restock_epoch') or '0',
        version}
