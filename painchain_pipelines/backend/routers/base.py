"""The route class of every API router.

* JSON bodies are parsed here, exactly (big integers are not rounded), and checked once against
  the rules of services/json_input.py: a body that breaks one is a 422 naming the field, before
  any model sees it. (The batch endpoint parses its own body, per item.)
* A query stopped by its time budget (database.py) is a 503 saying how to narrow it, never a 500.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError

from painchain_pipelines.backend.database import is_query_timeout
from painchain_pipelines.backend.errors import field_errors
from painchain_pipelines.backend.responses import FastJSONResponse
from painchain_pipelines.backend.services.json_input import JsonProblem, parse_json_body

TIMEOUT_STATUS = 503
NARROW_HINT = ("narrow it: a shorter since/until range, a connector, integrationId or project filter, "
               "fewer tags or a more specific q")


def timeout_response(request: Request) -> Response:
    db = request.app.state.ctx.db
    if request.method in ("GET", "HEAD"):
        detail = f"this query ran longer than {db.read_timeout:g} s and was stopped; {NARROW_HINT}"
    else:
        detail = (f"the database did not finish this request within {db.write_timeout:g} s and it was "
                  "rolled back; try again later")
    return FastJSONResponse(status_code=TIMEOUT_STATUS, content={"detail": detail}, headers={"Retry-After": "5"})


def is_json_content_type(value: str | None) -> bool:
    if not value:
        return False
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class _ParsedBodyRequest(Request):
    """A request whose JSON body was already parsed (and checked) by ApiRoute."""

    async def json(self) -> Any:
        if hasattr(self, "parsed"):
            return self.parsed
        return await super().json()


async def _with_checked_body(request: Request) -> Request:
    if not is_json_content_type(request.headers.get("content-type")):
        return request  # FastAPI answers a body it will not parse as JSON itself (422)
    parsed = _ParsedBodyRequest(request.scope, request.receive)
    body = await parsed.body()
    if not body:
        return parsed
    try:
        parsed.parsed = parse_json_body(body)
    except json.JSONDecodeError as exc:
        raise field_errors([{"loc": ("body", exc.pos), "msg": f"JSON decode error: {exc.msg}",
                             "type": "json_invalid"}]) from None
    except UnicodeDecodeError:
        raise field_errors([{"loc": ("body",), "msg": "is not UTF-8 encoded JSON", "type": "json_invalid"}]) from None
    except JsonProblem as problem:
        raise field_errors([{"loc": ("body", *problem.path), "msg": problem.msg, "type": "value_error"}]) from None
    return parsed


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        has_body = self.body_field is not None

        async def route_handler(request: Request) -> Response:
            if has_body:
                request = await _with_checked_body(request)
            try:
                return await handler(request)
            except DBAPIError as exc:
                request.app.state.ctx.metrics.count_database_error(exc)
                if is_query_timeout(exc):
                    return timeout_response(request)
                raise

        return route_handler


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def add_method_answers(router: APIRouter) -> None:
    """For every path of `router` (call it after the last route): OPTIONS answers 204 and any
    method the path does not have 405, both with an `Allow` that lists all the path's methods.
    (Routing alone answers 405 with the methods of the first route of the path only.)"""
    by_path: dict[str, set[str]] = {}
    for route in router.routes:
        if isinstance(route, APIRoute):
            # route.path carries the router's prefix, which add_api_route adds again
            by_path.setdefault(route.path.removeprefix(router.prefix), set()).update(route.methods)
    for path, methods in by_path.items():
        allow = ", ".join(m for m in HTTP_METHODS if m in methods or m == "OPTIONS")
        others = [m for m in HTTP_METHODS if m not in methods]

        async def answer(request: Request, allow: str = allow) -> Response:
            headers = {"Allow": allow}
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
            return FastJSONResponse(status_code=405, content={"detail": "Method Not Allowed"}, headers=headers)

        router.add_api_route(path, answer, methods=others, include_in_schema=False)
