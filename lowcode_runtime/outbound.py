"""The upstream exchange (API.md 5.2 and 5.3): connect through the egress checks, follow up to
five redirects by hand, read the body within the size limit, and map failures to contract codes.

Public (re-exported from :mod:`lowcode_runtime`): a plugin that calls an HTTP upstream keeps one
:class:`OutboundClient` per application and sends :class:`Outbound` requests through it, so that
it gets the egress policy, the trace id, the size limit and the error codes of the ``rest`` type.

Redirects are followed here rather than by aiohttp so that each hop's host is rewritten and
checked before it is contacted, a method change drops the body as browsers do, and headers that
carry a secret never follow a redirect to another origin.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp.http_exceptions import ContentEncodingError
from yarl import URL

from lowcode_runtime import __version__, errors, events
from lowcode_runtime.config import Settings
from lowcode_runtime.egress import (
    EgressDenied,
    EgressPolicy,
    EgressResolver,
    IPAddress,
    describe,
)
from lowcode_runtime.http_client import make_session
from lowcode_runtime.logs import logger
from lowcode_runtime.masking import needs_masking
from lowcode_runtime.redact import Redactor
from lowcode_runtime.upstream import UpstreamAnswer
from lowcode_runtime.urls import url_problem

__all__ = ["USER_AGENT", "Outbound", "OutboundClient", "UpstreamAnswer", "egress_cause"]

USER_AGENT = f"lowcode-runtime/{__version__}"

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Non-2xx bodies are read this far for ``details.body``, whatever the size limit.
ERROR_BODY_READ_BYTES = 65536
# Sent only to the origin they were written for.
ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass
class Outbound:
    """The first request of an exchange; ``secret_headers`` names headers holding a secret.

    ``url`` may be given as a string: it is read with ``yarl.URL`` (which encodes what needs
    encoding) and kept as one.
    """

    method: str
    url: URL | str
    headers: dict[str, str]
    body: bytes | None
    secret_headers: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.url = URL(self.url)


class OutboundClient:
    """One per application: a pooled session whose every connection passes the egress policy.

    ``type_name`` names the dataSource type in the ``<type>.egress_blocked`` log event. Open it
    in ``runtime_startup`` and close it in ``runtime_shutdown``.
    """

    def __init__(self, settings: Settings, type_name: str = "rest") -> None:
        self.policy = EgressPolicy(settings.egress_allow)
        self.max_bytes = settings.rest_max_response_bytes
        self.type_name = type_name
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Opened on first use, inside the running loop."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=EgressResolver(self.policy), limit=100
            )
            self._session = make_session(
                connector=connector,
                checks=(self.policy.check_request,),
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def exchange(
        self,
        outbound: Outbound,
        budget: float,
        follow_redirects: bool,
        budget_hint: str = "timeoutMs or the request deadline",
        redactor: Redactor | None = None,
    ) -> UpstreamAnswer:
        """Send ``outbound`` and read the answer, all within ``budget`` seconds.

        Any status comes back as an answer; failures raise the contract's errors
        (``EGRESS_BLOCKED``, ``UPSTREAM_UNREACHABLE``, ``UPSTREAM_RESPONSE_TOO_LARGE``,
        ``TIMEOUT``). ``budget_hint`` says in the timeout message where the budget came from;
        ``redactor`` knows the call's secrets, which a refusal must not spell (see
        :func:`_blocked`).
        """
        started = time.monotonic()
        hop = _Hop(
            outbound.method, URL(outbound.url), dict(outbound.headers), outbound.body
        )
        try:
            # Inline, not in functions of their own: each level awaited costs on every resume,
            # and an exchange resumes several times.
            async with asyncio.timeout(budget):
                for count in range(MAX_REDIRECTS + 1):
                    # The checked address is sent; errors name the host as written, which
                    # is what the redaction of a secret in it finds.
                    url = self._checked(hop.url, redactor)
                    try:
                        async with self.session.request(
                            hop.method,
                            url,
                            headers=hop.headers,
                            data=hop.body,
                            allow_redirects=False,
                        ) as response:
                            location = response.headers.get("Location")
                            if not (
                                follow_redirects
                                and location
                                and response.status in REDIRECT_STATUSES
                            ):
                                return await self._answer(response, started)
                    except (aiohttp.ClientError, OSError) as e:
                        raise self._failed(
                            e, hop.url.raw_host or "", redactor
                        ) from None
                    if count == MAX_REDIRECTS:
                        raise errors.UpstreamUnreachable(
                            f"the upstream redirected more than {MAX_REDIRECTS} times"
                        )
                    hop.follow(response.status, location, outbound)
        except TimeoutError:
            raise errors.Timeout(
                f"the upstream did not answer within {round(budget * 1000)} ms "
                f"({budget_hint})"
            ) from None
        raise AssertionError("unreachable: the loop returns or raises")

    def _checked(self, url: URL, redactor: Redactor | None) -> URL:
        """The URL with its host as a canonical address when it spells one; blocked -> 403."""
        host = url.raw_host or ""
        try:
            address = self.policy.check_literal(host)
        except EgressDenied as e:
            raise _blocked(e, self.type_name, redactor) from None
        if address is not None and not self.policy.host_allowed(host):
            canonical = _canonical(address)
            if canonical != host:
                return url.with_host(canonical)
        return url

    def _failed(
        self, error: BaseException, host: str, redactor: Redactor | None
    ) -> errors.RuntimeBackendError:
        """What an exchange that failed in aiohttp answers: blocked, or unreachable and why."""
        denied = egress_cause(error)
        if denied is not None:
            return _blocked(denied, self.type_name, redactor)
        if isinstance(
            error, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch
        ):
            what = "the TLS handshake failed"
        elif isinstance(error, aiohttp.ClientConnectorDNSError):
            what = "the host name does not resolve"
        elif isinstance(error, aiohttp.ClientConnectorError):
            what = "the connection was refused or failed"
        elif isinstance(error, aiohttp.ClientPayloadError):
            if isinstance(error.__cause__, ContentEncodingError):
                what = "its body does not decode as its Content-Encoding says"
            else:
                what = "it hung up before its body was complete"
        elif (
            isinstance(error, aiohttp.ClientResponseError)
            and (encoding := _undecodable_encoding(error)) is not None
        ):
            what = "its body uses a content encoding the service cannot decode"
            what += f" ({encoding})" if encoding else ""
        else:
            what = f"the exchange failed ({type(error).__name__})"
        return errors.UpstreamUnreachable(
            f"cannot reach upstream host {host!r}: {what}"
        )

    async def _answer(
        self, response: aiohttp.ClientResponse, started: float
    ) -> UpstreamAnswer:
        if 200 <= response.status < 300:
            body = await read_limited(response, self.max_bytes)
        else:
            body = await read_prefix(
                response, min(self.max_bytes, ERROR_BODY_READ_BYTES)
            )
        return UpstreamAnswer(
            status=response.status,
            headers=response.headers,
            body=body,
            charset=response.charset,
            content_type=response.content_type,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )


@dataclass
class _Hop:
    """The request of one hop: the first as written, each next one as a redirect says."""

    method: str
    url: URL
    headers: dict[str, str]
    body: bytes | None

    def follow(self, status: int, location: str, first: Outbound) -> None:
        """Become the request that a ``status`` redirect to ``location`` asks for."""
        target = _redirect_target(self.url, location)
        self.method, self.body, self.headers = _redirected(
            status, self.method, self.body, self.headers
        )
        if target.origin() != URL(first.url).origin():
            self.headers = _strip_for_other_origin(self.headers, first.secret_headers)
        self.url = target


@functools.lru_cache(maxsize=1024)
def _canonical(address: IPAddress) -> str:
    return str(address)


def egress_cause(error: BaseException) -> EgressDenied | None:
    """The egress refusal behind an aiohttp error (it wraps what its resolver or a middleware
    raised: as ``os_error`` of a connector error, or as the cause of a ``ClientOSError``)."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, EgressDenied):
            return seen
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, EgressDenied):
            return os_error
        seen = seen.__cause__ or seen.__context__
    return None


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The decoded body, or ``UPSTREAM_RESPONSE_TOO_LARGE`` as soon as it passes ``limit``.

    aiohttp decodes gzip/deflate incrementally in bounded steps, so counting what comes out of
    ``content`` counts decoded bytes while memory stays near the limit.
    """
    # A declared length over the limit fails at once (not for HEAD, which has no body).
    declared = response.content_length
    plain = "Content-Encoding" not in response.headers and response.method != "HEAD"
    if plain and declared is not None and declared > limit:
        response.close()
        raise _too_large(limit)

    chunks, total = [], 0
    async for chunk in response.content.iter_any():
        total += len(chunk)
        if total > limit:
            response.close()
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body; the rest is left unread and the connection closed."""
    chunks, total = [], 0
    async for chunk in response.content.iter_any():
        chunks.append(chunk[: limit - total])
        total += len(chunks[-1])
        if total >= limit:
            response.close()
            break
    return b"".join(chunks)


