"""Strict JSON out, whatever came in: every file and body facecert writes is
RFC 8259 JSON in valid UTF-8 that any reader takes.

Python's ``json`` writes ``NaN`` and ``Infinity`` (a peer's ``1e400`` parses
to ``inf``), keeps lone surrogates (``"\\udfff"``, or header bytes decoded
with ``surrogateescape``) that UTF-8 cannot encode, and writes integers of
any size, which JavaScript readers (the Allure report, the live page) round
beyond 2**53. :func:`strict_value` makes a copy a strict writer accepts:

* a non-finite float becomes the string naming it (``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``);
* a lone surrogate becomes U+FFFD (the raw bytes, where they matter, are kept
  elsewhere: capture bodies are base64, the mock server stores request bytes);
* with ``unsafe_ints_as_text`` an integer beyond ±(2**53 − 1) becomes its
  decimal string. Findings use it for what they quote (``expected``,
  ``actual``); message bodies (a mock server's answers) keep exact integers,
  which JSON allows and a peer may need echoed;
* anything else a JSON encoder refuses becomes its ``repr``.

:func:`dumps_strict` is the one encoder to call; :func:`loads_strict` the
parser for JSON we accept from a person or a file (no NaN/Infinity tokens,
no overflowing numbers).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

SAFE_INTEGER = 2**53 - 1  # largest integer an IEEE 754 double, hence every JSON reader, holds exactly (I-JSON)
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
# what json.dumps(ensure_ascii=True) writes for a lone surrogate (a pair, as for an emoji, is fine)
_LONE_ESCAPE = re.compile(r"\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (ASCII text is returned as is)."""
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def printable(text: str) -> str:
    """``text`` for a terminal, a log line or an XML file: control characters
    and lone surrogates written as escapes (``\\x1b``, ``\\udfff``), so a
    hostile key can neither drive the operator's terminal nor break a report."""
    if text.isascii() and text.isprintable():
        return text
    return _UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


def strict_value(value: Any, *, unsafe_ints_as_text: bool = False) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` writes as
    strict JSON in valid UTF-8 (iterative: a deep value cannot exhaust the stack)."""
    root: list[Any] = [None]
    copies: dict[int, Any] = {}
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, key, node = stack.pop()
        if isinstance(node, (dict, list, tuple)) and id(node) in copies:
            parent[key] = copies[id(node)]
        elif isinstance(node, dict):
            copy: dict[str, Any] = {}
            copies[id(node)] = copy
            for name, item in node.items():
                text = _key(name)
                copy[text] = None
                stack.append((copy, text, item))
            parent[key] = copy
        elif isinstance(node, (list, tuple)):
            items: list[Any] = [None] * len(node)
            copies[id(node)] = items
            stack.extend((items, index, item) for index, item in enumerate(node))
            parent[key] = items
        else:
            parent[key] = _scalar(node, unsafe_ints_as_text)
    return root[0]


def _key(name: Any) -> str:
    if isinstance(name, str):
        return clean_text(name)
    scalar = _scalar(name, True)
    return scalar if isinstance(scalar, str) else json.dumps(scalar)


def _scalar(node: Any, unsafe_ints_as_text: bool) -> Any:
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, str):
        return clean_text(node)
    if isinstance(node, int):
        return str(node) if unsafe_ints_as_text and abs(node) > SAFE_INTEGER else int(node)
    if isinstance(node, float):
        if math.isfinite(node):
            return node
        return "NaN" if math.isnan(node) else _NON_FINITE[node]
    return clean_text(repr(node))


def dumps_strict(value: Any, *, unsafe_ints_as_text: bool = False, **options: Any) -> str:
    """Strict JSON text of ``value`` (``ensure_ascii=False`` unless told
    otherwise; other options go to :func:`json.dumps`). The plain encoder
    runs first; only a value it refuses, or whose text is not valid UTF-8,
    is copied by :func:`strict_value`."""
    options.setdefault("ensure_ascii", False)
    if not unsafe_ints_as_text:
        try:
            if len(options) == 1 and not options["ensure_ascii"]:
                text = _PLAIN.encode(value)  # the usual options: json.dumps would make an encoder per call
            else:
                text = json.dumps(value, allow_nan=False, **options)
            if _valid_utf8(text, options["ensure_ascii"]):
                return text
        except (TypeError, ValueError):
            pass
    return json.dumps(strict_value(value, unsafe_ints_as_text=unsafe_ints_as_text), allow_nan=False, **options)


_PLAIN = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _valid_utf8(text: str, ascii_escapes: bool) -> bool:
    """No lone surrogate in the encoder's text (escaped, or as a code point)."""
    if ascii_escapes:
        return "\\ud" not in text or _LONE_ESCAPE.search(text) is None
    return text.isascii() or _SURROGATE.search(text) is None


def loads_strict(raw: bytes | str, *, allow_surrogates: bool = False) -> Any:
    """Parse JSON that facecert accepts from a file or a person: no
    NaN/Infinity tokens, no number that overflows a float (``1e400``) and,
    unless allowed, no lone surrogate. ValueError says what is wrong."""
    value = _strict_loads(raw)
    if allow_surrogates:
        return value
    escapes = isinstance(raw, str) or b"\\u" in raw  # UTF-8 bytes hold a surrogate only as an escape
    if escapes and _has_surrogate(value):
        raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff), which UTF-8 cannot carry")
    return value


def _has_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} does not fit a 64-bit float")
    return number


# built once: json.loads with hooks builds a decoder per call, which cost as much as reading a capture line
_STRICT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


# the decoder's scanner (an instance attribute the type stubs do not declare) and json.decoder.WHITESPACE
_STRICT_SCAN: Callable[[str, int], tuple[Any, int]] = vars(_STRICT_DECODER)["scan_once"]
_WHITESPACE: Callable[[str, int], re.Match[str]] = vars(json.decoder)["WHITESPACE"].match


def _strict_loads(raw: bytes | str) -> Any:
    """``json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)``, same errors."""
    if isinstance(raw, str):
        if raw.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", raw, 0)
        return _STRICT_DECODER.decode(raw)
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError(f"the JSON object must be str, bytes or bytearray, not {raw.__class__.__name__}")
    if raw[:1] != b"{" or raw[1:2] == b"\x00":  # json.detect_encoding says UTF-8 for anything else
        return _STRICT_DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    # a JSON object in UTF-8 (a capture's line): JSONDecoder.decode and raw_decode inlined, same errors
    return scan_whole(_STRICT_SCAN, raw.decode("utf-8", "surrogatepass"), 0)


def scan_whole(scan: Callable[[str, int], tuple[Any, int]], text: str, start: int) -> Any:
    """``JSONDecoder.decode`` with the decoder's scanner ``scan`` from ``start`` (after any leading
    whitespace), the same errors: one Python frame where json's decode and raw_decode are two."""
    try:
        value, end = scan(text, start)
    except StopIteration as err:
        raise json.JSONDecodeError("Expecting value", text, err.value) from None
    end = _WHITESPACE(text, end).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value
