"""The egress policy of API.md section 5.3, enforced where the connection is made.

Two checks cover every way aiohttp reaches an address:

- a host name goes through :class:`EgressResolver`: it resolves, checks every address it got,
  and hands aiohttp only checked addresses, so a name that changes its answer between the check
  and the connection gains nothing (the connection goes to what was checked);
- an IP literal never reaches a resolver in aiohttp, so :meth:`EgressPolicy.check_request`, which
  runs before each request aiohttp sends (every redirect hop too), checks it.

Odd IPv4 spellings (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) are read the way
``inet_aton`` and the OS read them, then checked like any other address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CGNAT = ipaddress.ip_network("100.64.0.0/10")
# ``is_private`` also holds for documentation, benchmarking and other special ranges; these
# are the ranges a message may call private (RFC 1918 and IPv6 unique-local).
PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
# Ranges that ipaddress has no property for, named after RFC 6890 and its successors.
BENCHMARKING = tuple(ipaddress.ip_network(n) for n in ("198.18.0.0/15", "2001:2::/48"))
# 3fff::/20 is RFC 9637's (2024): the ``is_global`` of older Pythons (3.11) holds for it.
DOCUMENTATION = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
        "3fff::/20",
    )
)
# Deprecated (RFC 7526) but still answered by whichever relay is nearest, often one inside
# the operator's own network; ``is_global`` holds for it.
SIXTOFOUR_RELAY_ANYCAST = ipaddress.ip_network("192.88.99.0/24")
# IANA's IETF protocol assignments, not globally reachable; the ``is_global`` of older Pythons
# (3.11) holds past 192.0.0.0/29. Its two anycast services (.9, .10) are blocked too.
IETF_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
BROADCAST = ipaddress.IPv4Address("255.255.255.255")
EMBEDDED = " (embedded in IPv6)"
# Hosts whose literal verdict a policy keeps; past this many it starts afresh.
MAX_KEPT_LITERALS = 1024
# Digits, or 0x-prefixed hex, in one to four dot-separated parts: what inet_aton reads.
_NUMERIC_IPV4 = re.compile(r"(?i)(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}")


class EgressDenied(OSError):
    """A connection to a blocked address was refused before it was made.

    An ``OSError``, so that aiohttp's connector carries it as the cause of its connection error.
    """

    def __init__(self, host: str, address: str, category: str) -> None:
        self.host, self.address, self.category = host, address, category
        super().__init__(f"{host} is {describe(category)} ({address})")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address that ``host`` spells, in any form the OS accepts, or None for a name."""
    host = host.strip("[]").rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    if _NUMERIC_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def blocked_category(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached (``"loopback"``, ``"private"``...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in (
            address.ipv4_mapped,
            address.sixtofour,
            *(address.teredo or ()),
        ):
            if embedded is not None and (category := blocked_category(embedded)):
                return category + EMBEDDED

    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        # fec0::/10, deprecated by RFC 3879: ``is_global`` holds for it.
        (
            "site-local",
            isinstance(address, ipaddress.IPv6Address) and address.is_site_local,
        ),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("broadcast", address == BROADCAST),
        ("carrier-grade NAT", address.version == 4 and address in CGNAT),
        ("private", _within(address, PRIVATE)),
        ("benchmarking", _within(address, BENCHMARKING)),
        ("documentation", _within(address, DOCUMENTATION)),
        ("6to4 relay anycast", address in SIXTOFOUR_RELAY_ANYCAST),
        ("reserved", address.is_reserved),
        (
            "not globally routable",
            not address.is_global or address in IETF_PROTOCOL_ASSIGNMENTS,
        ),
    )
    return next((name for name, hit in checks if hit), None)


def describe(category: str) -> str:
    """A category as a message reads it: "an unspecified address", "a loopback IPv4 address
    embedded in IPv6", "an address that is not globally routable"."""
    base = category.removesuffix(EMBEDDED)
    embedded = base != category
    if base.startswith("not "):
        noun = "IPv4 address embedded in IPv6" if embedded else "address"
        return f"an {noun} that is {base}"
    article = "an" if base[0].lower() in "aeiou" else "a"
    noun = "IPv4 address embedded in IPv6" if embedded else "address"
    return f"{article} {base} {noun}"


def _within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


class EgressPolicy:
    """The policy of one service: what is blocked and what ``RUNTIME_BACKEND_EGRESS_ALLOW`` opens.

    Allow-list entries are host names (matched exactly, case-insensitively, without a trailing
    dot) or addresses and CIDRs (matched against every resolved address).
    """

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allowed_hosts: set[str] = set()
        self.allowed_networks: list[IPNetwork] = []
        self._literals: dict[str, tuple[IPAddress | None, str | None]] = {}
        for entry in allow:
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allowed_hosts.add(normalize_host(entry))

    def host_allowed(self, host: str) -> bool:
        return normalize_host(host) in self.allowed_hosts

    def check_address(self, host: str, address: IPAddress) -> None:
        """Raise :class:`EgressDenied` unless ``address`` may be reached for ``host``."""
        if any(address in network for network in self.allowed_networks):
            return
        category = blocked_category(address)
        if category is not None:
            raise EgressDenied(host, str(address), category)

    def check_literal(self, host: str) -> IPAddress | None:
        """Check ``host`` when it spells an address; return that address (None for a name).

        The verdict depends on the host's text alone, so it is kept per host (each hop of a
        call asks twice: before it is sent and in the session's middleware).
        """
        verdict = self._literals.get(host)
        if verdict is None:
            if len(self._literals) >= MAX_KEPT_LITERALS:
                self._literals.clear()
            verdict = self._literals[host] = self._literal_verdict(host)
        address, category = verdict
        if category is not None:
            raise EgressDenied(host, str(address), category)
        return address

    def _literal_verdict(self, host: str) -> tuple[IPAddress | None, str | None]:
        address = parse_ip_literal(host)
        if address is None or self.host_allowed(host):
            return address, None
        try:
            self.check_address(host, address)
        except EgressDenied as e:
            return address, e.category
        return address, None

    def check_request(self, request: ClientRequest) -> None:
        """A session's request check (``make_session(checks=...)``): IP-literal hosts bypass
        the resolver, so they are checked here, before each request is sent."""
        self.check_literal(request.url.raw_host or "")

    async def middleware(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse:
        """The same check as a client middleware, for a session built some other way."""
        self.check_request(request)
        return await handler(request)


class EgressResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver and lets through only checked addresses."""

    def __init__(
        self, policy: EgressPolicy, resolver: AbstractResolver | None = None
    ) -> None:
        self.policy = policy
        self.resolver = resolver or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        # A literal in an odd spelling arrives here as a "name"; getaddrinfo would accept it.
        self.policy.check_literal(host)
        results = await self.resolver.resolve(host, port, family)
        if self.policy.host_allowed(host):
            return results

        for result in results:
            self.policy.check_address(host, ipaddress.ip_address(_bare(result["host"])))
        return results

    async def close(self) -> None:
        await self.resolver.close()


def normalize_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _bare(address: Any) -> str:
    return str(address).split("%", 1)[0]
