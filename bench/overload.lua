-- wrk script for bench/overload.py: each wrk thread runs one connection (-t N -c N), so each Lua state
-- here is one client. A client posts the frame in $FRAME to /analyze?session=$SESSION-<n>, one request
-- after another on its keep-alive connection; after a 503 it waits as long as Retry-After says (1 s
-- when absent) before its next request, as the page does. It times each request itself (from just
-- before wrk writes it to its answer) and done() writes the times, by kind of answer, as JSON to $OUT.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } overload_timespec;
int clock_gettime(int clk_id, overload_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("overload_timespec")
local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- In the main Lua state: one per client, numbered from 1.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("client", #threads)
end

-- In each client's own Lua state (wrk's thread:get reads these globals in done()).
answered, shed, other, no_retry_after = {}, {}, {}, 0
local req, started, wait_ms = nil, 0, 0

function init(args)
  local file = assert(io.open(os.getenv("FRAME"), "rb"))
  local frame = file:read("*a")
  file:close()
  local boundary = "overload-frame-boundary"
  local body = "--" .. boundary .. "\r\n"
    .. 'Content-Disposition: form-data; name="image"; filename="frame.jpg"\r\n'
    .. "Content-Type: image/jpeg\r\n\r\n" .. frame .. "\r\n--" .. boundary .. "--\r\n"
  local path = "/analyze?session=" .. os.getenv("SESSION") .. "-" .. client
  req = wrk.format("POST", path, { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary }, body)
end

function delay()
  local ms = wait_ms
  wait_ms = 0
  return ms
end

function request()
  started = now()
  return req
end

function response(status, headers, body)
  local took = now() - started
  if status == 200 and body:find('"faces"%s*:%s*%[%s*{') then
    answered[#answered + 1] = took
  elseif status == 503 then
    shed[#shed + 1] = took
    local retry = tonumber(headers["retry-after"] or headers["Retry-After"] or "")
    if retry == nil then
      no_retry_after = no_retry_after + 1
      retry = 1
    end
    wait_ms = retry * 1000
  else
    local kind = "HTTP " .. status
    other[kind] = (other[kind] or 0) + 1
  end
end

local function seconds(list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = string.format("%.6f", v)
  end
  return "[" .. table.concat(out, ",") .. "]"
end

function done(summary, latency, requests)
  local all_answered, all_shed, kinds, missing = {}, {}, {}, 0
  for _, thread in ipairs(threads) do
    for _, v in ipairs(thread:get("answered")) do all_answered[#all_answered + 1] = v end
    for _, v in ipairs(thread:get("shed")) do all_shed[#all_shed + 1] = v end
    for k, v in pairs(thread:get("other")) do kinds[k] = (kinds[k] or 0) + v end
    missing = missing + thread:get("no_retry_after")
  end
  local e = summary.errors
  for k, v in pairs({ connect = e.connect, read = e.read, write = e.write, timeout = e.timeout }) do
    if v > 0 then kinds["socket " .. k] = v end
  end
  local parts = {}
  for k, v in pairs(kinds) do
    parts[#parts + 1] = string.format('"%s": %d', k, v)
  end
  local file = assert(io.open(os.getenv("OUT"), "w"))
  file:write(string.format(
    '{"duration_s": %.3f, "answered_s": %s, "shed_s": %s, "other": {%s}, "shed_without_retry_after": %d}\n',
    summary.duration / 1e6, seconds(all_answered), seconds(all_shed), table.concat(parts, ", "), missing
  ))
  file:close()
end
