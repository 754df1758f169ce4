--[[ get_product.lua — one product as RedisStockStore::Get/List read it, in one round trip and
one consistent view (a reservation or an admin change never lands between the reads).
One product's hash slot only (keys item:{<id>}:..., see reserve_stock.lua).

KEYS[1]  item:{<id>}:meta      hash (see put_product.lua; payment_window_s, wr_admit_per_s and
                               wr_pass_ttl_s "" or absent = none)
KEYS[2]  item:{<id>}:stock     string: remaining units
KEYS[3]  item:{<id>}:sold_out  the L2 flag

Returns {HGETALL meta (empty for an unknown product), remaining or "", L2 flag set 0/1}.
]]

return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '',
        redis.call('EXISTS', KEYS[3])}
