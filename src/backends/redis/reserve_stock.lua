--[[ reserve_stock.lua — the atomic reservation step of distributed mode (SPEC §1).

Same semantics as MemoryStockStore::Reserve (src/backends/embedded/memory_stock_store.cpp):
checks in this order, the first that refuses decides the answer, and nothing but the L2 flag
is written unless the answer is RESERVED:
  unknown product -> (replay of this order id) -> waiting-room pass -> sale window
  -> L2 sold-out flag -> per-user limit -> stock -> reserve.

Key names. flashsale ALWAYS uses the hash-tagged form item:{<id>}:..., also on standalone Redis,
although SPEC §5 keeps the seed's item:<id>:stock naming unless Redis Cluster is configured:
every per-product key must be in one hash slot for one script to touch them all on a Cluster,
and using a single naming scheme everywhere means the same scripts, the same keys and the same
audit code in both set-ups, and no data migration when a deployment moves to a Cluster.

KEYS[1]  item:{<id>}:meta      hash: price (cents), stock (total ever sellable),
                               limit_per_user (default 1), starts_at, ends_at (ms since epoch;
                               absent or "" = open), restock_epoch (default 0),
                               payment_window_s (seconds to pay; absent or "" = no payment step),
                               wr_admit_per_s (the waiting room's rate; absent or "" = no
                               waiting room: only its presence is read here)
KEYS[2]  item:{<id>}:stock     string: remaining units (absent = 0)
KEYS[3]  item:{<id>}:sold_out  string "1", TTL 3600 s: the L2 flag
KEYS[4]  item:{<id>}:buyers    hash, two fields per buyer: "<user>" -> units held, and
                               "<user>:o" -> the user's latest order id for the product (one
                               hash, not two: one key lookup and one write per reservation)
KEYS[5]  order:<order_id>      string, TTL ARGV[6] + payment_window_s: the order while it is in
                               flight (GET /orders/{id} answers PENDING from it) AND the
                               per-order marker that makes this script and release_stock.lua
                               idempotent:
                 "R|<user>|<product>|<amount>|<price>|<took_last_unit>|<created_at>|<pay_by>"
                               reserved (pay_by "" when the product has no payment window;
                               markers written before the payment step have no "|<pay_by>" and
                               are read as "none" everywhere); the same with "X" in front of
                               the first "|" once released. One key per order, not two:
                               creating keys (and their expiry entries) is what this script
                               spends most of its time on. The TTL outlives the payment window
                               plus the retry horizon (ARGV[6]): the closer releases an
                               expired order's units with release_stock.lua, whose idempotency
                               lasts only as long as this marker.
                               NOTE: not in the product's slot; on a Redis Cluster it would
                               have to be written outside the script.
KEYS[6]  item:{<id>}:inflight  sorted set, score = created_at (ms), member = order id: the
                               reservations not known to have landed in the database, so that
                               stranded ones can be found without scanning the keyspace
                               (ZADD here; ZREM by release_stock.lua and, once the consumer has
                               stored the order, by RedisStockStore::ForgetLanded)

ARGV[1]  product id           ARGV[2]  user id
ARGV[3]  amount: canonical decimal integer, 1 .. 9223372036854775807
ARGV[4]  order id             ARGV[5]  now, ms since epoch
ARGV[6]  TTL of order:<order_id> in seconds (longer than audit --repair's grace period and
         the closer's retry horizon); the marker lives payment_window_s longer than that
ARGV[7]  "1" when the caller verified a waiting-room pass for this user and product
         (Reservation::pass_verified), else "0" (absent = "0"). The pass itself is checked by
         the instance (a signature, no lookup); this flag lets the script refuse a product
         with a waiting room that the instance does not know about (its catalog is stale).

Returns {code, price_cents, took_last_unit (0/1), latest_order_id or "", restock_epoch, pay_by}:
  "RESERVED"            units taken (or already taken by an earlier call with this order id:
                        same reply, nothing taken again, pay_by read back from the marker);
                        price_cents = unit price; took_last_unit = 1 when stock reached 0 (L2
                        is then set, TTL 3600 s); pay_by = now + payment_window_s * 1000 (ms),
                        0 when the product has no payment window
  "UNKNOWN_PRODUCT"     no meta hash
  "PASS_REQUIRED"       the product has a waiting room and ARGV[7] is not "1"
  "NOT_STARTED"         now < starts_at
  "ENDED"               now >= ends_at
  "SOLD_OUT"            L2 flag set, or no stock left (the flag is then set, TTL 3600 s)
  "LIMIT_EXCEEDED"      amount > limit_per_user - held; latest_order_id = the user's latest
                        order for the product ("" when none)
  "INSUFFICIENT_STOCK"  0 < remaining < amount
  "RELEASED"            this order id was reserved and then released: nothing taken
price_cents, took_last_unit and pay_by are 0 unless RESERVED.
Error reply "FLASHSALE bad ..." for malformed arguments (nothing changed).

Arithmetic: Lua numbers are doubles, so the quantity comparisons are done exactly on decimal
strings (amounts up to 2^63-1 never error and never overflow); all writes use Redis' own
64-bit DECRBY/HINCRBY. pay_by is exact as a double: now < 2^43 and windows are at most 7 days
(put_product.lua refuses longer ones), so the sum stays far below 2^53.
]]

