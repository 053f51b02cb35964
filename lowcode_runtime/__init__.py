"""lowcode-runtime: runs a low-code app's dataSources on the server, in preview mode.

The names of ``__all__`` are the public API a plugin may import (with the error classes of
:mod:`lowcode_runtime.errors` and the pytest fixtures of :mod:`lowcode_runtime.testing`). They
stay, with their meaning, across minor versions: one is removed or changed incompatibly only in
a major version, after a minor version that warns. Every other module is internal.
``tests/test_plugin_api.py`` pins the list; ``docs/plugins.md`` documents each name.
"""

__version__ = "0.1.0"

from lowcode_runtime import errors  # noqa: E402
from lowcode_runtime.envelope import ok_response  # noqa: E402
from lowcode_runtime.fields import (  # noqa: E402
    OutboundHeaders,
    Scalar,
    StrictBoolean,
    StrictInteger,
    check_header_names,
)
from lowcode_runtime.hookspecs import hookimpl  # noqa: E402
from lowcode_runtime.http_client import make_session  # noqa: E402
from lowcode_runtime.masking import mask, register_secret  # noqa: E402
from lowcode_runtime.outbound import USER_AGENT, Outbound, OutboundClient  # noqa: E402
from lowcode_runtime.plugin_routes import describe_route  # noqa: E402
from lowcode_runtime.redact import Redactor  # noqa: E402
from lowcode_runtime.templates import Context as TemplateContext  # noqa: E402
from lowcode_runtime.templates import (  # noqa: E402
    MissingParam,
    check_templates,
    missing_param,
    render_entry,
    render_headers,
    secret_names,
    whole_ref,
)
from lowcode_runtime.templates import Ref as TemplateRef  # noqa: E402
from lowcode_runtime.types import (  # noqa: E402
    Call,
    DataSourceType,
    Deadline,
    PluginInfo,
    Result,
    SecretsSource,
)
from lowcode_runtime.upstream import (  # noqa: E402
    UpstreamAnswer,
    decode_text,
    is_json_type,
    parse_json,
    upstream_status,
)
from lowcode_runtime.urls import url_problem  # noqa: E402

__all__ = [
    "USER_AGENT",
    "Call",
    "DataSourceType",
    "Deadline",
    "MissingParam",
    "Outbound",
    "OutboundClient",
    "PluginInfo",
    "Redactor",
    "Result",
    "OutboundHeaders",
    "Scalar",
    "SecretsSource",
    "StrictBoolean",
    "StrictInteger",
    "TemplateContext",
    "TemplateRef",
    "UpstreamAnswer",
    "__version__",
    "check_header_names",
    "check_templates",
    "decode_text",
    "describe_route",
    "errors",
    "hookimpl",
    "is_json_type",
    "make_session",
    "mask",
    "missing_param",
    "ok_response",
    "parse_json",
    "register_secret",
    "render_entry",
    "render_headers",
    "secret_names",
    "upstream_status",
    "url_problem",
    "whole_ref",
]
