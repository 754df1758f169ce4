-- wrk script: raw load on POST /purchase.
--
--   wrk -t2 -c64 -d10s --latency -s scripts/wrk/purchase.lua http://127.0.0.1:8000 -- [key=value ...]
--
-- Every setting can be given as a script argument (after "--") or as an environment
-- variable (WRK_<KEY>, upper case); arguments win.
--
--   pid=MIN-MAX     product ids drawn per request from this range (default 10000000-10009999)
--   products=MODE   uniform: every pid of the range equally likely  (default uniform)
--                   zipf:    pid_min + k - 1 with probability proportional to 1/k^zipf_s
--                            (rank k = 1 is pid_min, the hottest): a few products take most
--                            of the traffic, as in a real sale
--   zipf_s=S        exponent of products=zipf (> 0)                  (default 1.0)
--   users=MODE      distinct: every request gets a user id never used before in this run:
--                             user_base + counter * 1024 + thread_id (thread_id 1..1023)
--                   random:   uniform in 0..user_max                (default random)
--                   random63: uniform over 0 .. 2^63-1 (any int64 >= 0), written as the
--                             exact decimal integer (built from three 21-bit random limbs,
--                             never through a double): scattered ids as real buyers have;
--                             two requests share an id with negligible probability
--   user_max=N      upper bound for users=random                    (default 199)
--   user_base=N     offset for users=distinct; give each wrk run against the same server a
--                   different base if user ids must never repeat    (default 0)
--   amount=N        units per purchase                              (default 1)
--   count=MODE      none:   no response() hook at all (cheapest; wrk then only reports
--                           "Non-2xx or 3xx responses")
--                   http:   count responses per HTTP status code    (default)
--                   status: as http, plus the "status" field of the JSON body of every
--                           sample-th response (ACCEPTED, SOLD_OUT, ...)
--   sample=N        with count=status, read the body of one response in N  (default 1: all)
--   path=/purchase  request path                                    (default /purchase)
--   seed=N          random seed (per thread: seed + thread_id)      (default: time based)
--
-- done() prints a human-readable breakdown and one machine-readable line:
--   WRKRESULT requests=.. duration_s=.. rps=.. p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
--             err_connect=.. err_read=.. err_write=.. err_timeout=.. http_ge400=..
--             http_200=.. status_ACCEPTED=.. status_SAMPLED=.. (counters that are non-zero)
-- Counters are per completed response; requests still in flight when the run ends are
-- answered by the server but not counted by wrk.

local threads = {}
local next_tid = 1

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

local function setting(args, key, default)
   for _, a in ipairs(args or {}) do
      local k, v = a:match("^([%w_]+)=(.*)$")
      if k == key then return v end
   end
   local v = os.getenv("WRK_" .. key:upper())
   if v ~= nil and v ~= "" then return v end
   return default
end

local function int_setting(args, key, default)
   local v = setting(args, key, nil)
   if v == nil then return default end
   local n = tonumber(v)
   if n == nil or n ~= math.floor(n) then
      error("purchase.lua: " .. key .. " must be an integer, got '" .. v .. "'")
   end
   return n
end

-- per-thread state (each wrk thread has its own Lua state)
local pid_min, pid_max, user_mode, user_max, user_base, amount, count_mode, sample
local prefix, counter, seen
local pick_product  -- function() -> product id, chosen in init() from products=
local zipf_cdf, zipf_guide  -- products=zipf: see zipf_table()

-- a * 2^42 + b * 2^21 + c for integers 0 <= a, b, c < 2^21 (so any value in 0 .. 2^63-1)
-- as three base-10^7 limbs hi, mid, lo (value = (hi * 10^7 + mid) * 10^7 + lo), computed
-- exactly: a double holds integers only up to 2^53, and every intermediate here
-- (< 10^7 * 2^21 + 2^21 < 2^45) stays below that.
local LIMB = 10000000
local TWO21 = 2097152
local function random63_limbs(a, b, c)
   -- acc = a * 2^21 + b  (< 2^42 < 10^14: two limbs)
   local t = a * TWO21 + b
   local lo = t % LIMB
   local mid = (t - lo) / LIMB
   -- acc = acc * 2^21 + c  (< 2^63 < 10^21: three limbs)
   t = lo * TWO21 + c
   lo = t % LIMB
   t = mid * TWO21 + (t - lo) / LIMB
   mid = t % LIMB
   return (t - mid) / LIMB, mid, lo
