"""orjson reads bodies (facecert.core.rules.message ``_Reader.read_fast``) and msgspec capture lines
(facecert.core.captures.jsonl ``_line_to_exchange``) only where they provably read as the hooked json
reader does: every body and line here, hand-made to sit on an edge or drawn at random, reads to the
same value, refusal and findings with the fast reader as without it."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from facecert.core.captures import jsonl
from facecert.core.contract import Limits, get_contract
from facecert.core.jsonsafe import loads_strict
from facecert.core.rules import message

EDGES = [
    b'{"device_id": "ID1", "time_stamp": 1700000000}',  # ordinary: orjson reads it
    b'{"url": "http://x/y", "snap_time": "2021-03-09 12:00:00"}',  # colons inside strings
    b'{"a": "x:y", "a": "z"}',  # a repeated key with a colon inside a string
    b'{"a" :1, "a" :":", "b":2}',  # a string that opens with a colon beside a repeated key
    b'{"k\\"ey": "v:a:l", "k\\"ey": 1}',  # an escaped quote: the quotes cannot tell strings apart
    b'{"k\\"ey": "v:a:l", "url": "http://x/y"}',
    b'{"a": "\\u003a", "a": 1}',  # an escaped colon
    b'{"a": {"b": 1, "b": 2}}',  # a repeated key, nested
    b'{"a": [{"b": 1}, {"b": 2}], "c": {"d": [1, 2.5, null]}}',
    b'{"a": [{"b": 1, "b": 1}]}',
    b'{"a": "{[", "b": 1}',  # brackets inside strings
    b'{"f": 123456789012345.123456789012345e-123456789012345}',  # three 15-digit runs
    b'{"f": -123456789012345.123456789012345E+308}',  # beyond a double
    b'{"f": 1.7976931348623157e308, "g": 5e-324, "h": -0.0, "i": -0}',
    b'{"n": 9007199254740991}',
    b'{"n": 9007199254740992}',  # 16 digits: the hooked reader
    b'{"n": 9223372036854775807, "m": 18446744073709551616}',
    b'{"n": 123456789012345, "s": "1234567890123456789"}',
    b'{"s": "\\ud800"}',  # a lone surrogate: orjson refuses, the hooked read finds it
    b'{"s": "\\ud83d\\ude00", "t": "\\u00e9\\n\\t\\/\\b\\f\\r\\"\\\\"}',
    b'{"s": "\xed\xa0\x80"}',  # a surrogate in UTF-8: not UTF-8
    b'{"s": "\xc0\xaf"}',  # overlong
    b'{"s": "\xf4\x90\x80\x80"}',  # beyond U+10FFFF
    b'{"s": "\xe6\xb5\x8b\xe8\xaf\x95"}',  # 测试
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": 1e400}',
    b'\xef\xbb\xbf{"a": 1}',
    b' \t\r\n{"a": 1}\r\n ',
    b'\x0c{"a": 1}',
    b'{"a": 1} {"b": 2}',
    b'{"a": 1,}',
    b'{"a": 01}',
    b'{"a": .5}',
    b'{"a": "\t"}',
    b"[1, 2]",
    b'"text"',
    b"7",
    b"",
    b"  ",
    b"{",
    b'{"a": ' + b"[" * 31 + b"]" * 31 + b"}",  # 32 levels: the bound
    b'{"a": ' + b"[" * 32 + b"]" * 32 + b"}",  # 33: MSG-TOO-DEEP
    b'{"a": [' + b"1," * 10_000 + b"1]}",  # members beyond the bound
    b'{"s": "' + b"x" * 70_000 + b'"}',  # a string beyond the bound
    b'{"image": "' + b"x" * 70_000 + b'"}',  # a content field: only the body bound
    # colons inside strings, nested, counted again from orjson's writing
    b'{"a": {"u": "http://x", "t": "12:00"}, "b": ["12:00", {"c": ":", "d": "::"}]}',
    b'{"a": {"u": "http://x", "u": "y"}, "b": "12:00"}',  # a repeated key beside them: the hooked read
    b'{"a": {"u": "http://x"}, "a": {"u": "http://y"}}',  # the dropped value holds colons too
    b'{"a": "x:y", "b": "z:", "a": "w"}',
]

DEFAULT = get_contract().limits
SMALL = DEFAULT.with_changes(max_string_chars=40, max_depth=2, max_members=3, max_values=6)  # orjson, tight bounds
NO_FAST = DEFAULT.with_changes(max_number_chars=4, max_integer=1000)  # bounds orjson cannot keep: never used


def _outcome(raw: bytes, limits: Limits) -> tuple[Any, ...]:
    parsed = message.parse_message(raw, limits, "x request", get_contract().content_fields)
    return (repr(parsed.value), parsed.failure, parsed.issues)


def _without_orjson(raw: bytes, limits: Limits, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    with monkeypatch.context() as patched:
        patched.setattr(message._Reader, "read_fast", lambda self, raw: message.NOT_PLAIN)
        return _outcome(raw, limits)


@pytest.mark.parametrize("limits", [DEFAULT, SMALL, NO_FAST], ids=["default", "small", "no-fast"])
@pytest.mark.parametrize("raw", EDGES, ids=range(len(EDGES)))
def test_a_body_reads_alike_with_and_without_orjson(
    raw: bytes, limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _outcome(raw, limits) == _without_orjson(raw, limits, monkeypatch)


def test_orjson_reads_ordinary_bodies_and_leaves_the_rest_to_the_hooks() -> None:
    reader = message._reader(DEFAULT)
    # ordinary bodies, colons and brackets in strings, three 15-digit runs, escapes, 32 levels, 测试, nested colons
    taken = {0, 1, 8, 10, 11, 19, 23, 28, 41, 46}
    for index, raw in enumerate(EDGES):
        value = reader.read_fast(raw)
        if index in taken:
            assert value == json.loads(raw), raw
        else:  # a repeated key, a backslash beside a colon in a string, a 16-digit run, NaN, not UTF-8, ...
            assert value is message.NOT_PLAIN, raw
    assert message._reader(NO_FAST).fast is False and message._reader(NO_FAST).read_fast(EDGES[0]) is message.NOT_PLAIN


def _random_body(rng: random.Random) -> bytes:
    """A small JSON-like body built to hit the fast path's edges: repeated keys, colons, quotes and
    backslashes in strings, numbers near the bounds, nesting, and now and then a broken token."""
    keys = ["a", "b", "a:b", 'q"', "c"]
    strings = ["x", "12:00:00", "http://h/p", ":", '"', "\\", "\u00e9", "\ud83d\ude00", "{[", ""]
    numbers = ["0", "-0", "1.5", "-2.5e-3", "9007199254740991", "9007199254740992", "123456789012345.5e300"]
    numbers += ["1e400", "NaN", "01", "18446744073709551616"]

    def value(depth: int) -> str:
        kind = rng.random()
        if kind < 0.3:
            return json.dumps(rng.choice(strings), ensure_ascii=rng.random() < 0.5)
        if kind < 0.6:
            return rng.choice(numbers)
        if kind < 0.7:
            return rng.choice(["true", "false", "null"])
        if kind < 0.85 and depth < 4:
            return "[" + ", ".join(value(depth + 1) for _ in range(rng.randrange(4))) + "]"
        if depth < 4:
            return obj(depth + 1)
        return "1"

    def obj(depth: int) -> str:
        members = [f"{json.dumps(rng.choice(keys))}{rng.choice([':', ' :', ': '])}{value(depth)}"]
        members += [f"{json.dumps(rng.choice(keys))}:{value(depth)}" for _ in range(rng.randrange(5))]
        return "{" + ",".join(members) + "}"

    return obj(0).encode("utf-8", "surrogatepass")


def test_random_bodies_read_alike_with_and_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261202)
    taken = 0
    for _ in range(3000):
        raw = _random_body(rng)
        for limits in (DEFAULT, SMALL):
            assert _outcome(raw, limits) == _without_orjson(raw, limits, monkeypatch), raw
        taken += message._reader(DEFAULT).read_fast(raw) is not message.NOT_PLAIN
    assert 300 < taken < 2700  # both ways are met often


# ---- capture lines ---------------------------------------------------------------------------------

GOOD = {"method": "POST", "path": "/taskRequest", "status": 200, "started": 1.5, "ended": 2.5, "request_b64": "e30="}
LINES = [
    json.dumps(GOOD).encode(),
    json.dumps({**GOOD, "request_headers": {"a": "\ud800"}}).encode(),  # a lone surrogate a recorder kept
    json.dumps({**GOOD, "status": 2**70}).encode(),  # beyond 64 bits: orjson would make it a float
    json.dumps({**GOOD, "started": 2**70, "stall_started": 2**65}).encode(),
    json.dumps({**GOOD, "started": 1e300}).encode(),
    json.dumps({**GOOD, "method": 5}).encode(),
    json.dumps({**GOOD, "redacted": True, "peer": "10.0.0.5:80", "url": "http://h/taskRequest"}).encode(),
    json.dumps(GOOD).encode()[:-1] + b', "method": "GET"}',  # a repeated key: the last, as json.loads
    json.dumps(GOOD).encode().replace(b"1.5", b"1e400"),
    json.dumps(GOOD).encode().replace(b"1.5", b"NaN"),
    b"\xef\xbb\xbf" + json.dumps(GOOD).encode(),
    json.dumps(GOOD).encode("utf-16"),
    json.dumps(GOOD).encode() + b" x",
    b"[1]",
    b'{"method": "POST"}',
    # msgspec's edges: what it types otherwise than the record check, or refuses where loads_strict reads
    json.dumps({**GOOD, "started": 10**400}).encode(),  # past a double: an error of the capture, no OverflowError
    json.dumps({**GOOD, "ended": 10**400}).encode(),
    json.dumps({**GOOD, "stall_ended": 10**400}).encode(),
    json.dumps({**GOOD, "stall_started": -1}).encode(),
    json.dumps(
        {**GOOD, "started": 7, "ended": 9, "stall_started": 0, "stall_ended": 2}
    ).encode(),  # integers as seconds
    json.dumps({**GOOD, "status": True}).encode(),  # a bool is no int
    json.dumps({**GOOD, "redacted": 1}).encode(),
    json.dumps({**GOOD, "url": None}).encode(),
    json.dumps({**GOOD, "error": "refused", "status": None, "response_b64": None}).encode(),
    json.dumps({**GOOD, "request_headers": {"a": None}}).encode(),
    json.dumps({**GOOD, "response_headers": {}, "request_headers": None}).encode(),
    json.dumps({**GOOD, "request_b64": "e30"}).encode(),  # no padding: refused by both
    json.dumps({**GOOD, "request_b64": "e3 0="}).encode(),  # not strict base64: msgspec refuses, a2b_base64 reads
    json.dumps({**GOOD, "request_b64": "é"}).encode(),
    json.dumps({**GOOD, "request_b64": None, "response_b64": ""}).encode(),
    json.dumps({**GOOD, "index": 5, "unknown": [1, {"x": 2}]}).encode(),  # fields no reader looks at
    json.dumps(  # every field, each value its own: a field given another's value shows
        {
            **GOOD,
            "url": "http://u",
            "peer": "10.0.0.9",
            "request_headers": {"a": "1"},
            "response_headers": {"b": "2"},
            "response_b64": "W10=",
            "error": "e",
            "redacted": True,
            "stall_started": 1.25,
            "stall_ended": 3,
        }
    ).encode(),  # fmt: skip
    json.dumps({**GOOD, "method": "\ud800"}).encode(),  # a lone surrogate: msgspec refuses, loads_strict keeps it
    json.dumps(GOOD).encode()[:-1] + b', "request_headers": {"a": "b", "a": "c"}}',
]


def _line_outcome(read: Callable[[bytes], Any], line: bytes) -> Any:
    try:
        exchange = read(line)
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the exception itself
        return (type(exc).__name__, str(exc))
    return repr(exchange)


@pytest.mark.parametrize("line", LINES, ids=range(len(LINES)))
def test_a_capture_line_reads_alike_with_and_without_msgspec(line: bytes) -> None:
    def before(raw: bytes) -> Any:
        return jsonl.record_to_exchange(loads_strict(raw, allow_surrogates=True))

    assert _line_outcome(jsonl._line_to_exchange, line) == _line_outcome(before, line)


def test_a_dropped_object_lends_its_repeated_keys_to_no_other() -> None:
    """A repeated key drops the first value; when that value was an object with repeated keys of its
    own, its id could be given to an object made later, which was then blamed for them (a false
    MSG-DUPLICATE-KEY, depending on what the interpreter had allocated before)."""
    raw = b'{"o": {"b": {"c": {"d": 1, "d": 2}, "c": 1, "e": "x"}, "b": "y", "f": {"g": 1}}, "h": {"i": {}}}'
    contract = get_contract()
    rng = random.Random(7)
    junk: list[list[dict[str, int]]] = []
    seen = set()
    for _ in range(300):
        junk.append([{} for _ in range(rng.randrange(20))])  # the allocator in another state each time
        if rng.random() < 0.5:
            junk.pop(0)
        parsed = message.parse_message(raw, DEFAULT, "x", contract.content_fields)
        seen.add(tuple((issue.rule, issue.pointer) for issue in parsed.issues))
    assert seen == {(("MSG-DUPLICATE-KEY", "/o/b"),)}


def test_the_fast_record_states_the_types_the_record_check_does() -> None:
    """``_Record`` (msgspec) and ``_TYPES`` (the record check of the slow path) state one layout twice:
    a field added to one and not the other would read differently on the two paths."""
    import typing

    def kinds(hint: Any) -> set[type]:
        return {type(None) if arg is None else arg for arg in typing.get_args(hint) or (hint,)}

    hints = typing.get_type_hints(jsonl._Record)
    stated = {
        key: {str if kind is bytes else dict if typing.get_origin(kind) is dict else kind for kind in kinds(hint)}
        for key, hint in hints.items()
    }
    assert stated == {key: set(types) for key, types in jsonl._TYPES.items()}


def test_a_capture_whose_times_overflow_a_double_is_refused_with_its_line(tmp_path) -> None:
    """A 400-digit ``started`` was an OverflowError out of ``facecert validate`` (a traceback)."""
    from facecert.core.captures import CaptureError, read_capture

    path = tmp_path / "capture.jsonl"
    path.write_bytes(LINES[0] + b"\n" + json.dumps({**GOOD, "started": 10**400}).encode() + b"\n")
    with pytest.raises(CaptureError, match=r"capture.jsonl:2: .*started is no number of seconds"):
        list(read_capture(path))
