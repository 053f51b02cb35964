"""The preview status of a project (6.5), read from its migrations log in one statement."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import Schema, fields, validate
from psycopg2 import sql

from lowcode_db.ddl import LOG_TABLE, qualified
from lowcode_db.migrations import read_owner
from lowcode_db.pool import Session
from lowcode_db.tenancy import schema_name
from lowcode_runtime.errors import SchemaConflict

STATUSES = ("absent", "ready", "blocked", "failed")


class PreviewStatusSchema(Schema):
    """The ``data`` of ``GET /preview/status/{projectId}``, for the OpenAPI document."""

    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    lastAppliedAt = fields.DateTime(
        required=True, allow_none=True, metadata={"description": "ISO 8601, UTC"}
    )
    lastError = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "the message of the last blocked or failed migration"},
    )


STATUS_QUERY = """
WITH latest AS (
  SELECT DISTINCT ON (data_source) outcome FROM {log} ORDER BY data_source, id DESC
)
SELECT (SELECT array_agg(outcome) FROM latest),
       (SELECT max(applied_at) FROM {log} WHERE outcome = 'applied'),
       (SELECT error FROM {log} WHERE outcome IN ('blocked', 'failed') ORDER BY id DESC LIMIT 1)
"""


async def read_status(session: Session, project_id: str) -> dict[str, Any]:
    """``{"status", "lastAppliedAt", "lastError"}``: ``absent`` until the schema exists.

    ``status`` is ``failed`` when the latest migration of any dataSource failed, else
    ``blocked`` when one was blocked, else ``ready``.
    """
    schema = schema_name(project_id)
    owner = await read_owner(session, schema)
    if owner is None:
        return {"status": "absent", "lastAppliedAt": None, "lastError": None}
    if owner != project_id:
        raise SchemaConflict(f"the preview schema {schema} belongs to another project")

    rows = await session.execute(
        sql.SQL(STATUS_QUERY).format(log=qualified(schema, LOG_TABLE))
    )
    outcomes, applied_at, error = rows[0]
    outcomes = set(outcomes or [])
    status = (
        "failed"
        if "failed" in outcomes
        else "blocked"
        if "blocked" in outcomes
        else "ready"
    )
    when = applied_at.astimezone(dt.UTC).isoformat() if applied_at else None
    return {"status": status, "lastAppliedAt": when, "lastError": error}
