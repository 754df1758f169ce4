--[[ release_stock.lua — gives back one reservation (SPEC §1, definite hand-off failure, and
audit --repair). Same semantics as MemoryStockStore::Release: units back to stock (capped at the
product's stock), the user's record reduced (deleted at 0 units, latest order id with it), the
L2 flag cleared, the restock epoch incremented; order:<order_id> marked released (its "R"
becomes "X", TTL kept: GET /orders/{id} no longer finds it), the order taken out of the
product's in-flight index. Keys use the hash-tagged form item:{<id>}:... always (see
reserve_stock.lua).

Idempotent per order id for as long as order:<order_id> lives, and no longer: a release after
the marker expired is done again from ARGV (checked only against the user's units). That is
why reserve_stock.lua gives the marker a TTL of order_ttl + payment_window_s: every caller
(a refused hand-off, audit --repair, the closer returning the units of an expired, cancelled
or stranded order, and its retries after a crash) comes within that time.

KEYS[1]  item:{<id>}:meta      hash: stock (total ever sellable), restock_epoch (HINCRBY here)
KEYS[2]  item:{<id>}:stock     string: remaining units
KEYS[3]  item:{<id>}:sold_out  the L2 flag: deleted
KEYS[4]  item:{<id>}:buyers    hash: "<user>" -> units held, "<user>:o" -> latest order id
                               (both deleted when the user holds no units any more)
KEYS[5]  order:<order_id>      the order/marker written by reserve_stock.lua
                               ("R|<user>|<product>|<amount>|<price>|<took_last_unit>|
                               <created_at>[|<pay_by>]", 7 or 8 fields): "X|..." here
KEYS[6]  item:{<id>}:inflight  the product's in-flight index (see reserve_stock.lua): ZREM of
                               ARGV[4]

ARGV[1]  user id
ARGV[2]  amount reserved: canonical decimal integer, 1 .. 9223372036854775807
ARGV[3]  TTL in seconds of the "X" marker written when the order key had expired
ARGV[4]  order id

Returns {code, restock_epoch}:
  "RELEASED"          units given back; restock_epoch is the new epoch
  "ALREADY_RELEASED"  an earlier call released this order id: nothing changed (that call took
                      it out of the in-flight index); current epoch
Error replies (nothing changed): "FLASHSALE bad ..." for malformed arguments,
"FLASHSALE unknown product", "FLASHSALE release without a matching reservation" (the marker
records another user/amount, or the user holds fewer units than amount). When the marker has
expired the release is still done from ARGV, checked against the user's units.
]]

local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function sub(a, b)  -- a - b, canonical decimal strings, a >= b
  local out, borrow, j = {}, 0, #b
  for i = #a, 1, -1 do
    local d = string.byte(a, i) - 48 - borrow
    if j >= 1 then d = d - (string.byte(b, j) - 48) end
    if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
    out[i] = d
    j = j - 1
  end
  local s = (table.concat(out):gsub('^0+', ''))
  return s == '' and '0' or s
end

local function canonical(s)
  if not s or s == '' or not string.match(s, '^%d+$') then return '0' end
  s = (s:gsub('^0+', ''))
  return s == '' and '0' or s
end

local user, amount = ARGV[1], ARGV[2]
if not string.match(amount, '^[1-9]%d*$') or cmp(amount, '9223372036854775807') > 0 then
  return redis.error_reply('FLASHSALE bad amount ' .. amount)
end
local marker_ttl = tonumber(ARGV[3])
if not marker_ttl or marker_ttl <= 0 then return redis.error_reply('FLASHSALE bad marker ttl') end

if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('FLASHSALE unknown product') end

local marker = redis.call('GET', KEYS[5])
if marker and string.sub(marker, 1, 1) == 'X' then
  return {'ALREADY_RELEASED', tonumber(redis.call('HGET', KEYS[1], 'restock_epoch')) or 0}
end
if marker then
  local _, _, muser, mamount = string.find(marker, '^R|([^|]*)|[^|]*|([^|]*)|')
  if muser ~= user or mamount ~= amount then
    return redis.error_reply('FLASHSALE release without a matching reservation')
  end
end
local held = canonical(redis.call('HGET', KEYS[4], user))
if cmp(held, amount) < 0 then
  return redis.error_reply('FLASHSALE release without a matching reservation')
end

if held == amount then
  redis.call('HDEL', KEYS[4], user, user .. ':o')
else
  redis.call('HINCRBY', KEYS[4], user, '-' .. amount)
end

-- remaining = min(remaining + amount, stock), without overflowing.
local stock = canonical(redis.call('HGET', KEYS[1], 'stock'))
local left = canonical(redis.call('GET', KEYS[2]))
if cmp(left, stock) >= 0 or cmp(amount, sub(stock, left)) >= 0 then
  redis.call('SET', KEYS[2], stock)
else
  redis.call('INCRBY', KEYS[2], amount)
end

redis.call('DEL', KEYS[3])
local epoch = redis.call('HINCRBY', KEYS[1], 'restock_epoch', 1)
if marker then
  redis.call('SET', KEYS[5], 'X' .. string.sub(marker, 2), 'KEEPTTL')
else
  redis.call('SET', KEYS[5], 'X|' .. user .. '||' .. amount .. '||||', 'EX', marker_ttl)
end
redis.call('ZREM', KEYS[6], ARGV[4])
return {'RELEASED', epoch}
