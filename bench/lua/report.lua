-- Shared by the scenario scripts (loaded with dofile): at the end of a run, one
-- machine-readable line that bench/http.sh parses. Latencies are in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end

-- The value of a required environment variable.
function require_env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error(name .. " is not set")
  end
  return v
end

-- A JSON string literal.
function json_string(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end