# How aiohttp names an encoding it has no decoder for (Brotli or zstd not installed):
# "Can not decode content-encoding: brotli (br). Please install `Brotli`".
_NAMED_ENCODING = re.compile(r"content-encoding: [^(]*\(([A-Za-z0-9._-]+)\)")


def _undecodable_encoding(error: BaseException) -> str | None:
    """The content encoding aiohttp could not decode a body in ("" when it names none), or
    None when that is not what failed."""
    cause = error.__cause__
    for _ in range(5):
        if cause is None or isinstance(cause, ContentEncodingError):
            break
        cause = cause.__cause__
    if not isinstance(cause, ContentEncodingError):
        return None
    named = _NAMED_ENCODING.search(cause.message)
    return named.group(1) if named else ""


def _too_large(limit: int) -> errors.UpstreamResponseTooLarge:
    return errors.UpstreamResponseTooLarge(
        f"the upstream body passed the limit of {limit} bytes (decoded); "
        "ask for less or raise RUNTIME_BACKEND_REST_MAX_RESPONSE_BYTES"
    )


def _blocked(
    error: EgressDenied, type_name: str, redactor: Redactor | None
) -> errors.EgressBlocked:
    """``EGRESS_BLOCKED``, logged. A host holding a secret is named redacted and without its
    address: ``424242`` is ``0.6.121.50``, the secret again. The answer looks for the call's
    secrets (``redactor``; the ones the log masking knows without one): another project's
    would tell the caller that its guess is one. The log line looks for every known one."""
    host = redactor.text(error.host) if redactor is not None else error.host
    known = needs_masking(error.host)
    secret_host = host != error.host or (redactor is None and known)
    address = {} if secret_host or known else {"address": error.address}
    logger.bind(
        event=events.EGRESS_BLOCKED.format(type=type_name),
        host=host,
        category=error.category,
        **address,
    ).warning(f"{type_name} call to a blocked address refused")
    named = "" if secret_host else f" ({error.address})"
    return errors.EgressBlocked(
        f"host {host!r} is blocked by the egress policy: it is {describe(error.category)}"
        f"{named}; list it in RUNTIME_BACKEND_EGRESS_ALLOW to allow it"
    )


