-- db create: one new row a request, in a random category.
local common = require("common")
local path = common.env("BENCH_PATH")
local headers = common.execute_headers()
local data_source = common.env("BENCH_DATASOURCE")
local categories = tonumber(common.env("BENCH_CATEGORIES"))
local counter = 0

setup, init, done = common.setup, common.init, common.done

request = function()
  counter = counter + 1
  local params = '{"values": {"title": "bench ' .. counter .. '", "category": "c'
    .. math.random(0, categories - 1) .. '", "price": "9.99"}}'
  return wrk.format("POST", path, headers, common.body(data_source, "create", params))
end
