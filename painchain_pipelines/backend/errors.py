"""Errors in one shape. Every 4xx body has `detail`: a message, or for validation errors
FastAPI's list of `{loc, msg, type}` so the field at fault is always named."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError


def field_error(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> RequestValidationError:
    """A 422 naming the field at `loc`, e.g. ("body", "config", "repositories")."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type_}])


def field_errors(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError(errors)


def not_found(what: str, ident: object) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} {ident!r} not found")


def forbidden(msg: str) -> HTTPException:
    return HTTPException(status_code=403, detail=msg)


def humanize(error: dict[str, Any]) -> dict[str, Any]:
    """Make pydantic's wording readable where our constraints are terse."""
    if error.get("type") == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == r"\S":
        return {**error, "msg": "must not be blank"}
    return error


async def validation_exception_handler(request, exc: RequestValidationError):
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse

    errors = [humanize(e) for e in exc.errors()]
    for e in errors:
        e.pop("url", None)
        # The rejected value is not echoed: it may be a whole integration config, secrets included.
        e.pop("input", None)
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})