def _redirect_target(url: URL, location: str) -> URL:
    try:
        target = url.join(URL(location, encoded=True))
        # Before the URL's checks: a file: URL has no host, but that is not what is wrong.
        if target.scheme not in ("http", "https"):
            raise errors.UpstreamUnreachable(
                f"the upstream redirected to a URL of scheme {target.scheme!r}; only http "
                "and https redirects are followed"
            )
        problem = url_problem(target)
    except ValueError:
        problem = "it does not parse"
    if problem is not None:
        raise errors.UpstreamUnreachable(
            f"the upstream redirected to an invalid URL ({problem})"
        ) from None
    return target.with_fragment(None)


def _redirected(
    status: int, method: str, body: bytes | None, headers: dict[str, str]
) -> tuple[str, bytes | None, dict[str, str]]:
    """The next hop's method, body and headers (RFC 9110 15.4, as browsers apply it)."""
    if (status == 303 and method != "HEAD") or (
        status in (301, 302) and method == "POST"
    ):
        kept = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return "GET", None, kept
    return method, body, headers


def _strip_for_other_origin(
    headers: dict[str, str], secret_headers: set[str]
) -> dict[str, str]:
    drop = ORIGIN_BOUND_HEADERS | secret_headers
    return {k: v for k, v in headers.items() if k.lower() not in drop}
