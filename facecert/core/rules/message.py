"""Checks on one message: parsing, its schema, and the content the schema
can only annotate (images, size limits, snap_time_ms)."""

from __future__ import annotations

import base64
import binascii
import functools
import io
import itertools
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from facecert.core.contract import Contract, Limits, SchemaError, get_contract
from facecert.core.jsonsafe import printable, scan_whole
from facecert.core.model import abbreviate
from facecert.core.placeholder import PREFIX as PLACEHOLDER_PREFIX
from facecert.core.placeholder import parse_placeholder
from facecert.core.rules.registry import RULES

_RULE_BY_KEYWORD = {
    "required": "MSG-REQUIRED",
    "type": "MSG-TYPE",
    "enum": "MSG-ENUM",
    "const": "MSG-ENUM",
    "minimum": "MSG-RANGE",
    "maximum": "MSG-RANGE",
    "exclusiveMinimum": "MSG-RANGE",
    "exclusiveMaximum": "MSG-RANGE",
    "minLength": "MSG-RANGE",
    "maxLength": "MSG-RANGE",
    "minItems": "MSG-RANGE",
    "maxItems": "MSG-RANGE",
    "pattern": "MSG-FORMAT",
    "format": "MSG-FORMAT",
    "false": "MSG-NOT-ALLOWED",
    "not": "MSG-NOT-ALLOWED",  # `"not": {}` excludes a field (deviceAlarm image unless alarm_type 12)
    "unevaluatedProperties": "MSG-UNKNOWN-FIELD",
}
MAGIC = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",)}
_SURROGATE = re.compile("[\ud800-\udfff]")
_BACKSLASH = ord("\\")
_SCAN_CHUNK = 256 * 1024  # the pre-scan gives other threads the interpreter between chunks
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")
_DIGITS_ONLY = bytes(48 if c in b"0123456789" else 32 for c in range(256))  # translate: digit runs
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


@dataclass
class Issue:
    """A message-level problem before it becomes a Finding (the engine adds where/who)."""

    rule: str
    message: str
    pointer: str = ""
    expected: Any = None
    actual: Any = None


NOT_PLAIN = object()  # _Reader.read_plainly: this body is read with every hook


