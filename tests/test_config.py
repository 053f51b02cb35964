"""Configuration of API.md section 1 and the command line around it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lowcode_runtime.config import ConfigError, Settings, load_settings, variables


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "lowcode_runtime", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_match_the_contract():
    settings = load_settings({})
    assert settings == Settings()
    assert (settings.port, settings.host, settings.log_level, settings.log_format) == (
        3001,
        "0.0.0.0",
        "info",
        "json",
    )
    assert settings.rate_limit_max == 300 and settings.rate_limit_window_ms == 60000
    assert settings.request_timeout_ms == 30000 and settings.body_limit_bytes == 1048576
    assert (
        settings.cors_origins == ("*",) and settings.rest_max_response_bytes == 10485760
    )
    assert settings.database_pool_max == 10 and settings.secrets_cache_ttl_ms == 60000
    assert settings.secrets_api_timeout_ms == 5000
    assert not settings.allow_destructive_migrations and not settings.apply_seeds


def test_every_contract_variable_is_known_and_one_of_the_service_own():
    expected = {
        "RUNTIME_BACKEND_EVENT_LOOP",  # not in the contract: a choice of the operator
        "PORT",
        "HOST",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "RUNTIME_BACKEND_AUTH_TOKEN",
        "RUNTIME_BACKEND_RATE_LIMIT_MAX",
        "RUNTIME_BACKEND_RATE_LIMIT_WINDOW_MS",
        "RUNTIME_BACKEND_REQUEST_TIMEOUT_MS",
        "RUNTIME_BACKEND_BODY_LIMIT_BYTES",
        "RUNTIME_BACKEND_CORS_ORIGINS",
        "RUNTIME_BACKEND_TRUSTED_PROXIES",
        "RUNTIME_BACKEND_EGRESS_ALLOW",
        "RUNTIME_BACKEND_REST_MAX_RESPONSE_BYTES",
        "REDIS_URL",
        "DATABASE_URL",
        "DATABASE_POOL_MAX",
        "PREVIEW_ALLOW_DESTRUCTIVE_MIGRATIONS",
        "PREVIEW_APPLY_SEEDS",
        "API_BASE_URL",
        "API_SERVICE_ID",
        "API_SERVICE_SECRET",
        "SECRETS_CACHE_TTL_MS",
        "SECRETS_API_TIMEOUT_MS",
        "SECRETS_FILE",
    }
    assert set(variables()) == expected


def test_values_are_parsed():
    settings = load_settings(
        {
            "PORT": "8080",
            "PREVIEW_APPLY_SEEDS": "true",
            "RUNTIME_BACKEND_CORS_ORIGINS": "https://a.test, https://b.test",
            "RUNTIME_BACKEND_TRUSTED_PROXIES": "10.0.0.0/8,::1",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.port == 8080 and settings.apply_seeds is True
    assert settings.cors_origins == ("https://a.test", "https://b.test")
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1")


@pytest.mark.parametrize(
    "name,value",
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("RUNTIME_BACKEND_RATE_LIMIT_MAX", "-1"),
        ("LOG_LEVEL", "loud"),
        ("LOG_FORMAT", "xml"),
        ("PREVIEW_APPLY_SEEDS", "maybe"),
        ("RUNTIME_BACKEND_TRUSTED_PROXIES", "not-an-ip"),
        ("REDIS_URL", "http://x"),
        ("RUNTIME_BACKEND_REQUEST_TIMEOUT_MS", "0"),
        ("API_BASE_URL", "not a url"),
        ("RUNTIME_BACKEND_EGRESS_ALLOW", "10.0.0.0/33"),
        ("RUNTIME_BACKEND_EGRESS_ALLOW", "not a host"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_a_bad_value_exits_2_with_one_line():
    result = run_cli("serve", PORT="abc")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "PORT" in lines[0] and "integer" in lines[0]


def test_a_flag_overrides_its_variable():
    assert run_cli("serve", "--port", "99999", PORT="3001").returncode == 2


@pytest.mark.parametrize(
    "args,env,named",
    [
        (("--port", "99999"), {"PORT": "3001"}, "--port='99999' is invalid"),
        (("--host", "999.1.1.1"), {}, "--host='999.1.1.1' is invalid"),
        ((), {"HOST": "999.1.1.1"}, "HOST='999.1.1.1' is invalid"),
    ],
)
def test_a_bad_value_from_a_flag_names_the_flag(args, env, named):
    result = run_cli("serve", *args, **env)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2
    assert len(lines) == 1 and named in lines[0], result.stderr


def test_help_explains_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("serve", "plugins", "migrate", "status", "environment"):
        assert word in result.stdout
    serve_help = run_cli("serve", "--help").stdout
    assert "--workers" in serve_help and "--port" in serve_help


def test_plugins_command_lists_builtin_types():
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    assert '"lowcode-runtime"' in result.stdout


@pytest.mark.parametrize(
    "name,value",
    [
        ("RUNTIME_BACKEND_AUTH_TOKEN", "has a space-secret"),
        ("REDIS_URL", "http://user:hunter2-pass@cache"),
    ],
)
def test_a_bad_secret_is_named_but_not_echoed(name, value):
    result = run_cli("plugins", **{name: value})
    assert result.returncode == 2
    assert name in result.stderr
    assert value not in result.stderr and "hunter2" not in result.stderr


def test_keywords_are_read_case_insensitively():
    settings = load_settings({"LOG_LEVEL": "WARNING", "LOG_FORMAT": "Pretty"})
    assert (settings.log_level, settings.log_format) == ("warning", "pretty")


def test_a_short_configured_token_is_accepted_with_a_warning(logs):
    from lowcode_runtime.cli import generate_token_if_missing

    settings = generate_token_if_missing(Settings(auth_token="short"))
    assert settings.auth_token == "short"
    assert "shorter than" in logs.events("service.config_warning")[0]["message"]
    assert "short" not in logs.events("service.config_warning")[0].get("token", "")


def test_the_service_token_is_masked_in_later_lines_wherever_it_stands(logs):
    from lowcode_runtime.cli import generate_token_if_missing
    from lowcode_runtime.logs import logger

    token = "configured-token-for-masking-0123456789"
    generate_token_if_missing(Settings(auth_token=token))
    logger.bind(event="test.line").warning(f"http://{token}.invalid/ failed")

    assert token not in logs.text
    made = generate_token_if_missing(Settings()).auth_token
    assert made in logs.events("service.token_generated")[0]["message"]
    logger.bind(event="test.line").warning(f"plugin saw {made}")
    assert logs.text.count(made) == 1, "only the line that announces it"


def test_a_failing_command_prints_one_masked_line():
    result = run_cli(
        "status", "p1", DATABASE_URL="mysql://user:supersecretpw@db.invalid/x"
    )
    assert result.returncode == 1
    assert "supersecretpw" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_flag_stands_in_for_a_malformed_variable():
    assert load_settings({"PORT": "abc"}, port=3005).port == 3005
    with pytest.raises(ConfigError, match="--port="):
        load_settings({"PORT": "3001"}, port=70000)


@pytest.mark.parametrize("content", [None, "not json", "[1, 2]"])
def test_secrets_file_must_be_a_readable_json_object(tmp_path, content):
    path = tmp_path / "secrets.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="SECRETS_FILE"):
        load_settings({"SECRETS_FILE": str(path)})

    path.write_text('{"p1": {"TOKEN": "x"}}')
    assert load_settings({"SECRETS_FILE": str(path)}).secrets_file == str(path)


def test_cors_origins_may_not_be_empty():
    with pytest.raises(ConfigError, match="RUNTIME_BACKEND_CORS_ORIGINS"):
        load_settings({"RUNTIME_BACKEND_CORS_ORIGINS": " , "})


@pytest.mark.parametrize(
    "value,expected",
    [("true", True), ("True", True), ("TRUE", True), (" 1 ", True)]
    + [("false", False), ("False", False), ("FALSE", False), ("0", False)],
)
def test_booleans_take_true_or_false_in_any_case_or_1_or_0(value, expected):
    settings = load_settings(
        {"PREVIEW_APPLY_SEEDS": value, "PREVIEW_ALLOW_DESTRUCTIVE_MIGRATIONS": value}
    )
    assert settings.apply_seeds is expected
    assert settings.allow_destructive_migrations is expected


@pytest.mark.parametrize("value", ["yes", "on", "no", "off", "t", "f", "2", "truthy"])
def test_a_boolean_outside_the_documented_set_names_what_is_accepted(value):
    with pytest.raises(ConfigError) as raised:
        load_settings({"PREVIEW_APPLY_SEEDS": value})
    message = str(raised.value)
    assert message.startswith(f"PREVIEW_APPLY_SEEDS={value!r} is invalid")
    assert "true" in message and "false" in message and "1" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost"])
def test_host_takes_an_ip_address_or_a_name_that_resolves(host):
    assert load_settings({"HOST": host}).host == host


@pytest.mark.parametrize(("host", "bound"), [("[::1]", "::1"), (" [::] ", "::")])
def test_an_ipv6_host_may_come_in_brackets(host, bound):
    assert load_settings({"HOST": host}).host == bound


@pytest.mark.parametrize(
    "host",
    ["999.1.1.1", "no-such-host.invalid", "a b", "x" * 300, "[127.0.0.1]", "[::1"],
)
def test_a_host_that_is_no_address_is_refused_naming_it(host):
    with pytest.raises(ConfigError, match="HOST=.* is invalid: expected an IP address"):
        load_settings({"HOST": host})


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("*", ("*",)),
        ("https://App.Example.com/", ("https://app.example.com",)),
        ("http://localhost:5173, https://x.test:8443", ("http://localhost:5173", "https://x.test:8443")),
    ],
)  # fmt: skip
def test_cors_origins_are_kept_as_a_browser_writes_them(value, origins):
    assert (
        load_settings({"RUNTIME_BACKEND_CORS_ORIGINS": value}).cors_origins == origins
    )


@pytest.mark.parametrize(
    "value",
    ["not a url", "http://", "http://a.test/path", "ftp://a.test", "https://a.test:0"],
)
def test_a_cors_origin_a_browser_never_sends_is_refused_naming_it(value):
    with pytest.raises(
        ConfigError, match="is not an origin: write it as a browser sends it"
    ):
        load_settings({"RUNTIME_BACKEND_CORS_ORIGINS": f"https://ok.test,{value}"})
