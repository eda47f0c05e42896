-- wrk script for bench/load.sh, configured by environment variables:
--   WRK_METHOD  GET (default) or POST
--   WRK_BODY    request body, sent as application/x-www-form-urlencoded when set
--   WRK_TOKEN   bearer token, sent as "Authorization: Bearer <token>" when set
--   WRK_CLIENTS when set to N, each request says it comes from one of N addresses
--               (X-Forwarded-For: 10.0.0.1 ...), for a server that trusts 127.0.0.1 as its
--               proxy: logins of one user from several clients, as behind a load balancer
-- When wrk finishes it prints one line, "RESULT {json}", with latencies in milliseconds.
-- No response() callback: it would run Lua on every response and slow wrk down.

wrk.method = os.getenv("WRK_METHOD") or "GET"

local body = os.getenv("WRK_BODY") or ""
if body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

local token = os.getenv("WRK_TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local clients = tonumber(os.getenv("WRK_CLIENTS") or "")
if clients then
  local n = 0
  function request()
    n = n + 1
    local i = n % clients
    wrk.headers["X-Forwarded-For"] = "10.0." .. math.floor(i / 250) .. "." .. (i % 250 + 1)
    return wrk.format()
  end
end

function done(summary, latency, requests)
  local n = summary.requests
  local secs = summary.duration / 1e6
  -- wrk keeps latencies in microseconds; -1 marks "no request completed".
  local function ms(us) return n > 0 and us / 1000.0 or -1 end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"secs":%.3f,"rps":%.2f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
    '"max_ms":%.3f,"non2xx":%d,"socket_errors":%d,"timeouts":%d}\n',
    n, secs, secs > 0 and n / secs or 0,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency.max), e.status, e.connect + e.read + e.write, e.timeout))
end
