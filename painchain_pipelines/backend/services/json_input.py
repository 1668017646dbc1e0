"""What JSON the API accepts, checked in one walk wherever JSON comes in (request bodies, JSON
text in config textareas, batch items), so that nothing stored can fail to be stored or read
back, and nothing is silently altered:

* objects and arrays nest at most MAX_JSON_DEPTH levels, counting from the request body (or
  from the top of a JSON text);
* integers fit in 64 bits (-2^63 .. 2^64-1): larger ones must be sent as strings, never rounded;
* numbers are finite (no NaN or Infinity);
* strings and keys are valid Unicode (no lone UTF-16 surrogates such as "\\ud800") and hold no
  NUL characters (PostgreSQL cannot store them).

A problem is reported with the path to the value (never the value itself: it may be a secret).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_DEPTH = 64
DEPTH_PATH_SHOWN = 5
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

TOO_DEEP = f"is nested more than {MAX_JSON_DEPTH} levels deep"
BIG_INT = "integers must fit in 64 bits; send larger numbers as strings"
NOT_FINITE = "numbers must be finite (NaN and Infinity are not JSON)"
SURROGATE = "must be valid Unicode (a lone surrogate such as \\ud800 is not)"
SURROGATE_KEY = "has a key that is not valid Unicode (a lone surrogate such as \\ud800)"
NUL = "must not contain NUL (\\u0000) characters"
NUL_KEY = "has a key containing a NUL (\\u0000) character"


class JsonProblem(ValueError):
    """`path` leads from the checked value to the offending one; str(self) says what is wrong."""

    def __init__(self, path: tuple[str | int, ...], msg: str):
        super().__init__(msg)
        self.path = path
        self.msg = msg


def _string_problem(value: str) -> str | None:
    if "\x00" in value:
        return NUL
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return SURROGATE
    return None


def _walk(value: Any, depth: int) -> tuple[tuple[str | int, ...], str] | None:
    kind = type(value)
    if kind is str:
        problem = _string_problem(value)
        return ((), problem) if problem else None
    if kind is int:
        return ((), BIG_INT) if not INT_MIN <= value <= INT_MAX else None
    if kind is float:
        return ((), NOT_FINITE) if not math.isfinite(value) else None
    if kind is dict:
        if depth > MAX_JSON_DEPTH:
            return (), TOO_DEEP
        for key, item in value.items():
            if type(key) is str:
                problem = _string_problem(key)
                if problem:
                    return (), (NUL_KEY if problem is NUL else SURROGATE_KEY)
            found = _walk(item, depth + 1)
            if found:
                return (key, *found[0]), found[1]
        return None
    if kind is list:
        if depth > MAX_JSON_DEPTH:
            return (), TOO_DEEP
        for index, item in enumerate(value):
            found = _walk(item, depth + 1)
            if found:
                return (index, *found[0]), found[1]
        return None
    return None


def check_json(value: Any, *, depth: int = 1) -> None:
    """Raise JsonProblem when `value` (parsed JSON whose top sits at nesting level `depth`)
    breaks a rule above. A nesting problem names the first DEPTH_PATH_SHOWN steps of the path
    (enough for the field, e.g. configSchema.fields.0.default, without 64 steps of noise)."""
    found = _walk(value, depth)
    if found:
        path, msg = found
        if msg is TOO_DEEP:
            path = path[:DEPTH_PATH_SHOWN]
        raise JsonProblem(path, msg)


def parse_json_text(text: str) -> Any:
    """Parse JSON text that a value carries (a config textarea); raise ValueError with a message
    for people that names where (not what) the problem is."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    found = _walk(value, 1)
    if found:
        path, msg = found
        if msg is TOO_DEEP:
            raise ValueError(TOO_DEEP)
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        raise ValueError(f"at {where}: {msg}" if where else msg)
    return value


def parse_json_body(body: bytes) -> Any:
    """The request body parsed exactly (integers stay integers of any size, to be checked).
    Raises json.JSONDecodeError, UnicodeDecodeError, or JsonProblem (path from the body)."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise JsonProblem((), TOO_DEEP) from None
    check_json(value)
    return value
