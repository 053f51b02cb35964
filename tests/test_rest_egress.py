"""The egress policy of API.md 5.3: blocked addresses are refused before any connection."""

from __future__ import annotations

import ipaddress
import json
import socket
import time

import aiohttp
import pytest

from lowcode_runtime import events
from lowcode_runtime.egress import (
    EgressDenied,
    EgressPolicy,
    EgressResolver,
    parse_ip_literal,
)
from lowcode_runtime.masking import MASK
from lowcode_runtime.outbound import OutboundClient, egress_cause
from tests.fixtures.upstream import Recorder, Upstream, build_upstream, execute

# Each host is aimed at the loopback upstream's port: where it spells loopback or the
# unspecified address, a connection would reach the upstream, which must see nothing.
BLOCKED_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("127.0.0.2", "loopback"),
    ("localhost", "loopback"),
    ("LocalHost", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("[fd00::1]", "private"),
    ("[fe80::1]", "link-local"),
    ("[::1]", "loopback"),
    ("[::]", "unspecified"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[::ffff:169.254.169.254]", "link-local"),
    ("[::ffff:10.1.2.3]", "private"),
    ("[2002:7f00:1::]", "loopback"),
    ("2130706433", "loopback"),
    ("0x7f000001", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("017700000001", "loopback"),
    ("127.1", "loopback"),
    ("0x7f.1", "loopback"),
    ("2852039166", "link-local"),
    ("0xa9.0xfe.0xa9.0xfe", "link-local"),
    ("0", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("0.1.2.3", "not globally routable"),
    ("[fec0::1]", "site-local"),
    ("[feff::1]", "site-local"),
    ("[3fff::1]", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
]


@pytest.fixture
async def closed_client(make_client):
    """No allow list: every private address is blocked, the test servers' included."""
    return await make_client()


@pytest.mark.parametrize(("host", "category"), BLOCKED_HOSTS)
async def test_blocked_hosts_are_refused_before_connecting(
    closed_client, upstream, logs, host, category
):
    started = time.monotonic()
    response, body = await execute(
        closed_client, {"url": f"http://{host}:{upstream.port}/json"}
    )

    assert response.status == 403, body
    assert body["error"]["code"] == "EGRESS_BLOCKED"
    assert category in body["error"]["message"]
    assert time.monotonic() - started < 2, "a blocked address must not be tried"
    assert upstream.requests == []
    assert [e["category"] for e in logs.events(events.REST_EGRESS_BLOCKED)][
        0
    ].startswith(category)


@pytest.mark.parametrize(
    ("host", "phrase"),
    [
        ("0.0.0.0", "it is an unspecified address (0.0.0.0)"),
        ("127.0.0.1", "it is a loopback address (127.0.0.1)"),
        (
            "0x7f000001",
            "host '0x7f000001' is blocked by the egress policy: it is a loopback "
            "address (127.0.0.1)",
        ),
        ("255.255.255.255", "it is a broadcast address (255.255.255.255)"),
        ("240.0.0.1", "it is a reserved address (240.0.0.1)"),
        ("198.18.0.1", "it is a benchmarking address (198.18.0.1)"),
        ("0.1.2.3", "it is an address that is not globally routable (0.1.2.3)"),
        ("[fec0::1]", "it is a site-local address (fec0::1)"),
        ("192.88.99.1", "it is a 6to4 relay anycast address (192.88.99.1)"),
        (
            "[::ffff:10.1.2.3]",
            "it is a private IPv4 address embedded in IPv6 (::ffff:a01:203)",
        ),
        (
            "[::ffff:0.0.0.0]",
            "it is an unspecified IPv4 address embedded in IPv6 (::ffff:0:0)",
        ),
    ],
)
async def test_a_blocked_address_is_named_by_its_category(closed_client, host, phrase):
    response, body = await execute(closed_client, {"url": f"http://{host}/json"})

    assert response.status == 403, body
    assert phrase in body["error"]["message"]
    assert ("private" in body["error"]["message"]) == ("private" in phrase)


@pytest.mark.parametrize(
    "allow",
    [
        ("127.0.0.1",),
        ("127.0.0.0/8",),
        ("::ffff:0:0/96", "127.0.0.1/32"),
        ("LocalHost",),
    ],
)
async def test_allow_list_opens_hosts_and_cidrs(make_client, upstream, allow):
    client = await make_client(egress_allow=allow)
    host = "localhost" if allow == ("LocalHost",) else "127.0.0.1"
    response, body = await execute(
        client, {"url": f"http://{host}:{upstream.port}/json"}
    )

    assert response.status == 200, body
    assert len(upstream.requests) == 1


async def test_odd_spelling_of_an_allowed_address_reaches_it(make_client, upstream):
    client = await make_client(egress_allow=("127.0.0.1",))
    response, body = await execute(
        client, {"url": f"http://2130706433:{upstream.port}/json"}
    )

    assert response.status == 200, body
    assert len(upstream.requests) == 1


async def test_allowing_one_loopback_address_does_not_open_another(
    make_client, upstream
):
    client = await make_client(egress_allow=("127.0.0.2",))
    response, body = await execute(client, {"url": upstream.url("/json")})

    assert response.status == 403
    assert upstream.requests == []


@pytest.fixture
async def redirector(aiohttp_server) -> Upstream:
    """A second upstream on 127.0.0.2: the allowed host that redirects elsewhere."""
    recorder = Recorder()
    server = await aiohttp_server(build_upstream(recorder), host="127.0.0.2")
    return Upstream(server, recorder)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://{loopback}/json",
        "http://localhost:{port}/json",
        "http://127.1:{port}/json",
        "http://0x7f000001:{port}/json",
        "http://[::ffff:127.0.0.1]:{port}/json",
        "http://[::1]:{port}/json",
    ],
)
async def test_redirect_from_an_allowed_host_to_a_blocked_one(
    make_client, upstream, redirector, target
):
    client = await make_client(egress_allow=("127.0.0.2",))
    target = target.format(loopback=f"127.0.0.1:{upstream.port}", port=upstream.port)
    url = redirector.url("/redirect-to", host="127.0.0.2")
    response, body = await execute(client, {"url": url, "query": {"url": target}})

    assert response.status == 403, body
    assert body["error"]["code"] == "EGRESS_BLOCKED"
    assert len(redirector.requests) == 1
    assert upstream.requests == []


async def test_redirect_between_allowed_hosts_is_followed(
    make_client, upstream, redirector
):
    client = await make_client(egress_allow=("127.0.0.0/8",))
    url = redirector.url("/redirect-to", host="127.0.0.2")
    response, body = await execute(
        client, {"url": url, "query": {"url": upstream.url("/json")}}
    )

    assert response.status == 200, body
    assert body["data"] == {"items": [1, 2], "ok": True}


async def test_secret_headers_do_not_follow_a_redirect_to_another_origin(
    make_client, upstream, redirector, tmp_path
):
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text('{"p1": {"KEY": "origin-bound-key"}}')
    client = await make_client(
        egress_allow=("127.0.0.0/8",), secrets_file=str(secrets_file)
    )
    url = redirector.url("/redirect-to", host="127.0.0.2")
    response, body = await execute(
        client,
        {
            "url": url,
            "query": {"url": upstream.url("/echo/elsewhere")},
            "headers": {
                "X-Api-Key": "{{ secrets.KEY }}",
                "Authorization": "Basic abc",
                "X-N": "1",
            },
        },
    )

    assert response.status == 200, body
    assert redirector.requests[0].headers["X-Api-Key"] == "origin-bound-key"
    forwarded = upstream.requests[0].headers
    assert "X-Api-Key" not in forwarded and "Authorization" not in forwarded
    assert forwarded["X-N"] == "1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.com", None),
        ("deadbeef", None),
        ("1.2.3.4.5", None),
    ],
)
def test_ip_literals_are_read_as_the_os_reads_them(text, expected):
    address = parse_ip_literal(text)
    assert (str(address) if address else None) == expected
    if expected and ":" not in expected:
        assert socket.inet_ntoa(socket.inet_aton(text)) == expected


