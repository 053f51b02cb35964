"""Input schemas that answer the usual input by hand and leave the rest to marshmallow."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema


class PlainFirst(Schema):
    """A schema that answers plainly valid input by hand, and leaves the rest to marshmallow.

    ``plainly_valid`` returns what marshmallow would load, or None when unsure (a subclass's
    tests hold the two to the same answers); a warm call skips the schema's machinery,
    which costs more than most of the work the call asks for.
    """

    def plainly_valid(self, data: Any) -> dict[str, Any] | None:
        return None

    def load(  # type: ignore[override]
        self,
        data: Any,
        *,
        many: bool | None = None,
        partial: Any = None,
        unknown: Any = None,
    ) -> Any:
        if many is None and partial is None and unknown is None:
            loaded = self.plainly_valid(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)
