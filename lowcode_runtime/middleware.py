"""The middleware every request passes: ids, errors as the envelope, security, the deadline.

``make_contract_middleware`` builds it; it is the one place where exceptions become the envelope.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from lowcode_runtime import context, envelope, errors, events, metrics
from lowcode_runtime.config import Settings
from lowcode_runtime.error_answer import error_answer
from lowcode_runtime.keys import RATE_LIMITER, SETTINGS
from lowcode_runtime.logs import debug_enabled, logger
from lowcode_runtime.routes import methods_of_path
from lowcode_runtime.types import Deadline

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_ROUTES = frozenset(
    {("GET", "/health"), ("GET", "/ready"), ("GET", "/openapi.json")}
)
UNLIMITED_ROUTES = frozenset({("GET", "/health"), ("GET", "/ready")})
DEADLINE = web.RequestKey("deadline", Deadline)
EXTRA_HEADERS = web.RequestKey("extra_headers", dict)

# aiohttp's own HTTP errors, mapped onto the contract's codes.
_HTTP_ERRORS: dict[int, type[errors.RuntimeBackendError]] = {
    403: errors.Forbidden,
    404: errors.NotFound,
    413: errors.PayloadTooLarge,
}


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(request: web.Request) -> str:
    """Metric labels stay bounded whatever method a client invents."""
    return request.method if request.method in KNOWN_METHODS else "OTHER"


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None or request.match_info.http_exception is not None:
        return "unmatched"
    return resource.canonical


def _begin_trace(request: web.Request) -> None:
    """Set trace and request ids for the whole request; its start time and extra headers."""
    trace_id = context.accept_trace_id(request.headers.get("x-trace-id"))
    request_id = context.new_id()
    context.trace_id_var.set(trace_id)
    context.request_id_var.set(request_id)
    request[envelope.TRACE_ID] = trace_id
    request[envelope.REQUEST_ID] = request_id
    request[envelope.STARTED_AT] = time.monotonic()
    request[EXTRA_HEADERS] = {}


def _end_trace(request: web.Request, response: web.StreamResponse) -> None:
    """Echo the ids and the extra headers on the answer; count the request."""
    response.headers["x-trace-id"] = request[envelope.TRACE_ID]
    response.headers["x-request-id"] = request[envelope.REQUEST_ID]
    response.headers.update(request[EXTRA_HEADERS])
    metrics.child(
        metrics.HTTP_REQUESTS,
        _method_label(request),
        _route_label(request),
        response.status,
    ).inc()
    if debug_enabled():
        logger.bind(
            event=events.HTTP_REQUEST,
            method=request.method,
            path=request.path,
            httpStatus=response.status,
            durationMs=round(
                (time.monotonic() - request[envelope.STARTED_AT]) * 1000, 3
            ),
        ).debug(f"{request.method} {request.path} {response.status}")


def _raised_answer(e: web.HTTPException) -> web.Response:
    """A success or a redirect raised rather than returned (``raise web.HTTPFound(url)``): the
    answer it holds, so that it is logged and counted like any other."""
    return web.Response(
        status=e.status, reason=e.reason, headers=e.headers, body=e.body
    )


def _http_error_answer(request: web.Request, e: web.HTTPException) -> web.Response:
    """aiohttp's own HTTP error (aiohttp-cors refusing an origin, say) as ours."""
    error_class = _HTTP_ERRORS.get(e.status)
    if error_class is None:
        mapped: errors.RuntimeBackendError = errors.Internal(e.reason)
        # Not a bare HTTPException's status (-1), which no client can read.
        if 400 <= e.status < 600:
            mapped.status = e.status
    else:
        # aiohttp's reason (e.g. aiohttp-cors refusing an origin) says more than ours.
        mapped = error_class(e.text if e.status == 403 and e.text else None)
    return _error_answer(request, mapped)


def _unexpected_answer(request: web.Request, e: Exception) -> web.Response:
    logger.bind(event=events.HTTP_UNHANDLED, path=request.path).opt(exception=e).error(
        f"unhandled {type(e).__name__} while serving {request.method} {request.path}"
    )
    return _error_answer(request, errors.Internal())


