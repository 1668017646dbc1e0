"""Responses for the hot paths (timeline pages, batch answers): orjson renders them several
times faster than the standard library."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
