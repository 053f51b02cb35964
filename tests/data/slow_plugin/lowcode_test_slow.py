"""A dataSource type ``sleep``: ``run`` sleeps (draining on SIGTERM), ``stubborn`` never ends."""

from __future__ import annotations

import asyncio

from marshmallow import Schema, fields, validate

from lowcode_runtime import Call, DataSourceType, Result, hookimpl


class Definition(Schema):
    pass


class RunParams(Schema):
    seconds = fields.Float(required=True, validate=validate.Range(min=0, max=30))


async def run(call: Call) -> Result:
    if call.operation == "stubborn":
        # A bad plugin: it ignores every cancellation, the deadline's and shutdown's.
        while True:
            try:
                await asyncio.sleep(call.params["seconds"])
            except asyncio.CancelledError:
                pass
    await asyncio.sleep(call.params["seconds"])
    return Result({"slept": call.params["seconds"]})


@hookimpl
def register_datasource_types() -> list[DataSourceType]:
    return [
        DataSourceType(
            name="sleep",
            definition_schema=Definition(),
            operations={"run": RunParams(), "stubborn": RunParams()},
            handler=run,
        )
    ]
