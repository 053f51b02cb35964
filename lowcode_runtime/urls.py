"""Checks of a URL once its templates are rendered, before anything is contacted.

yarl parses a URL built with ``encoded=True`` lazily: a bad port only raises when the host or
port is first read, and a host name is only IDNA-encoded by ``getaddrinfo``, deep in aiohttp's
connector. Both would surface as an internal error, after the resolver was asked; here they are
found at once and named, so that a definition or a param that forms no valid URL is the caller's
``VALIDATION_FAILED`` (or, for a redirect, the upstream's fault).

Messages never repeat the host or the port: either may come from a secret.
"""

from __future__ import annotations

from yarl import URL

from lowcode_runtime.egress import parse_ip_literal

# RFC 1035: 253 characters without the trailing dot.
MAX_HOST_NAME = 253
PORT_MESSAGE = "the URL's port must be a number from 1 to 65535"


def url_problem(url: URL) -> str | None:
    """What makes ``url`` unusable as an upstream address, or None when it is fine."""
    try:
        host = url.raw_host
        port = url.explicit_port
    except ValueError as e:
        return (
            PORT_MESSAGE
            if "port" in str(e).lower()
            else "the URL's host does not parse"
        )

    if not host:
        return "the URL has no host"
    if port == 0:
        return PORT_MESSAGE
    if ":" in host:
        return (
            None
            if parse_ip_literal(host)
            else "the URL's host is not a valid IPv6 address"
        )
    return _name_problem(host)


_DIGITS_AND_DOTS = frozenset("0123456789.")


def _name_problem(host: str) -> str | None:
    """A name is checked as ``getaddrinfo`` will read it: through Python's ``idna`` codec."""
    if set(host) <= _DIGITS_AND_DOTS and parse_ip_literal(host) is None:
        # aiohttp takes such a host for an address, and refuses it as one.
        return "the URL's host is written in digits but is not an IPv4 address"

    try:
        ascii_form = host.encode("idna").decode("ascii")
    except UnicodeError:
        return (
            "the URL's host is not a valid name: each dot-separated label needs 1 to 63 "
            "characters"
        )

    if len(ascii_form.rstrip(".")) > MAX_HOST_NAME:
        return f"the URL's host is longer than {MAX_HOST_NAME} characters"

    # The codec maps compatibility characters (full-width or circled digits) to ASCII, so a
    # host like '①②⑦.0.0.1' would be connected to as an address that the definition does not
    # show. Refused whatever the egress policy says: write the address itself.
    if not host.isascii() and parse_ip_literal(ascii_form) is not None:
        return (
            "the URL's host spells an IP address with non-ASCII characters; "
            "write the address in ASCII digits"
        )
    return None
