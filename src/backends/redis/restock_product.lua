--[[ restock_product.lua — POST /admin/products/{id}/restock in distributed mode (SPEC §4): add
units to a product's stock and remaining in one step, and decide the change's version.

Same semantics as MemoryStockStore::Restock: stock and remaining both grow by the amount; units
remaining clear the L2 flag and give the product a new restock epoch. The version is numbered as
in put_product.lua (HINCRBY version 1), and the product as it now is comes back in the reply, so
that the caller persists exactly the row Redis holds at that version (not a row it read before:
two restocks of +a racing both read S, and would persist S+a while Redis ends at S+2a).
One product's hash slot only (keys item:{<id>}:..., see reserve_stock.lua).

KEYS[1]  item:{<id>}:meta      hash: price, stock, limit_per_user, starts_at, ends_at,
                               payment_window_s, wr_admit_per_s, wr_pass_ttl_s, restock_epoch,
                               version (see put_product.lua)
KEYS[2]  item:{<id>}:stock     string: remaining units
KEYS[3]  item:{<id>}:sold_out  the L2 flag: deleted when units remain

ARGV[1]  amount: decimal integer > 0

Returns {"OK", reopened 0/1, restock_epoch, version, price, stock, limit_per_user, starts_at,
ends_at, payment_window_s, wr_admit_per_s, wr_pass_ttl_s} (starts_at/ends_at "" = open,
payment_window_s and the wr_ pair "" = none: the persisted row keeps the product's window and
waiting room), {"NOT_FOUND"} for an unknown product, or {"OVERFLOW"}
when stock + amount would exceed 2^63 - 1 (nothing changed in either case).
Error reply "FLASHSALE bad amount" for a malformed amount (nothing changed).
]]

if not string.match(ARGV[1], '^[1-9]%d*$') then
  return redis.error_reply('FLASHSALE bad amount ' .. ARGV[1])
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
-- First write, and Redis' own 64-bit check: an overflow refuses it before anything changed.
-- remaining <= stock, so the INCRBY below cannot overflow once this one did not.
local grown = redis.pcall('HINCRBY', KEYS[1], 'stock', ARGV[1])
if type(grown) == 'table' and grown.err then return {'OVERFLOW'} end
local remaining = redis.call('INCRBY', KEYS[2], ARGV[1])
local reopened = 0
if remaining > 0 then
  redis.call('DEL', KEYS[3])
  reopened = 1
  redis.call('HINCRBY', KEYS[1], 'restock_epoch', 1)
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
local meta = redis.call('HMGET', KEYS[1], 'restock_epoch', 'price', 'stock', 'limit_per_user',
                        'starts_at', 'ends_at', 'payment_window_s', 'wr_admit_per_s',
                        'wr_pass_ttl_s')
return {'OK', reopened, meta[1] or '0', version, meta[2] or '0', meta[3], meta[4] or '1',
        meta[5] or '', meta[6] or '', meta[7] or '', meta[8] or '', meta[9] or ''}
