-- The upstream of rest.lua hit directly, with the header the service would send.
local common = require("common")

setup, init, done = common.setup, common.init, common.done

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. common.env("BENCH_UPSTREAM_SECRET")
