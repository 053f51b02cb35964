-- Shared by the case scripts: settings from the environment (the bench sets them), the execute
-- request, and the one JSON line each run prints when it is done, which the bench parses.
local common = {}

function common.env(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    error(name .. " is not set: run the scripts through python -m bench")
  end
  return value
end

function common.execute_headers()
  return {
    ["Authorization"] = "Bearer " .. common.env("BENCH_TOKEN"),
    ["Content-Type"] = "application/json",
  }
end

-- The body of one execute call; params is JSON text.
function common.body(data_source, operation, params)
  return '{"dataSource":' .. data_source .. ',"operation":"' .. operation
    .. '","params":' .. params .. '}'
end

-- Each thread draws its own random sequence.
local threads = 0
function common.setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function common.init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function common.done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, '
      .. '"read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max
  ))
end

return common
