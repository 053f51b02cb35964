-- db get by a random id over the filled rows (1..BENCH_ROWS).
local common = require("common")
local path = common.env("BENCH_PATH")
local headers = common.execute_headers()
local data_source = common.env("BENCH_DATASOURCE")
local rows = tonumber(common.env("BENCH_ROWS"))

setup, init, done = common.setup, common.init, common.done

request = function()
  local params = '{"id": ' .. math.random(1, rows) .. '}'
  return wrk.format("POST", path, headers, common.body(data_source, "get", params))
end
