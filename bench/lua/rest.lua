-- rest request through the service: a GET of the local JSON upstream with a secret header.
local common = require("common")

setup, init, done = common.setup, common.init, common.done

wrk.method = "POST"
wrk.path = common.env("BENCH_PATH")
wrk.headers = common.execute_headers()
wrk.body = common.body(common.env("BENCH_REST_DATASOURCE"), "request", "{}")