local L2_TTL_S = 3600

-- Canonical non-negative decimal integers (no sign, no leading zeros) compared exactly.
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

-- a - b for canonical decimal strings with a >= b.
local function sub(a, b)
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

-- a + b for canonical decimal strings (the caller knows the sum fits in 2^63 - 1).
local function add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i >= 1 or j >= 1 or carry > 0 do
    local d = carry
    if i >= 1 then d = d + string.byte(a, i) - 48 end
    if j >= 1 then d = d + string.byte(b, j) - 48 end
    if d >= 10 then d = d - 10; carry = 1 else carry = 0 end
    table.insert(out, 1, d)
    i, j = i - 1, j - 1
  end
  return table.concat(out)
end

local function canonical(s)  -- nil/false/"" -> "0"; "-1" etc. (never written) -> "0"
  if not s or s == '' then return '0' end
  -- Fast path: what this script and Redis' INCRBY write is canonical already.
  local first = string.byte(s, 1)
  if first >= 49 and first <= 57 and not string.find(s, '%D') then return s end
  if not string.match(s, '^%d+$') then return '0' end
  s = (s:gsub('^0+', ''))
  return s == '' and '0' or s
end

local amount = ARGV[3]
if not string.match(amount, '^[1-9]%d*$') or cmp(amount, '9223372036854775807') > 0 then
  return redis.error_reply('FLASHSALE bad amount ' .. amount)
end
local now = tonumber(ARGV[5])
local order_ttl = tonumber(ARGV[6])
if not now or not order_ttl or order_ttl <= 0 then
  return redis.error_reply('FLASHSALE bad now/ttl arguments')
end
local user, order_id = ARGV[2], ARGV[4]

-- Cost: seven redis.call per reservation (each is a command lookup, an argument vector and
-- a key lookup inside Redis), the reads first, in two calls.
-- Every product has a price (Put and Seed always write it): no price, no product.
local meta = redis.call('HMGET', KEYS[1], 'price', 'limit_per_user', 'starts_at', 'ends_at',
                        'restock_epoch', 'payment_window_s', 'wr_admit_per_s')
if not meta[1] then return {'UNKNOWN_PRODUCT', 0, 0, '', 0, 0} end
local price = tonumber(meta[1]) or 0
local limit = meta[2] and canonical(meta[2]) or '1'
local starts_at, ends_at = tonumber(meta[3]), tonumber(meta[4])
local epoch = tonumber(meta[5]) or 0
local window = tonumber(meta[6])  -- nil: no payment step

