"""The public outbound client as a plugin uses it: one exchange with a loopback upstream."""

from __future__ import annotations

import pytest
from aiohttp import web
from yarl import URL

from lowcode_runtime import Outbound, OutboundClient, errors, register_secret


async def test_a_url_given_as_a_string_is_sent_like_a_yarl_url(
    make_settings, aiohttp_server
):
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"q": request.query["q"]}, headers={"x-seen": "yes"})

    app = web.Application()
    app.router.add_get("/search", answer)
    server = await aiohttp_server(app, host="127.0.0.1")
    client = OutboundClient(make_settings(egress_allow=("127.0.0.1",)))

    outbound = Outbound("GET", f"http://127.0.0.1:{server.port}/search?q=a b", {}, None)
    try:
        got = await client.exchange(outbound, budget=5, follow_redirects=False)
    finally:
        await client.close()

    assert isinstance(outbound.url, URL)
    assert got.status == 200
    assert got.headers["X-Seen"] == "yes"
    assert got.body == b'{"q": "a b"}'
    assert (got.content_type, got.charset) == ("application/json", "utf-8")
    assert got.duration_ms > 0


async def test_a_blocked_host_holding_a_registered_secret_is_not_spelt_as_an_address(
    make_settings, logs
):
    """A plugin that passes no redactor: the log masking's registry knows the secret, so the
    address it spells (``424242`` is ``0.6.121.50``) is left out of the answer and the log."""
    register_secret("424242")
    client = OutboundClient(make_settings())
    try:
        with pytest.raises(errors.EgressBlocked) as refused:
            await client.exchange(Outbound("GET", "http://424242/", {}, None), 5, False)
    finally:
        await client.close()

    assert "not globally routable" in refused.value.message
    assert "0.6.121.50" not in refused.value.message
    assert "0.6.121.50" not in logs.text