end

-- The decimal string of base-10^7 limbs: no sign, no leading zero.
local function limbs_decimal(hi, mid, lo)
   if hi > 0 then return string.format("%d%07d%07d", hi, mid, lo) end
   if mid > 0 then return string.format("%d%07d", mid, lo) end
   return string.format("%d", lo)
end

-- Exported as a global so that bench/check_purchase_lua.py can test the arithmetic on known
-- values (request() inlines the common case of limbs_decimal into its one format call).
function random63_decimal(a, b, c)
   return limbs_decimal(random63_limbs(a, b, c))
end

-- Cumulative Zipf table over ranks 1..n, built once per thread (n = 1000 takes well under
-- a millisecond): zipf_cdf[k] = P(rank <= k), the last entry forced to exactly 1 so every
-- search ends. zipf_guide[j] (j = 0..n) = the smallest rank k with zipf_cdf[k] >= j/n: a
-- u in [j/n, (j+1)/n) has its rank in zipf_guide[j] .. zipf_guide[j+1], so the binary
-- search per request runs over that slice (mostly 1-2 ranks) instead of all n (~10 steps:
-- measured 110 ns more per request than uniform, on a client that shares the cores with
-- the server).
local function zipf_table(n, s)
   local cdf, total = {}, 0
   for k = 1, n do
      total = total + 1 / k ^ s
      cdf[k] = total
   end
   for k = 1, n do cdf[k] = cdf[k] / total end
   cdf[n] = 1
   local guide, k = {}, 1
   for j = 0, n do
      while cdf[k] < j / n do k = k + 1 end
      guide[j] = k
   end
   return cdf, guide
end

-- Smallest rank k with zipf_cdf[k] >= u, for u in [0, 1).
local function zipf_rank(u)
   local n = #zipf_cdf
   local j = math.floor(u * n)
   if j >= n then j = n - 1 end
   local lo, hi = zipf_guide[j], zipf_guide[j + 1]
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if zipf_cdf[mid] >= u then hi = mid else lo = mid + 1 end
   end
   return lo
end