def _error_answer(
    request: web.Request, error: errors.RuntimeBackendError
) -> web.Response:
    if isinstance(error, errors.Unauthorized):
        request[EXTRA_HEADERS]["WWW-Authenticate"] = 'Bearer realm="lowcode-runtime"'
    if isinstance(error, errors.RateLimited):
        request[EXTRA_HEADERS]["retry-after"] = str(error.retry_after)
    return error_answer(request, error)


def is_preflight(request: web.Request) -> bool:
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


def client_address(
    request: web.Request, trusted: tuple[ipaddress._BaseNetwork, ...]
) -> str:
    """The socket's peer, or the nearest untrusted hop of ``X-Forwarded-For`` behind a proxy."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    address = peer[0] if peer else "unknown"
    if not trusted or not _in_networks(address, trusted):
        return address

    hops = [
        h.strip()
        for h in request.headers.get("X-Forwarded-For", "").split(",")
        if h.strip()
    ]
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            return hop if _is_ip(hop) else address
        address = hop
    return address


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in_networks(address: str, networks: tuple[ipaddress._BaseNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _authenticate(
    request: web.Request, token: str
) -> errors.RuntimeBackendError | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, given = header.partition(" ")
    if header.strip() and scheme.lower() != "bearer":
        # The scheme is not echoed: a caller who left it out sent the token in its place.
        return errors.Unauthorized(
            "the Authorization header uses a scheme other than Bearer: send "
            "'Authorization: Bearer <token>'"
        )
    if scheme.lower() != "bearer" or not given.strip():
        return errors.Unauthorized()
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return errors.Forbidden()
    return None


async def _admit(
    request: web.Request,
    settings: Settings,
    trusted: tuple[ipaddress._BaseNetwork, ...],
) -> None:
    """Authentication before routing, then the rate limit, then an early body-size check."""
    # HEAD is GET without the body: an open route is open to both (a load balancer's probe).
    method = hdrs.METH_GET if request.method == hdrs.METH_HEAD else request.method
    route = (method, request.path)
    if is_preflight(request) or route in UNLIMITED_ROUTES:
        return

    failure = (
        None
        if route in OPEN_ROUTES
        else _authenticate(request, settings.auth_token or "")
    )
    project_id = request.match_info.get("projectId")
    if failure is None and project_id:
        key = f"project:{project_id}"
    else:
        key = f"client:{client_address(request, trusted)}"

    verdict = await request.app[RATE_LIMITER].hit(key)
    request[EXTRA_HEADERS].update(verdict.headers())
    if not verdict.allowed:
        raise errors.RateLimited(retry_after=verdict.reset_seconds)
    if failure is not None:
        raise failure

    length = request.content_length
    if length is not None and length > settings.body_limit_bytes:
        raise errors.PayloadTooLarge(
            f"request body of {length} bytes is over the limit of "
            f"{settings.body_limit_bytes} bytes"
        )


class _DeadlineTimer:
    """Cancels the request's task when its deadline passes, and remembers that it did.

    What ``asyncio.timeout_at`` does, without its scope object, its ``current_task()`` (a
    ``getpid`` on Python 3.11) and its reschedule: 6.2 -> 3.7 µs a request on asyncio's loop
    (bench.costs), 2.8 µs on uvloop's.
    The loop's clock may run behind the monotonic one (uvloop reads it once per turn), so a
    timer that fires before the deadline has passed there waits for the rest: whoever then
    asks ``Deadline.expired()`` agrees that it has.
    """

    __slots__ = ("task", "deadline", "handle", "fired", "cancelling")

    def __init__(self, task: asyncio.Task[Any], deadline: Deadline) -> None:
        self.task = task
        self.deadline = deadline
        self.fired = False
        self.cancelling = task.cancelling()
        self.handle = self._arm()

    def _arm(self) -> asyncio.TimerHandle:
        return self.task.get_loop().call_later(self.deadline.remaining(), self)

    def __call__(self) -> None:
        if not self.deadline.expired():
            self.handle = self._arm()
            return
        self.fired = True
        self.task.cancel()

    def cancel(self) -> None:
        self.handle.cancel()

    def caused_cancellation(self) -> bool:
        """After a ``CancelledError``: whether this timer's cancel was the only one (it is
        then taken back)."""
        return self.fired and self.task.uncancel() <= self.cancelling


RouteGuard = Callable[[web.Request, Handler], Handler]
"""Given a matched request and its handler, the handler to await (a plugin's route, guarded)."""


# Known gap: HTTP that aiohttp's parser refuses before any route runs (a duplicate
# Content-Type, a header line without a colon, an unknown method such as FOO, a
# Content-Encoding of br or zstd whose decoder is not installed) still gets aiohttp's
# text/plain 400 without token check, ids or CORS headers; its server offers no public hook
# for that answer (docs/operations.md, "Requests refused before the service sees them"). Its
# log line is masked JSON like every other (logs.py).
# Known gap: aiohttp answers ``Expect: 100-continue`` before any middleware runs, so the
# client is told to send its body before the token and the body size are checked.
def make_contract_middleware(
    trusted_proxies: tuple[str, ...], guard: RouteGuard
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware of every request: its ids, auth and rate limit, deadline, the envelope.

    One middleware, not one for each step: every level of middleware is awaited again each
    time the request resumes (about 1.2 µs a request each, bench/costs.md). In order:

    1. trace and request ids, echoed on every answer, errors included, and the request counted;
    2. authentication, the rate limit and the body-size check, before the handler;
    3. the deadline around the handler: past it the work is cancelled and the caller gets 504;
    4. ``guard`` picks what runs: a plugin's route runs guarded, the core's as it is;
    5. every exception, ours or aiohttp's, becomes the envelope here (the one place where that
       happens); an unexpected one is logged once.
    """
    trusted = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    @web.middleware
    async def contract_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        _begin_trace(request)
        settings = request.app[SETTINGS]
        try:
            await _admit(request, settings, trusted)
            if request.method == hdrs.METH_OPTIONS and not is_preflight(request):
                # aiohttp-cors takes every OPTIONS for a preflight and refuses it with a 403.
                raise web.HTTPMethodNotAllowed(request.method, ())
            work = guard(request, handler)

            timeout_ms = settings.request_timeout_ms
            deadline = Deadline(request[envelope.STARTED_AT] + timeout_ms / 1000)
            request[DEADLINE] = deadline
            timer = _DeadlineTimer(request.task, deadline)
            try:
                response = await work(request)
            except asyncio.CancelledError as e:
                # Ours only when no one else cancelled the task too (a shutdown, say).
                if timer.caused_cancellation():
                    raise errors.Timeout(
                        f"the request did not finish within {timeout_ms} ms"
                    ) from e
                raise
            finally:
                timer.cancel()
            if timer.fired:
                # Work that swallowed its cancellation does not turn a late answer into a
                # success.
                request.task.uncancel()
                raise errors.Timeout(
                    f"the request did not finish within {timeout_ms} ms"
                )
        except errors.RuntimeBackendError as e:
            response = _error_answer(request, e)
        except web.HTTPMethodNotAllowed:
            # The router lists every resource the path matches, the catch-all's too; the
            # caller is told the methods of the path's own routes, or that it has none.
            allowed = await methods_of_path(request)
            if allowed:
                request[EXTRA_HEADERS]["Allow"] = ",".join(sorted(allowed))
                response = _error_answer(request, errors.MethodNotAllowed())
            else:
                response = _error_answer(
                    request,
                    errors.NotFound(f"no route {request.method} {request.path}"),
                )
        except web.HTTPException as e:
            if 200 <= e.status < 400:
                response = _raised_answer(e)
            else:
                response = _http_error_answer(request, e)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            response = _unexpected_answer(request, e)
        _end_trace(request, response)
        return response

    return contract_middleware
