"""Names of the structured log events, in one place so that dashboards and code agree."""

CALL_START = "dataSource.call.start"
CALL_SUCCESS = "dataSource.call.success"
CALL_ERROR = "dataSource.call.error"

HTTP_REQUEST = "http.request"
HTTP_UNHANDLED = "http.unhandled_error"
HTTP_UNPARSABLE = "http.unparsable_request"

SERVICE_STARTING = "service.starting"
SERVICE_TOKEN_GENERATED = "service.token_generated"
SERVICE_STARTED = "service.started"
SERVICE_STOPPING = "service.stopping"
SERVICE_STOPPED = "service.stopped"
LIBRARY_LOG = "library.log"
CONFIG_WARNING = "service.config_warning"
SERVICE_RESOURCE_FAILED = "service.resource_failed"
COMMAND_FAILED = "service.command_failed"
CORS_SKIPPED = "cors.skipped"

PLUGIN_LOADED = "plugin.loaded"
PLUGIN_LOAD_FAILED = "plugin.load_failed"
PLUGIN_REFUSED = "plugin.refused"
HOOK_CALL = "plugin.hook_call"
PLUGIN_BAD_RESULT = "plugin.bad_result"
PLUGIN_BAD_ERROR = "plugin.bad_error"
PLUGIN_BAD_OPENAPI = "plugin.bad_openapi"
PLUGIN_HOOK_FAILED = "plugin.hook_failed"
PLUGIN_HANDLER_OUTLIVED = "plugin.handler_outlived_cancellation"

SECRETS_STALE = "secrets.stale_served"
SECRETS_FETCH_FAILED = "secrets.fetch_failed"
SECRETS_CACHE_FAILED = "secrets.cache_failed"
SECRETS_SHORT_VALUE = "secrets.short_value"

DB_EMBEDDED_STARTED = "db.embedded_started"
DB_EMBEDDED_STOPPED = "db.embedded_stopped"
DB_MIGRATION = "db.migration"
DB_STATEMENT_CANCELLED = "db.statement_cancelled"
DB_UNAVAILABLE = "db.unavailable"

# Logged by the core's outbound client, named after the dataSource type that used it.
EGRESS_BLOCKED = "{type}.egress_blocked"
REST_EGRESS_BLOCKED = EGRESS_BLOCKED.format(type="rest")
RATE_LIMIT_STORE_FAILED = "ratelimit.store_failed"
