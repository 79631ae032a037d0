"""Bodies that break one bound of strict, bounded JSON each: a valid message
plus one hostile part. The engine's tests, the reference peers' fault knobs
and the hostile corpus share them, so each rule has one way to be broken
and the sizes follow the contract's limits.

The hostile part goes into a field the document does not define (``x_…``),
so the rest of the message stays valid: the only error is the rule's (the
extra field is an info, MSG-UNKNOWN-FIELD, when the message is judged).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from facecert.core.contract import Limits, get_contract


def _with_raw(body: dict[str, Any], name: str, raw_value: str) -> bytes:
    """``body`` with one more member whose value is written as given (JSON text)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    inner = text[1:-1]
    return ("{" + inner + ("," if inner else "") + json.dumps(name) + ":" + raw_value + "}").encode("utf-8")


def _too_deep(body: dict[str, Any], limits: Limits) -> bytes:
    return _with_raw(body, "x_nested", "[" * limits.max_depth + "]" * limits.max_depth)  # the body is level 1


def _too_many(body: dict[str, Any], limits: Limits) -> bytes:
    return _with_raw(body, "x_many", json.dumps({f"k{i}": 0 for i in range(limits.max_members + 1)}))


def _string_too_long(body: dict[str, Any], limits: Limits) -> bytes:
    return _with_raw(body, "x_text", json.dumps("x" * (limits.max_string_chars + 1)))


def _number_too_large(body: dict[str, Any], limits: Limits) -> bytes:
    return _with_raw(body, "x_big", str(limits.max_integer + 1))


def _not_finite(body: dict[str, Any], limits: Limits) -> bytes:
    return _with_raw(body, "x_number", "1e400")


def _bad_unicode(body: dict[str, Any], limits: Limits) -> bytes:
    return _with_raw(body, "x_text", '"\\udfff"')


def _duplicate_key(body: dict[str, Any], limits: Limits) -> bytes:
    name = next(iter(body))
    return _with_raw(body, name, json.dumps(body[name]))


BREAKERS: dict[str, Callable[[dict[str, Any], Limits], bytes]] = {
    "MSG-TOO-DEEP": _too_deep,
    "MSG-TOO-MANY-MEMBERS": _too_many,
    "MSG-STRING-TOO-LONG": _string_too_long,
    "MSG-NUMBER-TOO-LARGE": _number_too_large,
    "MSG-NOT-FINITE": _not_finite,
    "MSG-BAD-UNICODE": _bad_unicode,
    "MSG-DUPLICATE-KEY": _duplicate_key,
}


def break_body(rule: str, body: dict[str, Any], limits: Limits | None = None) -> bytes:
    """``body`` as JSON bytes that break exactly ``rule`` (one of :data:`BREAKERS`)."""
    return BREAKERS[rule](body, limits or get_contract().limits)
