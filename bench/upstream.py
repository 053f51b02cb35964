"""The local JSON upstream of the ``rest`` case: one fixed document of 20 items.

    python -m bench.upstream --port P    (the bench starts it)

The body is serialised once, so that what the bench sees of the upstream is aiohttp's own
cost; the service's ``rest`` call and the direct hit both fetch it.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

ITEMS = [{"id": i, "title": f"item {i}", "price": f"{i}.50"} for i in range(20)]
BODY = json.dumps(ITEMS).encode()


async def items(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    app = web.Application()
    app.router.add_get("/items", items)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
