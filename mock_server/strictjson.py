"""Strict JSON out: every body, row and export the mock server writes is
RFC 8259 JSON in valid UTF-8, whatever a hostile device sent in.

Python's ``json`` happily writes ``NaN``/``Infinity`` (a device's ``1e400``
parses to ``inf``) and keeps lone surrogates (``"\\udfff"``) that cannot be
encoded as UTF-8. The fast path is the plain encoder with ``allow_nan=False``;
only a value it refuses is walked and cleaned: non-finite numbers become
strings naming them, lone surrogates become U+FFFD. The raw request bytes are
stored untouched elsewhere, so nothing is lost by cleaning a copy.
"""

from __future__ import annotations

import json
import math
from typing import Any

REPLACEMENT = "\ufffd"
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def clean_text(text: str) -> str:
    """The string with every lone surrogate replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def clean(value: Any) -> Any:
    """A copy of a JSON-like value that strict JSON can carry (iterative walk,
    so a deep value cannot exhaust the stack)."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, key, node = stack.pop()
        if isinstance(node, dict):
            copy: dict[str, Any] = {}
            for k, v in node.items():
                name = clean_text(k) if isinstance(k, str) else str(k)
                copy[name] = v
                stack.append((copy, name, v))
            parent[key] = copy
        elif isinstance(node, (list, tuple)):
            items = list(node)
            parent[key] = items
            stack.extend((items, i, v) for i, v in enumerate(items))
        else:
            parent[key] = _scalar(node)
    return root[0]


def _scalar(node: Any) -> Any:
    if isinstance(node, str):
        return clean_text(node)
    if isinstance(node, float) and not math.isfinite(node):
        return "NaN" if math.isnan(node) else _NON_FINITE[node]
    return node


def dumps(value: Any, **options: Any) -> str:
    """Strict JSON text (``ensure_ascii=False`` unless told otherwise)."""
    options.setdefault("ensure_ascii", False)
    try:
        text = json.dumps(value, allow_nan=False, **options)
        text.encode("utf-8")
        return text
    except (ValueError, UnicodeEncodeError):
        return json.dumps(clean(value), allow_nan=False, **options)


def to_json(value: Any, **options: Any) -> bytes:
    """Strict JSON as UTF-8 bytes (what goes on the wire)."""
    return dumps(value, **options).encode("utf-8")


def loads_strict(raw: bytes | str) -> Any:
    """Parse JSON the control API accepts: no NaN/Infinity tokens, no number
    that overflows a float (``1e400``), no lone surrogate. ValueError otherwise."""
    value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff), which UTF-8 cannot carry") from None
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} does not fit a 64-bit float")
    return number
