"""The secrets provider of API.md section 8 and the cache in front of it, on a real API server."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

import pytest

from lowcode_runtime import context, default_secrets, errors, events, hookimpl, secrets
from lowcode_runtime.masking import MASK, mask
from lowcode_runtime.metrics import SECRETS_CACHE
from lowcode_runtime.plugins import build_plugin_manager
from lowcode_runtime.secrets import SecretsCache
from lowcode_runtime.secrets_providers import (
    ApiSecretsProvider,
    FileSecretsProvider,
    NoSecretsProvider,
)
from tests.fixtures.upstream import execute
from tests.support import SilentRedis


def counter(result: str) -> float:
    return SECRETS_CACHE.labels(result=result)._value.get()


@pytest.fixture
async def make_cache(make_settings, secrets_api):
    """``SecretsCache`` over the API provider, as ``create_app`` builds it; closed after."""
    made = []

    def make(**overrides):
        settings = make_settings(**secrets_api.settings(**overrides))
        provider = default_secrets.register_secrets_provider(settings=settings)
        cache = SecretsCache(provider, settings)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


async def test_api_call_carries_service_credentials_and_trace_id(
    make_cache, secrets_api
):
    secrets_api.state.secrets["proj/1"] = {"A": "value-of-a"}
    cache = make_cache()
    token = context.trace_id_var.set("trace-secrets-1")
    try:
        found = await cache.get("proj/1")
    finally:
        context.trace_id_var.reset(token)

    assert found == {"A": "value-of-a"}
    seen = secrets_api.state.requests[0]
    assert seen.raw_path == "/internal/projects/proj%2F1/secrets/runtime"
    assert seen.headers["X-Service-Id"] == "runtime-tests"
    assert seen.headers["Authorization"] == "Bearer svc-secret-do-not-leak-42"
    assert seen.headers["x-trace-id"] == "trace-secrets-1"


async def test_values_are_registered_with_the_masking(make_cache, secrets_api):
    secrets_api.state.secrets["p1"] = {"A": f"registered-{uuid.uuid4().hex}"}
    value = (await make_cache().get("p1"))["A"]

    assert mask(f"log line with {value}") == f"log line with {MASK}"


async def test_answers_are_cached_for_the_ttl(make_cache, secrets_api):
    secrets_api.state.secrets["p1"] = {"A": "one"}
    cache = make_cache(secrets_cache_ttl_ms=300)
    hits, misses = counter("hit"), counter("miss")

    assert await cache.get("p1") == {"A": "one"}
    secrets_api.state.secrets["p1"] = {"A": "two"}
    assert await cache.get("p1") == {"A": "one"}
    assert len(secrets_api.state.requests) == 1
    assert (counter("hit") - hits, counter("miss") - misses) == (1, 1)

    await asyncio.sleep(0.35)
    assert await cache.get("p1") == {"A": "two"}
    assert len(secrets_api.state.requests) == 2


async def test_concurrent_misses_of_a_project_make_one_request(make_cache, secrets_api):
    secrets_api.state.secrets.update({"p1": {"A": "1"}, "p2": {"B": "2"}})
    secrets_api.state.delay = 0.2
    cache = make_cache()

    results = await asyncio.gather(*(cache.get(p) for p in ["p1", "p2"] * 10))

    assert results == [{"A": "1"}, {"B": "2"}] * 10
    assert sorted(r.path for r in secrets_api.state.requests) == [
        "/internal/projects/p1/secrets/runtime",
        "/internal/projects/p2/secrets/runtime",
    ]


async def test_a_waiter_giving_up_does_not_cancel_the_shared_fetch(
    make_cache, secrets_api
):
    secrets_api.state.secrets["p1"] = {"A": "1"}
    secrets_api.state.delay = 0.3
    cache = make_cache()

    impatient = asyncio.ensure_future(cache.get("p1"))
    patient = asyncio.ensure_future(cache.get("p1"))
    await asyncio.sleep(0.1)
    impatient.cancel()

    assert await patient == {"A": "1"}
    assert len(secrets_api.state.requests) == 1


async def test_stale_set_is_served_when_the_api_fails(make_cache, secrets_api, logs):
    secrets_api.state.secrets["p1"] = {"A": "old"}
    cache = make_cache(secrets_cache_ttl_ms=50)
    await cache.get("p1")
    await asyncio.sleep(0.1)
    stale = counter("stale")

    secrets_api.state.mode = "fail"
    assert await cache.get("p1") == {"A": "old"}

    assert counter("stale") - stale == 1
    [line] = logs.events(events.SECRETS_STALE)
    assert line["level"] == "warning"
    assert line["projectId"] == "p1"
    assert "HTTP 500" in line["reason"]


async def test_past_the_stale_window_the_secrets_are_unavailable(
    make_cache, secrets_api, monkeypatch
):
    monkeypatch.setattr(secrets, "STALE_FOR_SECONDS", 0.05)
    secrets_api.state.secrets["p1"] = {"A": "old"}
    cache = make_cache(secrets_cache_ttl_ms=50)
    await cache.get("p1")
    await asyncio.sleep(0.15)

    secrets_api.state.mode = "fail"
    with pytest.raises(errors.SecretsUnavailable):
        await cache.get("p1")


@pytest.mark.parametrize("mode", ["fail", "garbage"])
async def test_failure_without_a_cached_set_is_unavailable(
    make_cache, secrets_api, logs, mode
):
    secrets_api.state.mode = mode
    with pytest.raises(errors.SecretsUnavailable):
        await make_cache().get("p1")
    assert logs.events(events.SECRETS_FETCH_FAILED)


async def test_slow_api_counts_as_failed_after_its_timeout(make_cache, secrets_api):
    secrets_api.state.secrets["p1"] = {"A": "1"}
    secrets_api.state.delay = 2
    cache = make_cache(secrets_api_timeout_ms=200)

    started = time.monotonic()
    with pytest.raises(errors.SecretsUnavailable):
        await cache.get("p1")
    assert time.monotonic() - started < 1


async def test_unreachable_api_is_unavailable(make_settings, unused_tcp_port):
    settings = make_settings(api_base_url=f"http://127.0.0.1:{unused_tcp_port}")
    cache = SecretsCache(ApiSecretsProvider(settings), settings)
    try:
        with pytest.raises(errors.SecretsUnavailable):
            await cache.get("p1")
    finally:
        await cache.close()


async def test_404_means_no_secrets(make_cache, secrets_api):
    assert await make_cache().get("unknown-project") == {}


async def test_file_provider(make_settings, tmp_path):
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"p1": {"A": "from-file"}}))
    settings = make_settings(secrets_file=str(path), api_base_url="http://127.0.0.1:9")
    provider = default_secrets.register_secrets_provider(settings=settings)
    assert isinstance(provider, FileSecretsProvider)

    cache = SecretsCache(provider, settings.replace(secrets_cache_ttl_ms=0))
    try:
        assert await cache.get("p1") == {"A": "from-file"}
        assert await cache.get("p2") == {}
        path.write_text('{"p1": {"A": 1}}')
        with pytest.raises(errors.SecretsUnavailable):
            await cache.get("p3")
    finally:
        await cache.close()


def test_built_in_choice(make_settings):
    assert isinstance(
        default_secrets.register_secrets_provider(settings=make_settings()),
        NoSecretsProvider,
    )
    api = default_secrets.register_secrets_provider(
        settings=make_settings(api_base_url="http://api.test")
    )
    assert isinstance(api, ApiSecretsProvider)


async def test_secrets_are_fetched_only_for_a_definition_that_names_one(
    make_client, upstream, secrets_api
):
    secrets_api.state.secrets["p1"] = {"A": "1"}
    client = await make_client(egress_allow=("127.0.0.1",), **secrets_api.settings())

    response, _ = await execute(client, {"url": upstream.url("/json")})
    assert response.status == 200
    assert secrets_api.state.requests == []

    response, _ = await execute(
        client,
        {"url": upstream.url("/json"), "headers": {"X-A": "{{ secrets.A }}"}},
        headers={"x-trace-id": "trace-through-app"},
    )
    assert response.status == 200
    assert len(secrets_api.state.requests) == 1
    assert secrets_api.state.requests[0].headers["x-trace-id"] == "trace-through-app"
    assert upstream.requests[-1].headers["X-A"] == "1"


async def test_service_answers_secrets_unavailable(make_client, upstream, secrets_api):
    secrets_api.state.mode = "fail"
    client = await make_client(egress_allow=("127.0.0.1",), **secrets_api.settings())
    response, body = await execute(
        client, {"url": upstream.url("/json"), "headers": {"X-A": "{{ secrets.A }}"}}
    )

    assert response.status == 503
    assert body["error"]["code"] == "SECRETS_UNAVAILABLE"
    assert upstream.requests == []


class VaultProvider:
    def __init__(self) -> None:
        self.closed = False

    async def fetch(self, project_id):
        return {"A": f"vault-{project_id}"}

    async def close(self):
        self.closed = True


class VaultPlugin:
    def __init__(self) -> None:
        self.provider = VaultProvider()

    @hookimpl
    def register_secrets_provider(self, settings):
        return self.provider


async def test_a_plugin_provider_wins_over_the_built_in(
    make_client, upstream, tmp_path
):
    path = tmp_path / "secrets.json"
    path.write_text('{"p1": {"A": "from-file"}}')
    plugin = VaultPlugin()
    pm = build_plugin_manager(
        load_entry_points=False, extra_plugins=(("vault", plugin),)
    )
    assert pm.hook.register_secrets_provider(settings=None) is plugin.provider

    client = await make_client(
        extra_plugins=(("vault", plugin),),
        egress_allow=("127.0.0.1",),
        secrets_file=str(path),
    )
    response, _ = await execute(
        client, {"url": upstream.url("/json"), "headers": {"X-A": "{{ secrets.A }}"}}
    )
    assert response.status == 200
    assert upstream.requests[-1].headers["X-A"] == "vault-p1"

    await client.close()
    assert plugin.provider.closed


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")
async def test_cache_is_shared_through_redis(make_cache, secrets_api):
    project = f"redis-test-{uuid.uuid4().hex}"
    secrets_api.state.secrets[project] = {"A": "shared"}
    redis_url = "redis://127.0.0.1:6379/0"

    first, second = make_cache(redis_url=redis_url), make_cache(redis_url=redis_url)
    try:
        assert await first.get(project) == {"A": "shared"}
        assert await second.get(project) == {"A": "shared"}
        assert len(secrets_api.state.requests) == 1
    finally:
        await first.cache.delete(project)


async def test_a_silent_redis_is_let_be_and_the_process_keeps_its_own_sets(
    make_cache, secrets_api
):
    """A Redis that never answers costs one timeout, not one per call, and no extra fetch."""
    secrets_api.state.secrets["p1"] = {"A": "value-of-a"}
    silent = SilentRedis()
    port = await silent.start()
    try:
        cache = make_cache(redis_url=f"redis://127.0.0.1:{port}/0")
        assert await cache.get("p1") == {
            "A": "value-of-a"
        }  # the read waited its timeout
        asked = silent.received
        assert asked > 0 and not cache.breaker.allows()

        assert await cache.get("p1") == {"A": "value-of-a"}
        assert silent.received == asked
        assert len(secrets_api.state.requests) == 1
    finally:
        await silent.close()


async def test_a_secret_too_short_to_mask_in_logs_is_named_once(
    make_cache, secrets_api, logs
):
    from lowcode_runtime.masking import secrets as registered

    registered.clear()  # an earlier test's token "short" would mask words of the line
    secrets_api.state.secrets["short-1"] = {"PIN": "123", "KEY": "long-enough"}
    cache = make_cache(secrets_cache_ttl_ms=0)
    await cache.get("short-1")
    await cache.get("short-1")  # fetched again: said once only

    [short] = logs.events("secrets.short_value")
    assert (short["projectId"], short["secret"]) == ("short-1", "PIN")
    assert "123" not in json.dumps(short)


async def test_a_secret_removed_from_a_project_is_no_longer_masked_in_its_answers(
    make_cache, secrets_api
):
    from lowcode_runtime.masking import mask_answer

    secrets_api.state.secrets["rotating"] = {"HOST": "upstream.internal.test"}
    cache = make_cache(secrets_cache_ttl_ms=0)
    await cache.get("rotating")
    message = "cannot reach upstream host 'upstream.internal.test'"
    assert "upstream.internal.test" not in mask_answer(message, "rotating")

    secrets_api.state.secrets["rotating"] = {"HOST": "elsewhere.internal.test"}
    await cache.get("rotating")
    assert mask_answer(message, "rotating") == message
    assert "upstream.internal.test" not in mask(message)  # log lines still mask it
