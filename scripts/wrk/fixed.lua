-- wrk script: one fixed POST /purchase request, built once (no Lua per request).
-- The cheapest possible client; use it to measure the client/loopback ceiling
-- (e.g. against the nginx baseline) or to hammer one product with one user.
--
--   wrk -t2 -c64 -d10s --latency -s scripts/wrk/fixed.lua http://127.0.0.1:8000
--
-- The body can be changed with environment variables:
--   WRK_USER_ID (default 1), WRK_PRODUCT_ID (default 10000000), WRK_AMOUNT (default 1),
--   WRK_PATH (default /purchase).
-- No response() hook: wrk only reports its "Non-2xx or 3xx responses" counter.
-- done() prints the same WRKRESULT line as purchase.lua.

local function env(name, default)
   local v = os.getenv(name)
   if v == nil or v == "" then return default end
   return v
end

wrk.method = "POST"
wrk.path = env("WRK_PATH", "/purchase")
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"user_id":%d,"product_id":%d,"amount":%d}',
                         tonumber(env("WRK_USER_ID", "1")),
                         tonumber(env("WRK_PRODUCT_ID", "10000000")),
                         tonumber(env("WRK_AMOUNT", "1")))

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "WRKRESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f " ..
      "max_ms=%.3f err_connect=%d err_read=%d err_write=%d err_timeout=%d http_ge400=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000,
      e.connect, e.read, e.write, e.timeout, e.status))
end
