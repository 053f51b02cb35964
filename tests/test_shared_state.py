"""``REDIS_URL`` read as redis-py reads it: the user name, TLS for rediss://, a bad one refused."""

from __future__ import annotations

import socket
import uuid

import pytest
import redis

from lowcode_runtime.config import ConfigError, load_settings
from lowcode_runtime.shared_state import make_cache


def _redis_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.2).close()
    except OSError:
        return False
    return True


def test_rediss_is_tls_and_the_user_name_is_kept():
    """Only host, port, database and password were read: rediss:// talked plain text."""
    cache = make_cache("rediss://someone:pw@127.0.0.1:6390/4?ssl_cert_reqs=none", "t:")
    pool = cache.client.connection_pool
    assert pool.connection_class is redis.asyncio.connection.SSLConnection
    assert pool.connection_kwargs["username"] == "someone"
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["port"]) == (4, 6390)
    assert pool.connection_kwargs["ssl_cert_reqs"] == "none"

    plain = make_cache("redis://127.0.0.1:6379/0", "t:").client.connection_pool
    assert plain.connection_class is not redis.asyncio.connection.SSLConnection


@pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")
async def test_a_redis_user_of_the_url_is_the_one_that_logs_in():
    user, password = f"lowcode_test_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = redis.Redis(host="127.0.0.1", port=6379)
    admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all")
    try:
        cache = make_cache(f"redis://{user}:{password}@127.0.0.1:6379/0", f"{user}:")
        await cache.set("k", {"v": 1}, ttl=10)
        assert await cache.get("k") == {"v": 1}
        await cache.delete("k")
        await cache.close()
    finally:
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (
            "redis://127.0.0.1:6379/abc",
            "the database, after the last /, must be a number",
        ),
        ("redis://127.0.0.1:abc/1", "the port must be a number"),
        ("redis://default:EntirePassword#@127.0.0.1:6379/9", "must be percent-encoded"),
        ("rediss://default:Xk9?pQsecret@127.0.0.1:6379/9", "must be percent-encoded"),
    ],
)
def test_a_redis_url_redis_py_cannot_use_stops_start_up(url, why):
    """It started, then failed at the first request (exit 1, a Python error)."""
    with pytest.raises(ConfigError, match="REDIS_URL") as caught:
        load_settings({"REDIS_URL": url})
    assert why in str(caught.value)
    assert "Password" not in str(caught.value) and "Xk9" not in str(caught.value)


@pytest.mark.parametrize("name", ["API_SERVICE_ID", "API_SERVICE_SECRET"])
def test_a_service_credential_with_a_line_break_stops_start_up(name):
    """Sent in a header of every secrets request, where it failed with a bare ValueError."""
    value = "s3cr3t-from-a-file\n"
    with pytest.raises(ConfigError, match=name) as caught:
        load_settings({name: value})
    assert "line break" in str(caught.value)
    if name == "API_SERVICE_SECRET":  # a secret's value is never repeated
        assert "s3cr3t" not in str(caught.value)
