-- wrk script: raw load on POST /purchase.
--
--   wrk -t2 -c64 -d10s --latency -s scripts/wrk/purchase.lua http://127.0.0.1:8000 -- [key=value ...]
--
-- Every setting can be given as a script argument (after "--") or as an environment
-- variable (WRK_<KEY>, upper case); arguments win.
--
--   pid=MIN-MAX     product ids, uniformly random per request  (default 10000000-10009999)
--   users=MODE      distinct: every request gets a user id never used before in this run:
--                             user_base + counter * 1024 + thread_id (thread_id 1..1023)
--                   random:   uniform in 0..user_max                (default random)
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
counts = {}          -- global so that done() can fetch it with thread:get("counts")

function init(args)
   tid = tid or 1
   local range = setting(args, "pid", "10000000-10009999")
   local a, b = range:match("^(%d+)%-(%d+)$")
   if a == nil then a = range:match("^(%d+)$"); b = a end
   if a == nil then error("purchase.lua: pid must be MIN-MAX or N, got '" .. range .. "'") end
   pid_min, pid_max = tonumber(a), tonumber(b)
   if pid_max < pid_min then error("purchase.lua: pid range is empty") end
   user_mode = setting(args, "users", "random")
   if user_mode ~= "random" and user_mode ~= "distinct" then
      error("purchase.lua: users must be random or distinct, got '" .. user_mode .. "'")
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
   local user
   if user_mode == "distinct" then
      user = user_base + counter * 1024 + tid
      counter = counter + 1
   else
      user = math.random(0, user_max)
   end
   local body = string.format('{"user_id":%d,"product_id":%d,"amount":%d}',
                              user, math.random(pid_min, pid_max), amount)
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