function init(args)
   tid = tid or 1
   local range = setting(args, "pid", "10000000-10009999")
   local a, b = range:match("^(%d+)%-(%d+)$")
   if a == nil then a = range:match("^(%d+)$"); b = a end
   if a == nil then error("purchase.lua: pid must be MIN-MAX or N, got '" .. range .. "'") end
   pid_min, pid_max = tonumber(a), tonumber(b)
   if pid_max < pid_min then error("purchase.lua: pid range is empty") end
   local product_mode = setting(args, "products", "uniform")
   if product_mode == "uniform" then
      pick_product = function() return math.random(pid_min, pid_max) end
   elseif product_mode == "zipf" then
      local s = tonumber(setting(args, "zipf_s", "1.0"))
      if s == nil or s <= 0 then error("purchase.lua: zipf_s must be a number > 0") end
      zipf_cdf, zipf_guide = zipf_table(pid_max - pid_min + 1, s)
      pick_product = function() return pid_min + zipf_rank(math.random()) - 1 end
   else
      error("purchase.lua: products must be uniform or zipf, got '" .. product_mode .. "'")
   end
   user_mode = setting(args, "users", "random")
   if user_mode ~= "random" and user_mode ~= "distinct" and user_mode ~= "random63" then
      error("purchase.lua: users must be random, distinct or random63, got '" .. user_mode .. "'")
   end
   user_max = int_setting(args, "user_max", 199)
   user_base = int_setting(args, "user_base", 0)
   amount = int_setting(args, "amount", 1)
   count_mode = setting(args, "count", "http")
   if count_mode ~= "none" and count_mode ~= "http" and count_mode ~= "status" then
      error("purchase.lua: count must be none, http or status, got '" .. count_mode .. "'")
   end
   sample = int_setting(args, "sample", 1)
   if sample < 1 then sample = 1 end
   local path = setting(args, "path", "/purchase")
   math.randomseed(int_setting(args, "seed", os.time()) + tid * 7919)

   -- Request head built once; only Content-Length and the body change per request.
   local head = { "POST " .. path .. " HTTP/1.1\r\n" }
   for name, value in pairs(wrk.headers) do
      local lname = name:lower()
      if lname ~= "content-length" and lname ~= "content-type" then
         head[#head + 1] = name .. ": " .. value .. "\r\n"
      end
   end
   head[#head + 1] = "Content-Type: application/json\r\nContent-Length: "
   prefix = table.concat(head)

   counter = 0
   seen = 0
   counts = {}
   if count_mode == "none" then
      response = nil      -- wrk skips header/body parsing when response is nil after init()
   end
end

function request()
   local body
   if user_mode == "random63" then
      local hi, mid, lo = random63_limbs(math.random(0, TWO21 - 1), math.random(0, TWO21 - 1),
                                         math.random(0, TWO21 - 1))
      if hi > 0 then   -- all but 1 in ~92,000 ids: one format call for the whole body
         body = string.format('{"user_id":%d%07d%07d,"product_id":%d,"amount":%d}',
                              hi, mid, lo, pick_product(), amount)
      else
         body = string.format('{"user_id":%s,"product_id":%d,"amount":%d}',
                              limbs_decimal(hi, mid, lo), pick_product(), amount)
      end
   else
      local user
      if user_mode == "distinct" then
         user = user_base + counter * 1024 + tid
         counter = counter + 1
      else
         user = math.random(0, user_max)
      end
      body = string.format('{"user_id":%d,"product_id":%d,"amount":%d}',
                           user, pick_product(), amount)
   end
   return prefix .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
   local key = "http_" .. status
   counts[key] = (counts[key] or 0) + 1
   if count_mode == "status" then
      seen = seen + 1
      if seen >= sample then
         seen = 0
         local s = body and body:match('"status"%s*:%s*"([%w_]+)"') or nil
         local k = "status_" .. (s or "NONE")
         counts[k] = (counts[k] or 0) + 1
         counts.status_SAMPLED = (counts.status_SAMPLED or 0) + 1
      end
   end
end

function done(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      local c = thread:get("counts")
      if type(c) == "table" then
         for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
      end
   end
   local secs = summary.duration / 1e6
   local e = summary.errors
   local keys = {}
   for k in pairs(total) do keys[#keys + 1] = k end
   table.sort(keys)

   io.write("---- purchase.lua outcome counts (completed responses) ----\n")
   if #keys == 0 then
      io.write("  (not counted: count=none; see wrk's Non-2xx line)\n")
   end
   for _, k in ipairs(keys) do
      io.write(string.format("  %-28s %d\n", k, total[k]))
   end
   local line = {
      string.format("WRKRESULT requests=%d", summary.requests),
      string.format("duration_s=%.3f", secs),
      string.format("rps=%.1f", summary.requests / secs),
      string.format("p50_ms=%.3f", latency:percentile(50) / 1000),
      string.format("p90_ms=%.3f", latency:percentile(90) / 1000),
      string.format("p99_ms=%.3f", latency:percentile(99) / 1000),
      string.format("max_ms=%.3f", latency.max / 1000),
      string.format("err_connect=%d err_read=%d err_write=%d err_timeout=%d http_ge400=%d",
                    e.connect, e.read, e.write, e.timeout, e.status),
   }
   for _, k in ipairs(keys) do line[#line + 1] = string.format("%s=%d", k, total[k]) end
   io.write(table.concat(line, " "), "\n")
end