# IANA's special-purpose registries, every range not globally reachable (or "N/A"), and
# the deprecated site-local fec0::/10 (RFC 3879). 2002::/16 (6to4) is checked by what it embeds.
NOT_GLOBAL_RANGES = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.0.170/31",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::1/128",
    "::/128",
    "::ffff:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "100:0:0:1::/64",
    "2001::/23",
    "2001:2::/48",
    "2001:10::/28",
    "2001:db8::/32",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
]


@pytest.mark.parametrize("network", NOT_GLOBAL_RANGES)
def test_every_range_that_is_not_globally_reachable_is_blocked(network):
    """Checked at both ends, whatever ``is_global`` of this Python's ``ipaddress`` says."""
    policy = EgressPolicy()
    network = ipaddress.ip_network(network)
    for address in (network[0], network[-1]):
        with pytest.raises(EgressDenied):
            policy.check_address("special.test", address)


def test_public_addresses_pass():
    policy = EgressPolicy()
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700::1111"):
        policy.check_address("public.test", ipaddress.ip_address(address))


def test_a_literal_is_refused_on_every_check_not_only_the_first():
    """The verdict kept per host is the same refusal each time, never a pass."""
    policy = EgressPolicy(["10.0.0.0/8"])
    for _ in range(3):
        with pytest.raises(EgressDenied) as refused:
            policy.check_literal("0177.0.0.1")
        assert (refused.value.address, refused.value.category) == (
            "127.0.0.1",
            "loopback",
        )
        assert str(policy.check_literal("10.1.2.3")) == "10.1.2.3"
        assert policy.check_literal("example.com") is None