-- The order marker, the L2 flag and the remaining units: one call.
local strings = redis.call('MGET', KEYS[5], KEYS[3], KEYS[2])
local marker, flagged = strings[1], strings[2]

-- Idempotency: an order id is reserved at most once.
if marker then
  if string.sub(marker, 1, 1) == 'X' then return {'RELEASED', 0, 0, '', epoch, 0} end
  -- 7 fields (written before the payment step) or 8 (the last is pay_by, "" = none).
  local _, _, mprice, mlast, mpay_by =
    string.find(marker, '^R|[^|]*|[^|]*|[^|]*|([^|]*)|([^|]*)|[^|]*|?([^|]*)$')
  return {'RESERVED', tonumber(mprice) or price, tonumber(mlast) or 0, '', epoch,
          tonumber(mpay_by) or 0}
end

-- The waiting room before everything else is told (README "Admission control": pass -> L1 ->
-- reservation), as MemoryStockStore does. After the replay above: a retry of a reservation
-- that was made gets its first answer.
local room = meta[7]
if room and room ~= '' and ARGV[7] ~= '1' then return {'PASS_REQUIRED', 0, 0, '', epoch, 0} end

if starts_at and now < starts_at then return {'NOT_STARTED', 0, 0, '', epoch, 0} end
if ends_at and now >= ends_at then return {'ENDED', 0, 0, '', epoch, 0} end

if flagged then return {'SOLD_OUT', 0, 0, '', epoch, 0} end

local held = canonical(redis.call('HGET', KEYS[4], user))
-- amount > limit - held, without computing held + amount. Below 10^15 doubles are
-- exact, so the common case compares numbers; the string arithmetic is the fallback.
local small = #amount < 16 and #limit < 16 and #held < 16
local over
if small then
  local a, l, h = tonumber(amount), tonumber(limit), tonumber(held)
  over = h >= l or a > l - h
else
  over = cmp(held, limit) >= 0 or cmp(amount, sub(limit, held)) > 0
end
if over then
  local latest = redis.call('HGET', KEYS[4], user .. ':o')
  return {'LIMIT_EXCEEDED', 0, 0, latest or '', epoch, 0}
end

local left = canonical(strings[3])
if left == '0' then
  redis.call('SET', KEYS[3], '1', 'EX', L2_TTL_S)
  return {'SOLD_OUT', 0, 0, '', epoch, 0}
end
if cmp(left, amount) < 0 then return {'INSUFFICIENT_STOCK', 0, 0, '', epoch, 0} end

-- Reserve. The last unit is sold too: the check above is left >= amount, not left > 0.
local remaining = redis.call('DECRBY', KEYS[2], amount)
-- held + amount <= limit <= 2^63 - 1: exact as a double below 10^15, else in decimal.
local now_held = small and string.format('%d', tonumber(held) + tonumber(amount)) or add(held, amount)
redis.call('HSET', KEYS[4], user, now_held, user .. ':o', order_id)
local took_last = 0
if remaining == 0 then
  redis.call('SET', KEYS[3], '1', 'EX', L2_TTL_S)
  took_last = 1
end
-- With a payment window the buyer has until pay_by, and the marker outlives it by order_ttl.
local pay_by, pay_by_field, marker_ttl = 0, '', order_ttl
if window then
  pay_by = now + window * 1000
  pay_by_field = string.format('%d', pay_by)
  marker_ttl = order_ttl + window
end
redis.call('SET', KEYS[5], 'R|' .. user .. '|' .. ARGV[1] .. '|' .. amount .. '|' .. meta[1] ..
           '|' .. took_last .. '|' .. ARGV[5] .. '|' .. pay_by_field, 'EX', marker_ttl)
redis.call('ZADD', KEYS[6], ARGV[5], order_id)
return {'RESERVED', price, took_last, '', epoch, pay_by}