class ParseFailure(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


@dataclass(slots=True)
class Parsed:
    """One body, read within the limits: ``value`` is None when it was
    refused (``failure`` says why); ``issues`` are reported while the message
    is still judged (duplicate keys, integers beyond the safe range)."""

    value: Any = None
    failure: Issue | None = None
    issues: list[Issue] = field(default_factory=list)


@dataclass
class _Odd:
    """A number literal the parser would not turn into a value: it stands in
    the parsed tree until the walk, which knows its pointer, refuses the message."""

    rule: str
    literal: str


def parse_body(raw: bytes | None, limit: int | Limits, what: str) -> Any:
    """Parse a body as strict JSON within the limits (an int: the body limit,
    the contract's other limits), or raise ParseFailure with the reason."""
    contract = get_contract()
    limits = limit if isinstance(limit, Limits) else contract.limits.with_changes(max_body_bytes=limit)
    parsed = parse_message(raw, limits, what, contract.content_fields)
    if parsed.failure is not None:
        raise ParseFailure(parsed.failure)
    return parsed.value


def parse_message(raw: bytes | None, limits: Limits, what: str, content_fields: frozenset[str] = frozenset()) -> Parsed:
    """Read one body: strict JSON (RFC 8259, I-JSON) and every bound of
    ``limits``, with work proportional to the bounds, never to what a hostile
    peer sends (the structure is counted before anything is built)."""
    try:
        reader = _reader(limits)
        if raw:  # most bodies: read by orjson, when that provably reads as the hooks do and needs no walk
            value = reader.read_fast(raw)
            if value is not NOT_PLAIN:
                return Parsed(value, None, [])
        text, small = _text_within_bounds(raw, limits, what)
        try:
            value = reader.read_plainly(text, raw) if small and raw else NOT_PLAIN  # big: strings cost most
            if value is NOT_PLAIN:
                value = reader.read(text)
        except RecursionError:
            raise ParseFailure(
                Issue(
                    "MSG-TOO-DEEP",
                    f"{what} body nests deeper than the parser can follow; the limit is {limits.max_depth}",
                    expected=f"<= {limits.max_depth} levels",
                    actual="deeper than the interpreter's recursion limit",
                )
            ) from None
        except ValueError as exc:
            raise ParseFailure(
                Issue(
                    "MSG-NOT-JSON",
                    f"{what} body is not JSON: {exc}",
                    expected="JSON object",
                    actual=abbreviate(text, 60),
                )
            ) from None
        surrogates = "\\u" in text
        if reader.flagged or surrogates or not small:
            issues = _Walk(limits, what, content_fields, reader.duplicates, surrogates).run(value)
        else:
            issues = []  # nothing in the body can break a bound or need a finding: no walk needed
    except ParseFailure as failure:
        return Parsed(failure=failure.issue)
    if not isinstance(value, dict):
        return Parsed(
            failure=Issue(
                "MSG-NOT-OBJECT",
                f"{what} body is JSON {type(value).__name__}, not an object",
                expected="JSON object",
                actual=abbreviate(value),
            )
        )
    return Parsed(value, None, fold(issues, limits.max_findings_per_rule, what) if issues else [])


def _text_within_bounds(raw: bytes | None, limits: Limits, what: str) -> tuple[str, bool]:
    """The body as text, once its size and its count of values are within bounds; and whether
    the body is small enough that no string, key, object, array or nesting in it can break a bound
    (then, unless the parser's hooks flagged a number or a repeated key, no walk is needed): the
    count (at least the number of values) bounds every container's length, the brackets bound the
    depth, the characters bound every string."""
    if raw is None or not raw or raw.isspace():  # bytes.isspace: the ASCII whitespace bytes.strip removes
        raise ParseFailure(
            Issue(
                "MSG-EMPTY-BODY",
                f"{what} has an empty body; a JSON object is required",
                expected="JSON object",
                actual="empty body",
            )
        )
    limit = limits.max_body_bytes
    if len(raw) > limit:
        raise ParseFailure(
            Issue(
                "MSG-TOO-LARGE",
                f"{what} body is {len(raw):,} bytes, above the limit of {limit:,}",
                expected=f"<= {limit} bytes",
                actual=len(raw),
            )
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseFailure(
            Issue(
                "MSG-NOT-JSON",
                f"{what} body is not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})",
                expected="UTF-8 JSON",
                actual="undecodable bytes",
            )
        ) from None
    openings = raw.count(b"[") + raw.count(b"{")
    counted = count_values(raw, limits.max_values, openings)
    if counted > limits.max_values and _opening_depth(raw) > limits.max_depth:
        raise ParseFailure(
            Issue(
                "MSG-TOO-DEEP",
                f"{what} body nests more than {limits.max_depth} levels deep; refused before parsing",
                expected=f"<= {limits.max_depth} levels",
                actual=f"> {limits.max_depth}",
            )
        )
    if counted > limits.max_values:
        raise ParseFailure(
            Issue(
                "MSG-TOO-MANY-MEMBERS",
                f"{what} body holds more than {limits.max_values:,} values "
                f"(at least {counted:,}); refused before parsing",
                expected=f"<= {limits.max_values} values",
                actual=counted,
            )
        )
    small = len(text) <= limits.max_string_chars and counted <= limits.max_members and openings <= limits.max_depth
    return text, small


def count_values(raw: bytes, stop: int, openings: int | None = None) -> int:
    """How many JSON values ``raw`` holds, counted from its separators and
    openings outside strings (an empty container counts one too many).
    Counting stops once past ``stop``: the cost is bounded by the body size
    and by the bound, and the work is done in chunks so that a long scan does
    not hold the interpreter against other threads for long. ``openings``: the
    count of ``[`` and ``{`` in ``raw``, when the caller has it."""
    if openings is None:
        openings = raw.count(b"[") + raw.count(b"{")
    rough = raw.count(b",") + openings + 1
    return rough if rough <= stop else count_structure(raw, stop)  # what strings hold only adds to ``rough``


def count_structure(raw: bytes, stop: int) -> int:
    """Separators and openings outside strings, plus one: the values of
    ``raw``, counted in chunks until the count passes ``stop``."""
    total, inside, start = 1, False, 0
    while start < len(raw) and total <= stop:
        end = min(len(raw), start + _SCAN_CHUNK)
        while end < len(raw) and raw[end - 1] == _BACKSLASH:
            end += 1  # a run of backslashes stays in one chunk: its parity says what it escapes
        parts = _without_escapes(raw[start:end]).split(b'"')
        outside = b"".join(parts[1::2] if inside else parts[0::2])
        total += outside.count(b",") + outside.count(b"[") + outside.count(b"{")
        inside ^= len(parts) % 2 == 0
        start = end
    return total


def _opening_depth(raw: bytes) -> int:
    """How deep the first chunk of ``raw`` nests (outside strings): a nesting
    bomb shows there, and is then named for its depth rather than its size."""
    brackets = b"".join(_without_escapes(raw[:_SCAN_CHUNK]).split(b'"')[0::2]).translate(None, _NOT_BRACKET)
    return max(itertools.accumulate(_STEP[c] for c in brackets), default=0)


def _without_escapes(chunk: bytes) -> bytes:
    """``chunk`` with its escaped backslashes, then its escaped quotes, taken
    out: every quote left opens or closes a string (plain byte replaces, so
    even a body of backslashes costs little)."""
    if b"\\" not in chunk:
        return chunk
    return chunk.replace(b"\\\\", b"").replace(b'\\"', b"")


class _Reader:
    """A JSON decoder with this module's hooks, built once per thread and limits (building one
    per body cost as much as parsing the body). The hooks note what the walk must look at:
    ``duplicates`` (keys an object repeats, by the id of the dict, whose dict ``kept`` holds until the
    next read: a repeated key drops a value, and the id of a dropped object could otherwise be given
    to one made later, which would be blamed for its keys) and ``flagged`` (a repeated key, a number
    literal that became an ``_Odd``, an integer beyond ``max_integer``)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.max_chars = limits.max_number_chars
        self.max_integer = limits.max_integer
        self.duplicates: dict[int, list[str]] = {}
        self.kept: list[dict[str, Any]] = []
        self.flagged = False
        self.decoder = json.JSONDecoder(
            object_pairs_hook=self.pairs,
            parse_constant=self.read_constant,
            parse_float=self.read_float,
            parse_int=self.read_int,
        )
        # the scanner JSONDecoder.__init__ makes: an instance attribute the type stubs do not declare
        self.scan_once: Callable[[str, int], tuple[Any, int]] = vars(self.decoder)["scan_once"]
        # the same scanner without the integer hook (see read_plainly)
        self.plain_scan: Callable[[str, int], tuple[Any, int]] = vars(
            json.JSONDecoder(
                object_pairs_hook=self.pairs, parse_constant=self.read_constant, parse_float=self.read_float
            )
        )["scan_once"]
        # integers up to this size have a literal of at most max_number_chars (JSON has no leading zeros;
        # "-0" takes two) and need no report; None: no integer can be read without its hook
        self.plain_integer = (
            min(self.max_integer, 10 ** (self.max_chars - 1) - 1) if 2 <= self.max_chars <= 4000 else None
        )
        # a run of this many digits in the body could be an integer beyond plain_integer
        self.plain_digits = b"0" * len(str(self.plain_integer + 1)) if self.plain_integer is not None else b""
        # read_fast: with no digit run as long as plain_digits, no number literal is longer than 3 such runs
        # and the "-", ".", "e" and "+" around them; orjson keeps integers as int up to 64 bits only
        self.fast = (
            self.plain_integer is not None
            and 3 * len(self.plain_digits) + 1 <= self.max_chars
            and self.plain_integer < 2**63
        )
        # a body of at most this many bytes holds no string, key or message beyond a bound (its values,
        # counted as _text_within_bounds does, are fewer than its bytes)
        self.fast_bytes = min(limits.max_body_bytes, limits.max_string_chars)
        self.fast_values = min(limits.max_members, limits.max_values)

    def read(self, text: str) -> Any:
        """``json.loads(text)`` with the hooks (and, as json.loads, no byte order mark)."""
        self.duplicates, self.kept, self.flagged = {}, [], False
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return scan_whole(self.scan_once, text, _WHITESPACE(text, 0).end())

    def read_plainly(self, text: str, raw: bytes) -> Any:
        """:meth:`read` of ``text`` (``raw`` decoded) without the integer hook, a Python call per
        integer and most of the parse's cost, when that provably reads the same: else
        :data:`NOT_PLAIN` (read it with :meth:`read`). Both runs are the C scanner over the same
        text with the same object, float and constant hooks; they differ only in how an integer
        literal becomes a value. When ``raw`` has no run of more digits than ``plain_integer``
        has, every integer literal is within ``plain_integer`` (JSON has no leading zeros), for
        which ``read_int`` returns ``int(literal)`` unflagged, what the scanner makes of it."""
        if self.plain_integer is None or self.plain_digits in raw.translate(_DIGITS_ONLY):
            return NOT_PLAIN
        if text.startswith("\ufeff"):
            return NOT_PLAIN
        self.duplicates, self.kept, self.flagged = {}, [], False
        try:
            value, end = self.plain_scan(text, _WHITESPACE(text, 0).end())
        except (StopIteration, ValueError, RecursionError):
            return NOT_PLAIN
        if _WHITESPACE(text, end).end() != len(text):
            return NOT_PLAIN
        return value

    def read_fast(self, raw: bytes) -> Any:
        """``raw`` read by orjson (in C, about five times the speed of json on protocol bodies), when
        that is provably what :meth:`read` makes of it and the walk would find nothing: else
        :data:`NOT_PLAIN`. orjson refuses what the hooks would flag by its value (NaN, Infinity, a
        float beyond a double, a lone surrogate, a byte order mark), bytes that are not UTF-8 and
        everything json refuses, so any refusal is NOT_PLAIN and the hooked read says why; floats
        it reads as ``float()`` does. What it cannot see is kept out first: a body that could break
        a bound (counted as _text_within_bounds counts), a digit run as long as ``plain_digits``
        (an integer the hook would flag, which orjson would even make a float; a literal beyond
        max_number_chars) and a repeated key (orjson keeps the last one silently; see
        :func:`_keys_distinct`). Not an object: NOT_PLAIN too."""
        if not self.fast or len(raw) > self.fast_bytes:
            return NOT_PLAIN
        # the bounds _text_within_bounds checks (values, nesting), from the same counts
        openings = raw.count(b"{") + raw.count(b"[")
        if openings > self.limits.max_depth:
            return NOT_PLAIN
        if len(raw) >= self.fast_values and raw.count(b",") + openings + 1 > self.fast_values:
            return NOT_PLAIN
        if self.plain_digits in raw.translate(_DIGITS_ONLY):
            return NOT_PLAIN
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return NOT_PLAIN
        if type(value) is not dict:
            return NOT_PLAIN
        # one object with nothing nested in it (every object or array opens outside strings): its keys
        keys = len(value) if openings == 1 else _count_keys(value)
        return value if _keys_distinct(keys, raw, value) else NOT_PLAIN

    def pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        """Objects as dicts, remembering the keys an object repeats (the walk reports them)."""
        made = dict(pairs)
        if len(made) < len(pairs):
            counts = Counter(key for key, _ in pairs)
            self.duplicates[id(made)] = sorted(key for key, times in counts.items() if times > 1)
            self.kept.append(made)
            self.flagged = True
        return made

    def read_constant(self, name: str) -> _Odd:
        self.flagged = True
        return _Odd("MSG-NOT-FINITE", name)

    def read_float(self, literal: str) -> float | _Odd:
        if len(literal) > self.max_chars:
            self.flagged = True
            return _Odd("MSG-NUMBER-TOO-LARGE", literal)
        number = float(literal)
        if math.isfinite(number):
            return number
        self.flagged = True
        return _Odd("MSG-NOT-FINITE", literal)

    def read_int(self, literal: str) -> int | _Odd:
        if len(literal) > self.max_chars:
            self.flagged = True
            return _Odd("MSG-NUMBER-TOO-LARGE", literal)
        number = int(literal)
        if not -self.max_integer <= number <= self.max_integer:
            self.flagged = True
        return number


def _keys_distinct(keys: int, raw: bytes, value: Any) -> bool:
    """Whether no object read from ``raw`` (as ``value``) lost a repeated key, ``keys`` being the keys of
    all the objects read: every member of an object is written with one colon outside strings, so the
    keys add up to those colons exactly when none repeats. Colons inside strings ("http://", "12:00")
    count alike in ``raw`` and in ``value`` written again by orjson when ``raw`` holds no backslash (no
    escape: each string is written as it was read, and orjson escapes nothing but quotes, backslashes and
    control characters, none of which such a string holds); with a backslash: False (the hooked read
    counts). orjson writes one colon per key it kept, so the two counts are equal exactly when none was
    dropped."""
    colons = raw.count(b":")
    if colons == keys:  # no colon inside a string: the common case
        return True
    if b"\\" in raw:
        return False
    try:
        return orjson.dumps(value).count(b":") == colons
    except orjson.JSONEncodeError:  # nested past orjson's writer (a max_depth above 254): the hooked read
        return False


def _count_keys(value: dict[str, Any]) -> int:
    """The keys of every object in ``value`` (a flat object: without a Python call per member)."""
    total = 0
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        items = node.values() if type(node) is dict else node
        total += len(node) if type(node) is dict else 0
        types = set(map(type, items))
        if dict in types or list in types:
            stack.extend(item for item in items if type(item) is dict or type(item) is list)
    return total


# json.decoder.WHITESPACE (not in the type stubs); its pattern matches everywhere, so always a Match
_WHITESPACE: Callable[[str, int], re.Match[str]] = vars(json.decoder)["WHITESPACE"].match
_READERS = threading.local()  # per thread: the readers by limits (the hooks keep per-body state)


def _reader(limits: Limits) -> _Reader:
    last: tuple[Limits, _Reader] | None = getattr(_READERS, "last", None)
    if last is not None and last[0] is limits:  # the common case: no hashing of the limits
        return last[1]
    readers: dict[Limits, _Reader] | None = getattr(_READERS, "by_limits", None)
    if readers is None:
        readers = _READERS.by_limits = {}
    reader = readers.get(limits)
    if reader is None:
        if len(readers) >= 16:  # a tap makes its limits once; a test may make many
            readers.clear()
        reader = readers[limits] = _Reader(limits)
    # these limits, not the reader's: an engine's limits equal the last engine's but are another object
    _READERS.last = (limits, reader)
    return reader


class _Walk:
    """One pass over a parsed body: the first bound it breaks refuses the
    message (ParseFailure, with the pointer); duplicate keys and unsafe
    integers are collected. Iterative, so depth costs no stack."""

    def __init__(
        self,
        limits: Limits,
        what: str,
        content_fields: frozenset[str],
        duplicates: dict[int, list[str]],
        surrogates: bool,
    ) -> None:
        self.limits = limits
        self.what = what
        self.content_fields = content_fields
        self.duplicates = duplicates
        self.surrogates = surrogates  # only a \\u escape can make one: UTF-8 decoding never does
        self.issues: list[Issue] = []

    def run(self, value: Any) -> list[Issue]:
        if not isinstance(value, (dict, list)):
            self.scalar(value, "", "")
            return self.issues
        limits, values = self.limits, 1
        stack: list[tuple[Any, str, str, int]] = [(value, "", "", 1)]
        while stack:
            node, pointer, name, depth = stack.pop()
            self.container(node, pointer, depth)
            values += len(node)
            if values > limits.max_values:
                self.refuse(
                    "MSG-TOO-MANY-MEMBERS",
                    pointer,
                    f"brings the message past {limits.max_values:,} values",
                    f"<= {limits.max_values} values",
                    values,
                )
            if isinstance(node, dict):
                for key in node:
                    if len(key) > limits.max_string_chars or (self.surrogates and not key.isascii()):
                        self.text(key, f"{pointer}/{_escape(key)}", "", key=True)
                children: Any = node.items()
            else:
                children = enumerate(node)
            for key, child in children:
                if not self.plain(child):
                    field_name = key if isinstance(key, str) else name
                    self.child(child, f"{pointer}/{_escape(str(key))}", field_name, depth, stack)
        return self.issues

    def plain(self, value: Any) -> bool:
        """True for the scalars nothing can be wrong with (the common case, so checked inline)."""
        kind = type(value)
        if kind is str:
            return len(value) <= self.limits.max_string_chars and (not self.surrogates or value.isascii())
        if kind is int:
            return -self.limits.max_integer <= value <= self.limits.max_integer
        return kind is float or kind is bool or value is None

    def child(self, value: Any, pointer: str, name: str, depth: int, stack: list[tuple[Any, str, str, int]]) -> None:
        if isinstance(value, (dict, list)):
            stack.append((value, pointer, name, depth + 1))
        else:
            self.scalar(value, pointer, name)

    def container(self, node: dict[str, Any] | list[Any], pointer: str, depth: int) -> None:
        limits = self.limits
        if depth > limits.max_depth:
            self.refuse(
                "MSG-TOO-DEEP",
                pointer,
                f"nests {depth} levels deep here; the limit is {limits.max_depth}",
                f"<= {limits.max_depth} levels",
                depth,
            )
        if len(node) > limits.max_members:
            kind = "members" if isinstance(node, dict) else "items"
            self.refuse(
                "MSG-TOO-MANY-MEMBERS",
                pointer,
                f"has {len(node):,} {kind}; the limit is {limits.max_members:,}",
                f"<= {limits.max_members} {kind}",
                len(node),
            )
        if isinstance(node, dict) and id(node) in self.duplicates:
            self.duplicate_keys(node, pointer)

    def scalar(self, value: Any, pointer: str, name: str) -> None:
        if isinstance(value, str):
            self.text(value, pointer, name)
        elif isinstance(value, _Odd):
            if value.rule == "MSG-NOT-FINITE":
                self.refuse(
                    value.rule,
                    pointer,
                    f"is {value.literal[:40]}, which is no finite number "
                    "(RFC 8259 has no NaN or Infinity; a 64-bit float cannot hold it)",
                    "a finite number",
                    value.literal[:40],
                )
            self.refuse(
                value.rule,
                pointer,
                f"is a number of {len(value.literal):,} characters; the limit is {self.limits.max_number_chars}",
                f"<= {self.limits.max_number_chars} characters",
                value.literal[:40] + "…",
            )
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > self.limits.max_integer:
            self.issues.append(
                Issue(
                    "MSG-NUMBER-TOO-LARGE",
                    f"{self.what}: {pointer or '/'} is {value}, beyond "
                    f"±{self.limits.max_integer} (2**53-1): many JSON readers cannot hold it exactly",
                    pointer,
                    expected=f"|n| <= {self.limits.max_integer}",
                    actual=value,
                )
            )

    def text(self, value: str, pointer: str, name: str, key: bool = False) -> None:
        limit = self.limits.max_string_chars
        if len(value) > limit and (key or name not in self.content_fields):
            what = "a key" if key else "a string"
            self.refuse(
                "MSG-STRING-TOO-LONG",
                pointer,
                f"holds {what} of {len(value):,} characters; the limit is {limit:,}",
                f"<= {limit} characters",
                len(value),
            )
        if self.surrogates and not value.isascii() and _SURROGATE.search(value):
            where = "a key" if key else "a string"
            self.refuse(
                "MSG-BAD-UNICODE",
                pointer,
                f"holds {where} with a lone surrogate escape (\\ud800-\\udfff "
                "without its pair), which is no Unicode character",
                "paired surrogates only",
                printable(value)[:60],
            )

    def duplicate_keys(self, node: dict[str, Any], pointer: str) -> None:
        for key in self.duplicates[id(node)]:
            self.issues.append(
                Issue(
                    "MSG-DUPLICATE-KEY",
                    f"{self.what}: {pointer or 'the body'} names {key!r} more than once; "
                    "readers disagree on which value counts (this engine judges the last)",
                    f"{pointer}/{_escape(key)}",
                    expected="each key once",
                    actual=key,
                )
            )

    def refuse(self, rule: str, pointer: str, detail: str, expected: Any, actual: Any) -> None:
        pointer = printable(pointer)
        raise ParseFailure(
            Issue(rule, f"{self.what}: {pointer or 'the body'} {detail}", pointer, expected=expected, actual=actual)
        )


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def fold(issues: list[Issue], limit: int, what: str, counted_all: bool = True) -> list[Issue]:
    """At most ``limit`` issues of one rule; the rest become one issue that
    counts them (a message with 9,000 unknown keys makes 21 findings, not
    9,000). ``counted_all`` is False when the validator stopped early."""
    kept: list[Issue] = []
    listed: dict[str, int] = {}
    extra: dict[str, int] = {}
    for item in issues:
        if listed.get(item.rule, 0) < limit:
            kept.append(item)
            listed[item.rule] = listed.get(item.rule, 0) + 1
        else:
            extra[item.rule] = extra.get(item.rule, 0) + 1
    for rule, count in extra.items():
        more = f"{count:,} more" if counted_all else f"at least {count:,} more"
        kept.append(
            Issue(
                rule,
                f"{what}: {more} findings of {rule} ({RULES[rule].title}), not listed one by one",
                "",
                expected=f"<= {limit} listed",
                actual=count,
            )
        )
    return kept


def schema_issues(
    contract: Contract, schema: str, body: Any, version: str, what: str, limits: Limits | None = None
) -> list[Issue]:
    """The schema's violations, at most ``max_schema_errors`` looked at and
    ``max_findings_per_rule`` listed per rule (the rest counted)."""
    if contract.validator(schema, version).is_valid(body):
        return []  # the common case, without building error objects
    limits = limits or contract.limits
    errors = contract.errors(schema, body, version, limit=limits.max_schema_errors)
    issues = _one_cause_per_field([_issue(contract, schema, error, version, what) for error in errors])
    return fold(issues, limits.max_findings_per_rule, what, counted_all=len(errors) < limits.max_schema_errors)


def _one_cause_per_field(issues: list[Issue]) -> list[Issue]:
    """A value of the wrong type also fails its enum/range/pattern; report the
    type alone, since that is the cause a firmware engineer has to fix."""
    typed = {issue.pointer for issue in issues if issue.rule == "MSG-TYPE"}
    consequences = {"MSG-ENUM", "MSG-RANGE", "MSG-FORMAT", "MSG-SCHEMA"}
    return [i for i in issues if not (i.pointer in typed and i.rule in consequences)]


def _issue(contract: Contract, schema: str, error: SchemaError, version: str, what: str) -> Issue:
    rule = _RULE_BY_KEYWORD.get(error.keyword, "MSG-SCHEMA")
    field = printable(error.pointer or "/")  # a key may hold control characters: the message is for a person
    label = _field_label(contract, schema, error.pointer, version)
    if rule == "MSG-REQUIRED":
        message = f"{what}: required field {field}{label} is missing"
        return Issue(rule, message, error.pointer, expected="present", actual="absent")
    if rule == "MSG-UNKNOWN-FIELD":
        message = f"{what}: field {field} is not defined by the document (protocol V{version}); ignored"
        return Issue(rule, message, error.pointer, expected="a documented field", actual=error.params.get("property"))
    detail = printable(error.message)
    if len(detail) > 160:
        detail = detail[:150] + "…"
    message = f"{what}: {field}{label} — {detail}; got {abbreviate(error.value)}"
    return Issue(rule, message, error.pointer, expected=_expected(error), actual=error.value)


def _expected(error: SchemaError) -> Any:
    params = error.params or {}
    for key in ("types", "options", "limit", "pattern", "format", "expected_value", "schema"):
        if key in params:
            return params[key]
    return error.keyword


def _field_label(contract: Contract, schema: str, pointer: str, version: str) -> str:
    node = contract_field(contract, schema, pointer, version)
    description = node.get("description") if node else None
    return f" ({description.split(';')[0][:60]})" if description else ""


def contract_field(contract: Contract, schema: str, pointer: str, version: str) -> dict[str, Any] | None:
    """The schema node that describes the field at ``pointer`` (best effort: properties/items/allOf/$ref)."""
    node: Any = contract.schema(schema, version)
    for part in [p for p in pointer.split("/") if p]:
        node = _child(contract, node, part, version)
        if node is None:
            return None
    return node


def _child(contract: Contract, node: dict[str, Any], part: str, version: str) -> dict[str, Any] | None:
    candidates = [node]
    seen = 0
    while candidates and seen < 50:
        seen += 1
        current = candidates.pop(0)
        if "$ref" in current:
            candidates.append(contract._resolve(current["$ref"], version))
        if part.isdigit() and isinstance(current.get("items"), dict):
            return current["items"]
        props = current.get("properties") or {}
        if part in props:
            return props[part]
        for key in ("allOf", "anyOf", "oneOf"):
            candidates.extend(x for x in current.get(key, []) if isinstance(x, dict))
        for key in ("then", "else"):
            if isinstance(current.get(key), dict):
                candidates.append(current[key])
    return None


def content_issues(
    contract: Contract, schema: str, body: Any, version: str, what: str, redacted: bool = False
) -> tuple[list[Issue], list[str]]:
    """Images that must decode, size limits on serialised objects; also the
    download URLs the message carries (second value). In a ``redacted`` record (a
    capture facecert wrote, facecert.core.redact) an image is judged by its placeholder."""
    issues: list[Issue] = []
    downloads: list[str] = []
    for pointer, notes in contract.annotations_seen(schema, body, version):
        value = resolve_pointer(body, pointer)
        media = notes.get("contentMediaType")
        if media and notes.get("contentEncoding") == "base64" and isinstance(value, str):
            if redacted and value.startswith(PLACEHOLDER_PREFIX):
                issues.extend(_placeholder_issues(value, media, pointer, what))
            else:
                issues.extend(_image_issues(value, media, pointer, what))
        limit = notes.get("x-max-serialized-bytes")
        if limit is not None and value is not None:
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            if size > int(limit):
                issues.append(
                    Issue(
                        "USERINFO-SIZE",
                        f"{what}: {pointer} is {size} bytes as compact UTF-8 JSON; "
                        f"the document allows {limit} (长度 {limit}B)",
                        pointer,
                        expected=f"<= {limit} bytes",
                        actual=size,
                    )
                )
        if notes.get("x-download") and isinstance(value, str) and value:
            downloads.append(value)
    return issues, downloads


_DECODED = threading.local()  # per thread: the last image decoded (a tap may judge one message twice)


_B64_PIECE = 1024 * 1024  # characters decoded per call (a multiple of 4)


def decoded_base64(value: str) -> bytes | Exception:
    """``value`` from strict base64, or why not; the same string object is decoded once.
    A big image is decoded in 1 MiB pieces: one 20 MB call would hold the interpreter
    (and every other device's exchange) for ~100 ms, a piece lets others in between."""
    last = getattr(_DECODED, "last", None)
    if last is not None and last[0] is value:
        return last[1]
    try:
        pieces = []
        for start in range(0, len(value), _B64_PIECE):
            piece = value[start : start + _B64_PIECE]
            if "=" in piece and start + _B64_PIECE < len(value):
                raise binascii.Error("Discontinuous padding not allowed")  # padding only ends the data
            pieces.append(base64.b64decode(piece, validate=True))
        data: bytes | Exception = b"".join(pieces)
    except (binascii.Error, ValueError) as exc:
        data = exc.with_traceback(None)  # a kept traceback would keep the judging frames (and bodies) alive
    _DECODED.last = (value, data)
    return data


def _image_issues(value: str, media: str, pointer: str, what: str) -> list[Issue]:
    data = decoded_base64(value)
    if isinstance(data, Exception):
        exc = data
        return [
            Issue(
                "IMG-BASE64",
                f"{what}: {pointer} is not valid base64 ({exc}); starts {abbreviate(value, 40)}",
                pointer,
                expected="base64",
                actual=abbreviate(value, 40),
            )
        ]
    magic = MAGIC.get(media, ())
    if magic and not any(data.startswith(m) for m in magic):
        return [
            Issue(
                "IMG-FORMAT",
                f"{what}: {pointer} decodes to {len(data)} bytes that are not {media} (starts {data[:8].hex(' ')})",
                pointer,
                expected=media,
                actual=data[:8].hex(" "),
            )
        ]
    return _pixel_issues(data, media, pointer, what)


@functools.cache
def _pil_image() -> Any:
    """PIL.Image, imported once (an import statement per image cost a microsecond or two each time)."""
    from PIL import Image

    return Image


def _placeholder_issues(value: str, media: str, pointer: str, what: str) -> list[Issue]:
    """IMG-BASE64 and IMG-FORMAT from what the placeholder records (the bytes are gone);
    a placeholder we did not write as it is now is REDACTED-PLACEHOLDER."""
    if len(value) > _PLACEHOLDER_MEMO_CHARS:  # ours are ~150 characters: a long one is judged, not kept
        return _judge_placeholder(value, media, pointer, what)
    bound = int(_pil_image().MAX_IMAGE_PIXELS or 89_478_485)  # (a key: the bound can be changed at run time)
    return list(_placeholder_verdict(value, media, pointer, what, bound))


_PLACEHOLDER_MEMO_CHARS = 512


@functools.lru_cache(maxsize=512)  # a pure function of short texts: images repeat in a capture
def _placeholder_verdict(value: str, media: str, pointer: str, what: str, bound: int) -> tuple[Issue, ...]:
    return tuple(_judge_placeholder(value, media, pointer, what))


def _judge_placeholder(value: str, media: str, pointer: str, what: str) -> list[Issue]:
    Image = _pil_image()
    try:
        held = parse_placeholder(value)
    except ValueError as exc:
        return [
            Issue(
                "REDACTED-PLACEHOLDER",
                f"{what}: {pointer} is a redaction placeholder that was altered: {exc}; starts {abbreviate(value, 60)}",
                pointer,
                expected="facecert-redacted:media;bytes=N;head=HEX;px=WxH;sha256=HEX",
                actual=abbreviate(value, 60),
            )
        ]
    if not held.valid_base64:
        return [
            Issue(
                "IMG-BASE64",
                f"{what}: {pointer} was not valid base64 ({held.chars} characters, redacted)",
                pointer,
                expected="base64",
                actual=f"{held.chars} characters, not base64",
            )
        ]
    magic = MAGIC.get(media, ())
    if magic and not any(held.head.startswith(m) for m in magic):
        return [
            Issue(
                "IMG-FORMAT",
                f"{what}: {pointer} decoded to {held.size} bytes that are not {media} "
                f"(starts {held.head.hex(' ')}, redacted)",
                pointer,
                expected=media,
                actual=held.head.hex(" "),
            )
        ]
    bound = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
    if held.pixels is not None and held.pixels > bound:
        return [
            Issue(
                "IMG-FORMAT",
                f"{what}: {pointer} is a {media} whose header claimed {held.pixels:,} pixels, "
                f"beyond the decompression-bomb bound of {bound:,} (redacted)",
                pointer,
                expected=f"<= {bound} pixels",
                actual=held.pixels,
            )
        ]
    return []


def _pixel_issues(data: bytes, media: str, pointer: str, what: str) -> list[Issue]:
    """An image whose header claims more pixels than Pillow's decompression-bomb
    bound (a few hundred bytes can claim 65500×65500) is no usable image: any
    decoder that trusts it allocates gigabytes. Only the header is read."""
    Image = _pil_image()  # the header parser; imported on first use, as most messages carry no image

    bound = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(claimed.group(1)) if claimed else bound + 1
    except Exception:  # noqa: BLE001 - an unreadable header is not this check's concern (the magic matched)
        return []
    else:
        pixels = width * height
        if pixels <= bound:
            return []
    return [
        Issue(
            "IMG-FORMAT",
            f"{what}: {pointer} is a {media} whose header claims {pixels:,} pixels, beyond the "
            f"decompression-bomb bound of {bound:,}: no decoder should allocate that",
            pointer,
            expected=f"<= {bound} pixels",
            actual=pixels,
        )
    ]


def snap_time_issues(body: dict[str, Any], what: str) -> list[Issue]:
    """snap_time (s) and snap_time_ms (ms) name the same instant (errata #25)."""
    seconds, millis = body.get("snap_time"), body.get("snap_time_ms")
    if (
        not (isinstance(seconds, int) and isinstance(millis, int))
        or isinstance(seconds, bool)
        or isinstance(millis, bool)
    ):
        return []
    if abs(millis / 1000.0 - seconds) >= 1.0 + 1e-9:
        return [
            Issue(
                "SNAPTIME-MS",
                f"{what}: snap_time_ms {millis} is {millis / 1000.0 - seconds:+.3f} s away from "
                f"snap_time {seconds}; they must name the same second",
                "/snap_time_ms",
                expected=f"{seconds * 1000}..{seconds * 1000 + 999}",
                actual=millis,
            )
        ]
    return []


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901), None where there is none."""
    if type(doc) is dict and len(pointer) > 1 and pointer[0] == "/" and pointer.count("/") == 1 and "~" not in pointer:
        return doc.get(pointer[1:])  # a top-level member, the common case
    node = doc
    for part in [p for p in pointer.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node