class FlippingResolver:
    """Answers a public address first, loopback after: a rebinding name."""

    def __init__(self) -> None:
        self.answers = ["93.184.216.34", "127.0.0.1"]

    async def resolve(self, host, port=0, family=socket.AF_INET):
        address = self.answers.pop(0)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self):
        return None


async def test_every_answer_of_a_rebinding_name_is_checked():
    resolver = EgressResolver(EgressPolicy(), FlippingResolver())

    first = await resolver.resolve("rebind.test", 80)
    assert [r["host"] for r in first] == ["93.184.216.34"]
    with pytest.raises(EgressDenied):
        await resolver.resolve("rebind.test", 80)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]"]
)
async def test_the_session_itself_refuses_without_the_plugins_pre_check(
    make_settings, upstream, host
):
    """The checks sit where aiohttp connects: a request sent straight through the session,
    skipping the plugin's own URL check, is refused before any connection too."""
    client = OutboundClient(make_settings())
    try:
        with pytest.raises(aiohttp.ClientError) as raised:
            await client.session.get(f"http://{host}:{upstream.port}/json")
    finally:
        await client.close()

    assert isinstance(egress_cause(raised.value), EgressDenied)
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("secret", "address"), [("424242", "0.6.121.50"), ("999", "0.0.3.231")]
)
async def test_a_blocked_host_holding_a_secret_does_not_name_its_address(
    make_client, logs, tmp_path, secret, address
):
    """The address a secret spells is the secret again (``424242`` is ``0.6.121.50``); the
    registry knows the long secret, only the call's redactor the short one."""
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"p1": {"NUM": secret}}))
    client = await make_client(secrets_file=str(secrets_file))
    response, body = await execute(client, {"url": "http://{{ secrets.NUM }}/"})

    assert response.status == 403, body
    assert body["error"]["code"] == "EGRESS_BLOCKED"
    assert "not globally routable" in body["error"]["message"]
    assert body["meta"]["redacted"] is True
    assert address not in json.dumps(body)
    assert address not in logs.text
    [blocked] = logs.events(events.REST_EGRESS_BLOCKED)
    assert blocked["host"] == MASK and "address" not in blocked
    [failed] = logs.events(events.CALL_ERROR)
    assert secret not in failed["message"]


async def test_an_unreachable_host_holding_a_secret_is_named_as_written(
    make_client, logs, tmp_path
):
    """The host is rewritten to its address before it is sent; a failure names it as written,
    so that the redaction finds the secret and no address derived from it is left."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"p1": {"HOST": "2130706433"}}))
    client = await make_client(
        egress_allow=("127.0.0.1",), secrets_file=str(secrets_file)
    )
    response, body = await execute(
        client, {"url": f"http://{{{{ secrets.HOST }}}}:{port}/"}
    )

    assert response.status == 502, body
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"
    assert f"host '{MASK}'" in body["error"]["message"]
    assert "127.0.0.1" not in json.dumps(body)
    assert "127.0.0.1" not in json.dumps(logs.events(events.CALL_ERROR))
