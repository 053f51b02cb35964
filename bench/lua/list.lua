-- db list: filter on the indexed category (one of BENCH_CATEGORIES), newest first, 50 rows.
local common = require("common")
local path = common.env("BENCH_PATH")
local headers = common.execute_headers()
local data_source = common.env("BENCH_DATASOURCE")
local categories = tonumber(common.env("BENCH_CATEGORIES"))

setup, init, done = common.setup, common.init, common.done

request = function()
  local category = "c" .. math.random(0, categories - 1)
  local params = '{"filter": {"category": "' .. category .. '"}, "sort": ["-id"], "limit": 50}'
  return wrk.format("POST", path, headers, common.body(data_source, "list", params))
end
