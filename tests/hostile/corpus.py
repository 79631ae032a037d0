"""The project's own hostile corpus: raw HTTP requests a broken or malicious
device (or a stray browser) could send to the mock server or through the
proxy, as exact bytes.

Fields come from the contract, never from a hand-written list: every device
message kind of the catalogue, its repaired example (which passes its schema)
and its schema's properties give the pointers that the wrong-type, number,
surrogate, NUL and duplicate-key variants are made from. Bodies are iterators
of chunks, so the 100 MB case never sits in memory.

Each :class:`Case` says where it goes (``target``: device, asset, admin, page
or other), whether an answer may legitimately be missing (the client broke
the framing), and optionally what a correct server must answer beyond the
rules every case shares (no 5xx, strict JSON, stored when answered):
traversal is refused, over-size is 413, cross-site control requests are
refused.

Run ``python -m tests.hostile.corpus`` for the counts per class.
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from facecert.core.contract import get_contract
from facecert.core.defaults import max_body_bytes
from facecert.core.examples import load_examples
from facecert.mock_server.assets import DEFAULT_FOR_KIND
from tests.hostile.rawhttp import Answer

CASE_HEADER = "X-Hostile-Case"
RAW = "\u0000RAW\u0000"  # stands for a raw JSON token (NaN, 1e400, ...) until the text is built
MiB = 1024 * 1024
UVICORN_OWN = b"Invalid HTTP request received."  # what uvicorn answers itself when h11 refuses the bytes
# Devices the corpus names when it queues tasks or sets faults through the control API:
# nothing else uses them, so a control request that (wrongly) succeeds changes nothing the corpus relies on.
XSITE_DEVICE = "HOSTILEXSITE0001"
POLL = "taskRequest"  # the endpoint the mock server serves even when its message has findings (docs/mock-server.md)
TRAVERSAL_DEVICE = "HOSTILETRAVERSAL1"

Body = Callable[[], Iterable[bytes]]
Check = Callable[[Answer], str | None]


@dataclass(frozen=True)
class Case:
    """One hostile request. ``head`` and ``body`` are raw; ``{host}`` and the
    case header are filled in by :meth:`chunks`."""

    klass: str
    name: str
    method: str
    path: str
    target: str  # device | asset | admin | page | other: decides whether the answer must be stored
    head: str  # request line + headers, CRLF-joined, without the blank line; "{host}" and "{case}" are filled in
    body: Body = lambda: ()
    size: int = 0  # body bytes
    answer_optional: bool = False  # the request is broken so that the server cannot answer it (or need not)
    half_close: bool = False
    timeout: float = 10.0
    expect: Check | None = None
    lazy: Callable[[], bytes] | None = None  # a body too costly to build unless sent (the bombs)
    via_proxy: bool = True  # False: meaningless through a reverse proxy (which rewrites Host by design)
    cid: int = -1

    def chunks(self, host: str) -> Iterator[bytes]:
        head = self.head.replace("{host}", host).replace("{case}", str(self.cid))
        if self.lazy is not None:
            head = head.replace("{length}", str(len(self.lazy())))
        yield (head + "\r\n\r\n").encode("latin-1")
        yield from (self.lazy(),) if self.lazy is not None else self.body()

    @property
    def must_be_stored(self) -> bool:
        """Device-facing traffic (endpoints, assets, unknown paths) is stored
        whatever the answer; the control API and the live page are not."""
        return self.target in ("device", "asset", "other")


# ---- building requests ---------------------------------------------------------------------------------------------


def _const(data: bytes) -> Body:
    return lambda: (data,) if data else ()


def request(
    klass: str,
    name: str,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    headers: Iterable[tuple[str, str]] = (),
    content_type: str | None = "application/json",
    length: str | None = "auto",
    version: str = "HTTP/1.1",
    host: bool = True,
    target: str | None = None,
    stream: Body | None = None,
    size: int | None = None,
    uri: str | None = None,
    **options: Any,
) -> Case:
    """A request line, the usual headers (each overridable: ``length=None``
    sends no Content-Length, a string sends that value) and a body. ``uri``
    is the request target when it is not the path (absolute form)."""
    data = body or b""
    size = len(data) if size is None else size
    line = f"{method} {uri or path}"
    lines = [f"{line} {version}" if version else line]
    if host:
        lines.append("Host: {host}")
    lines.append(f"{CASE_HEADER}: {{case}}")
    lines.append("Connection: close")
    if content_type is not None and (body is not None or stream is not None or options.get("lazy")):
        lines.append(f"Content-Type: {content_type}")
    if length == "auto" and options.get("lazy") is not None:
        lines.append("Content-Length: {length}")
    elif length == "auto" and (body is not None or stream is not None):
        lines.append(f"Content-Length: {size}")
    elif length not in (None, "auto"):
        lines.append(f"Content-Length: {length}")
    lines.extend(f"{k}: {v}" for k, v in headers)
    return Case(
        klass,
        name,
        method,
        path,
        target or target_of(path),
        "\r\n".join(lines),
        stream or _const(data),
        size,
        **options,
    )


def target_of(path: str) -> str:
    bare = path.split("?", 1)[0]
    if bare == "/" or bare == "":
        return "page"
    if bare.startswith("/_admin/") or bare == "/_admin":
        return "admin"
    if bare.startswith("/assets/"):
        return "asset"
    if bare in {e.path for e in get_contract().all_endpoints.values()}:
        return "device"
    return "other"


def dumps(doc: Any) -> bytes:
    """JSON text of a document; ``RAW``-wrapped strings become raw tokens."""
    text = json.dumps(doc, ensure_ascii=True)
    while f'"{_raw_marker()}' in text:
        start = text.index(f'"{_raw_marker()}')
        end = text.index(f'{_raw_marker()}"', start + 1)
        token = json.loads(text[start : end + len(_raw_marker()) + 1])[len(RAW) : -len(RAW)]
        text = text[:start] + token + text[end + len(_raw_marker()) + 1 :]
    return text.encode()


@functools.cache
def _raw_marker() -> str:
    return json.dumps(RAW)[1:-1]


def raw(token: str) -> str:
    return f"{RAW}{token}{RAW}"


# ---- the contract's messages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A correct device message of one kind: where it goes and its schema."""

    kind: str  # schema name (device/taskRequest, device/results/getLogFile, ...)
    endpoint: str
    path: str
    body: dict[str, Any] = field(hash=False, compare=False)

    def copy(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.body))


@functools.cache
def messages() -> tuple[Message, ...]:
    """One per device example of the contract (both deviceAlarm variants,
    every task result that has one): the endpoint is the one whose request
    schema it is, results go to taskResult."""
    contract = get_contract()
    by_schema = {e.request: e for e in contract.all_endpoints.values()}
    results = {t.result for t in contract.all_tasks.values() if t.result}
    out = []
    for example in load_examples():
        endpoint = by_schema.get(example.schema)
        if endpoint is None and example.schema in results:
            endpoint = contract.all_endpoints["taskResult"]
        if endpoint is not None and isinstance(example.body, dict):
            out.append(Message(example.schema, endpoint.name, endpoint.path, example.body))
    return tuple(out)


def endpoint_messages() -> list[Message]:
    """The first example of each endpoint's own request schema."""
    seen: dict[str, Message] = {}
    contract = get_contract()
    for m in messages():
        if m.kind == contract.all_endpoints[m.endpoint].request:
            seen.setdefault(m.endpoint, m)
    return list(seen.values())


def schema_properties(name: str) -> set[str]:
    """Top-level properties a schema names, through allOf/$ref parts."""
    contract = get_contract()
    by_id = {contract.schema_id(n): n for n in contract.raw}

    def walk(node: Any, depth: int = 0) -> set[str]:
        if not isinstance(node, dict) or depth > 5:
            return set()
        found = set(node.get("properties", {}))
        for part in node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", []):
            found |= walk(part, depth + 1)
        ref = node.get("$ref", "")
        base, _, fragment = ref.partition("#")
        if base in by_id and not fragment:
            found |= walk(contract.raw[by_id[base]], depth + 1)
        return found

    return walk(contract.raw[name])


def leaves(doc: Any, pointer: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every member and item, containers included."""
    if pointer:
        yield pointer, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, pointer + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from leaves(value, pointer + (index,))


def with_value(doc: Any, pointer: tuple[Any, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    node = doc
    for part in pointer[:-1]:
        node = node[part]
    node[pointer[-1]] = value
    return doc


def where(pointer: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(p) for p in pointer)


def post(klass: str, name: str, message: Message, body: bytes, **kw: Any) -> Case:
    return request(klass, f"{message.endpoint}: {name}", "POST", message.path, body, **kw)


# ---- classes -------------------------------------------------------------------------------------------------------

WRONG_FOR = {
    str: [0, -1, 1.5, True, None, [], {}, ["x"]],
    int: ["1", 1.5, True, None, [], {}],
    float: ["1.5", True, None, [], {}],
    bool: [1, "true", None, []],
    list: [{}, "x", 1, None, [None]],
    dict: [[], "x", 1, None],
    type(None): ["", 0, {}],
}


def wrong_types() -> Iterator[Case]:
    """Every member of every device example with values of the other JSON
    types; properties the schema names but the example lacks, as objects."""
    for m in messages():
        for pointer, value in leaves(m.body):
            for wrong in WRONG_FOR[type(value)]:
                yield post(
                    "wrong_types",
                    f"{m.kind} {where(pointer)} = {json.dumps(wrong)}",
                    m,
                    dumps(with_value(m.body, pointer, wrong)),
                )
        for prop in sorted(schema_properties(m.kind) - set(m.body)):
            yield post("wrong_types", f"{m.kind} absent /{prop} = {{}}", m, dumps({**m.copy(), prop: {"x": [1]}}))


MALFORMED = {
    "trailing comma": lambda t: t[:-1] + b",}",
    "single quotes": lambda t: t.replace(b'"', b"'"),
    "unquoted keys": lambda t: t.replace(b'{"', b"{").replace(b', "', b", ").replace(b'": ', b": "),
    "line comment": lambda t: b"// comment\n" + t,
    "block comment": lambda t: t[:1] + b"/* c */" + t[1:],
    "missing colon": lambda t: t.replace(b'": ', b'" ', 1),
    "missing comma": lambda t: t.replace(b", ", b" ", 1),
    "extra closing brace": lambda t: t + b"}",
    "two documents": lambda t: t + t,
    "trailing garbage": lambda t: t + b"garbage",
    "python literals": lambda t: t.replace(b"true", b"True").replace(b"null", b"None")[:-1] + b', "x": None}',
    "hex number": lambda t: t[:-1] + b', "x": 0x1F}',
    "raw newline in string": lambda t: t.replace(b'": "', b'": "line\nbreak', 1),
    "invalid escape": lambda t: t.replace(b'": "', b'": "\\x41', 1),
    "unterminated string": lambda t: t[:-1] + b', "x": "open}',
    "lone backslash at end": lambda t: t[:-1] + b', "x": "\\',
    "random bytes": lambda t: bytes(range(256)),
    "array instead of object": lambda t: b"[" + t + b"]",
}


def malformed_json() -> Iterator[Case]:
    """Each endpoint's example truncated at 16 points, and broken 18 ways."""
    for m in endpoint_messages():
        text = dumps(m.body)
        for i in range(16):
            cut = max(1, min(len(text) - 1, round(len(text) * i / 15)))
            yield post("malformed_json", f"truncated at {cut}/{len(text)}", m, text[:cut])
        for name, breaker in MALFORMED.items():
            yield post("malformed_json", name, m, breaker(text))


EMPTY_BODIES = {
    "no body": None,
    "zero length": b"",
    "whitespace": b" \r\n\t ",
    "{}": b"{}",
    "[]": b"[]",
    "null": b"null",
    "0": b"0",
    '""': b'""',
    "true": b"true",
    "NUL": b"\x00",
}


def empty() -> Iterator[Case]:
    for m in endpoint_messages():
        for name, body in EMPTY_BODIES.items():
            if body is None:
                yield request("empty", f"{m.endpoint}: no body, no Content-Length", "POST", m.path, length=None)
            else:
                yield post("empty", name, m, body)
        yield request(
            "empty",
            f"{m.endpoint}: empty chunked body",
            "POST",
            m.path,
            b"0\r\n\r\n",
            length=None,
            headers=[("Transfer-Encoding", "chunked")],
        )


def _repeat(prefix: bytes, filler: bytes, count: int, suffix: bytes, chunk: int = MiB) -> Body:
    """prefix + filler*count + suffix, streamed in ~1 MiB pieces."""

    def gen() -> Iterator[bytes]:
        yield prefix
        per = max(1, chunk // len(filler))
        block = filler * per
        left = count
        while left >= per:
            yield block
            left -= per
        if left:
            yield filler * left
        yield suffix

    return gen


def big_bodies(max_body: int | None = None) -> Iterator[Case]:
    """A capture just under max_body (default: the contract's), just over it, 100 MB, and an over-size
    chunked body without a length: each read bounded, the big ones 413."""
    max_body = max_body or max_body_bytes()
    capture = next(m for m in endpoint_messages() if m.endpoint == "faceRecognition")
    head, _, tail = dumps({**capture.copy(), "image": "@FILL@"}).partition(b"@FILL@")
    under = max_body - len(head) - len(tail) - 1024
    yield request(
        "big_bodies",
        f"capture of {max_body - 1024:,} bytes (image not a JPEG)",
        "POST",
        capture.path,
        stream=_repeat(head, b"A", under, tail),
        size=len(head) + under + len(tail),
        timeout=30,
    )
    over = max_body + 1 - len(head) - len(tail)
    yield request(
        "big_bodies",
        f"capture of {max_body + 1:,} bytes (max_body + 1)",
        "POST",
        capture.path,
        stream=_repeat(head, b"A", over, tail),
        size=max_body + 1,
        timeout=30,
        expect=status_is(413),
    )
    hundred = 100 * 1000 * 1000
    yield request(
        "big_bodies",
        "100 MB capture",
        "POST",
        capture.path,
        stream=_repeat(head, b"A", hundred, tail),
        size=len(head) + hundred + len(tail),
        timeout=30,
        expect=status_is(413),
    )
    chunked = _chunked(_repeat(head, b"A", 2 * max_body, tail))
    yield request(
        "big_bodies",
        f"chunked capture of {2 * max_body:,} bytes, no length",
        "POST",
        capture.path,
        stream=chunked,
        length=None,
        headers=[("Transfer-Encoding", "chunked")],
        timeout=30,
        expect=status_is(413),
    )


def _chunked(body: Body, trailers: bytes = b"") -> Body:
    def gen() -> Iterator[bytes]:
        for piece in body():
            if piece:
                yield b"%x\r\n" % len(piece) + piece + b"\r\n"
        yield b"0\r\n" + trailers + b"\r\n"

    return gen


def deep_nesting() -> Iterator[Case]:
    """Arrays and objects nested 64 to 1,000,000 deep, as the whole body and
    inside a field of a correct message."""
    poll = next(m for m in endpoint_messages() if m.endpoint == "taskRequest")
    result = next(m for m in endpoint_messages() if m.endpoint == "taskResult")
    for depth in (64, 1_000, 10_000, 100_000, 1_000_000):
        yield post("deep_nesting", f"array {depth:,} deep as body", poll, b"[" * depth + b"]" * depth, timeout=30)
        yield post(
            "deep_nesting", f"object {depth:,} deep as body", poll, b'{"a":' * depth + b"1" + b"}" * depth, timeout=30
        )
        for m, pointer in ((poll, "device_id"), (result, "resp_list")):
            head, _, tail = dumps({**m.copy(), pointer: raw("@")}).partition(b"@")
            yield post(
                "deep_nesting",
                f"/{pointer} an array {depth:,} deep",
                m,
                head + b"[" * depth + b"]" * depth + tail,
                timeout=30,
            )
    yield post("deep_nesting", "unclosed 100,000 deep", poll, b"[" * 100_000, timeout=30)


def encodings() -> Iterator[Case]:
    """The same correct messages in the wrong encodings, with broken UTF-8,
    and a lone surrogate (escaped, or as CESU bytes) in every string."""
    for m in endpoint_messages():
        text = json.dumps(m.body, ensure_ascii=False)
        plain = dumps(m.body)
        variants = {
            "UTF-16-LE with BOM": text.encode("utf-16"),
            "UTF-16-BE with BOM": b"\xfe\xff" + text.encode("utf-16-be"),
            "UTF-16-LE without BOM": text.encode("utf-16-le"),
            "UTF-32": text.encode("utf-32"),
            "UTF-8 BOM": b"\xef\xbb\xbf" + plain,
            "Latin-1 byte in a string": plain.replace(b'": "', b'": "caf\xe9 ', 1),
            "0xff 0xfe in a string": plain.replace(b'": "', b'": "\xff\xfe', 1),
            "overlong UTF-8 slash": plain.replace(b'": "', b'": "\xc0\xaf', 1),
            "CESU surrogate bytes": plain.replace(b'": "', b'": "\xed\xb3\xbf', 1),
            "truncated multibyte": plain.replace(b'": "', b'": "\xe4\xb8', 1),
        }
        for name, body in variants.items():
            yield post("encodings", name, m, body)
        yield post(
            "encodings", "charset=utf-16 header, UTF-8 body", m, plain, content_type="application/json; charset=utf-16"
        )
        for pointer, value in leaves(m.body):
            if isinstance(value, str):
                for lone in ("\udfff", "x\ud800"):
                    yield post(
                        "encodings",
                        f"lone surrogate {lone!r} at {where(pointer)}",
                        m,
                        dumps(with_value(m.body, pointer, lone)),
                    )
    poll = endpoint_messages()[0]
    yield post("encodings", "lone surrogate as a key", poll, dumps({**poll.copy(), "\udfff": 1}))
    yield post("encodings", "reversed surrogate pair", poll, dumps({**poll.copy(), "device_id": "\udc00\ud800"}))


HOSTILE_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    str(2**63),
    str(2**64),
    str(-(2**63) - 1),
    "9" * 5000,
]
ODD_NUMBERS = [
    "1e-400",
    "-0",
    "1.7976931348623157e309",
    str(10**30),
    "1" * 300 + ".5",
    "00012",
    "+1",
    ".5",
    "1.",
    "0x1F",
    "1_000",
]


def numbers() -> Iterator[Case]:
    """NaN, Infinity, huge and out-of-range numbers in every numeric member,
    odd spellings in one member per endpoint, huge numbers in control API
    parameters."""
    for m in messages():
        numeric = [(p, v) for p, v in leaves(m.body) if type(v) in (int, float)]
        for pointer, _ in numeric:
            for token in HOSTILE_NUMBERS:
                yield post(
                    "numbers",
                    f"{m.kind} {where(pointer)} = {token[:24]}",
                    m,
                    dumps(with_value(m.body, pointer, raw(token))),
                )
        if numeric and m.kind == get_contract().all_endpoints[m.endpoint].request:
            pointer = numeric[0][0]
            for token in ODD_NUMBERS:
                yield post(
                    "numbers",
                    f"{m.kind} {where(pointer)} = {token[:24]}",
                    m,
                    dumps(with_value(m.body, pointer, raw(token))),
                )
    for query in ("limit=1e20", f"limit={2**64}", "limit=-1", "limit=NaN", "limit=" + "9" * 5000):
        yield request("numbers", f"exchanges?{query[:30]}", "GET", f"/_admin/exchanges?{query}")
    for capture in ("1e30", str(2**64), str(2**63), "-1", "NaN", "9" * 5000):
        yield request("numbers", f"captures/{capture[:24]}/image", "GET", f"/_admin/captures/{capture}/image")
        yield request(
            "numbers", f"captures/1/image?size={capture[:24]}", "GET", f"/_admin/captures/1/image?size={capture}"
        )
    for duration in ("1e400", str(2**64), "-1", "NaN"):
        body = dumps({"kind": "slow", "delay": 0, "device_id": XSITE_DEVICE, "duration": raw(duration)})
        yield request(
            "numbers", f"fault duration {duration[:24]}", "POST", "/_admin/faults", body, expect=control_refused
        )


def duplicate_keys() -> Iterator[Case]:
    """Every member of each endpoint's example given twice, the other copy
    of the wrong type (first and last)."""
    for m in endpoint_messages():
        text = dumps(m.body)
        for key, value in m.body.items():
            wrong = json.dumps(WRONG_FOR[type(value)][0]).encode()
            member = json.dumps(key).encode() + b": " + wrong
            yield post("duplicate_keys", f"/{key} again, wrong, last", m, text[:-1] + b", " + member + b"}")
            yield post("duplicate_keys", f"/{key} wrong first", m, b"{" + member + b", " + text[1:])


def nul() -> Iterator[Case]:
    """NUL escaped in strings, as a raw byte in the body, the path and a header."""
    for m in endpoint_messages():
        for pointer, value in leaves(m.body):
            if isinstance(value, str) and len(pointer) == 1:
                yield post(
                    "nul",
                    f"\\u0000 in {where(pointer)}",
                    m,
                    dumps(with_value(m.body, pointer, value[:4] + "\u0000" + value[4:])),
                )
        text = dumps(m.body)
        yield post("nul", "raw NUL inside a string", m, text.replace(b'": "', b'": "\x00', 1))
        yield post("nul", "raw NUL after the document", m, text + b"\x00")
        yield post("nul", "raw NUL before the document", m, b"\x00" + text)
    poll = endpoint_messages()[0]
    yield request("nul", "%00 in the path", "POST", poll.path + "%00", dumps(poll.body))
    yield request("nul", "raw NUL in the path", "POST", poll.path + "\x00", dumps(poll.body), answer_optional=True)
    yield request("nul", "raw NUL in a header", "POST", poll.path, dumps(poll.body), headers=[("X-Nul", "a\x00b")])


def long_strings_many_keys() -> Iterator[Case]:
    """1 MiB in every string member of a poll, 10 MiB in device_id, up to
    100,000 unknown members, a 100,000-item list."""
    poll = next(m for m in endpoint_messages() if m.endpoint == "taskRequest")
    for pointer, value in leaves(poll.body):
        if isinstance(value, str):
            yield post(
                "long_strings_many_keys",
                f"1 MiB {where(pointer)}",
                poll,
                dumps(with_value(poll.body, pointer, "x" * MiB)),
                timeout=30,
            )
    yield post(
        "long_strings_many_keys",
        "10 MiB device_id",
        poll,
        dumps(with_value(poll.body, ("device_id",), "D" * 10 * MiB)),
        timeout=30,
    )
    yield post(
        "long_strings_many_keys",
        "1 MiB of escapes in device_id",
        poll,
        dumps(with_value(poll.body, ("device_id",), "\u00e9" * (MiB // 6))),
        timeout=30,
    )
    for count in (1_000, 10_000, 100_000):
        for m in (poll, next(x for x in endpoint_messages() if x.endpoint == "faceRecognition")):
            extra = {f"k{i}": i for i in range(count)}
            yield post(
                "long_strings_many_keys", f"{count:,} unknown members", m, dumps({**m.copy(), **extra}), timeout=30
            )
    result = next(m for m in endpoint_messages() if m.endpoint == "taskResult")
    yield post(
        "long_strings_many_keys",
        "resp_list of 100,000 items",
        result,
        dumps({**result.copy(), "resp_list": [{"user_id": str(i), "code": 0} for i in range(100_000)]}),
        timeout=30,
    )
    yield post(
        "long_strings_many_keys", "a 100,000-character key", poll, dumps({**poll.copy(), "k" * 100_000: 1}), timeout=30
    )


TRAVERSAL_NAMES = [
    "..",
    ".",
    "../../etc/passwd",
    "/etc/passwd",
    "..\u2215..\u2215etc\u2215passwd",
    "..\\..\\boot.ini",
    "C:\\Windows\\win.ini",
    "%2e%2e/%2e%2e/etc/passwd",
    "a/../../b",
    "\u2025/etc",
    "..\uff0f..\uff0fetc",
    "\u002e\u002e/x",
    "name\u0000.jpg",
    "~/.ssh/id_rsa",
    "\\\\server\\share\\x",
    "file:///etc/passwd",
    "..\u29f8..\u29f8x",
]
TRAVERSAL_PATHS = [
    "/assets/../../etc/passwd",
    "/assets/%2e%2e/%2e%2e/etc/passwd",
    "/assets/..%2f..%2fetc%2fpasswd",
    "/assets/%252e%252e/%252e%252e/etc/passwd",
    "/assets/..\u2215..\u2215etc\u2215passwd",
    "/assets//etc/passwd",
    "/assets/....//....//etc/passwd",
    "/assets/..\\..\\etc\\passwd",
    "/assets/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/assets/..;/..;/etc/passwd",
    "/assets/face.jpg/../../../etc/passwd",
    "/assets/%2fetc%2fpasswd",
    "/assets/\u2025/etc/passwd",
    "/assets/.%00./etc/passwd",
    "/assets/face.jpg%00.png",
    "/assets/%2e",
    "/assets/.",
    "/assets/..",
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/taskRequest/../../etc/passwd",
    "/_admin/../../etc/passwd",
    "/_admin/%2e%2e/%2e%2e/etc/passwd",
    "/..\u2215etc\u2215passwd",
    "//etc/passwd",
    "/assets/\u0000",
]


def traversal() -> Iterator[Case]:
    """Traversal in every name a device or the control API hands the server
    (frpic_name, device_id, getLogFile's log_name) and in URL paths: names
    are refused, no path ever reaches a file outside the asset folder."""
    capture = next(m for m in endpoint_messages() if m.endpoint == "faceRecognition")
    poll = next(m for m in endpoint_messages() if m.endpoint == "taskRequest")
    log_task = next(e.body for e in load_examples() if e.schema == get_contract().all_tasks["getLogFile"].schema)
    for name in TRAVERSAL_NAMES:
        yield post(
            "traversal",
            f"frpic_name {name!r}",
            capture,
            dumps({**capture.copy(), "frpic_name": name}),
            expect=upload_refused,
        )
        yield post("traversal", f"device_id {name!r}", poll, dumps({**poll.copy(), "device_id": name}))
        body = dumps({"task": {**log_task, "log_name": name}, "raw": False})
        yield request(
            "traversal",
            f"getLogFile log_name {name!r}",
            "POST",
            f"/_admin/devices/{TRAVERSAL_DEVICE}/tasks",
            body,
            expect=control_refused,
        )
    for path in TRAVERSAL_PATHS:
        encoded = path.encode("utf-8").decode("latin-1")  # the request line carries UTF-8 bytes as they are
        yield request(
            "traversal",
            f"GET {path!r}",
            "GET",
            encoded,
            answer_optional="\u0000" in path,
            target=target_of(path),
            expect=no_file_leak,
        )


def content_types() -> Iterator[Case]:
    """A correct poll under wrong Content-Types and Content-Encodings, with
    valid and broken compression and two decompression bombs."""
    poll = next(m for m in endpoint_messages() if m.endpoint == "taskRequest")
    capture = next(m for m in endpoint_messages() if m.endpoint == "faceRecognition")
    body = dumps(poll.body)
    for ctype in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "image/jpeg",
        "application/json; charset=latin-1",
        "application/json;;;",
        "*/*",
        "",
        "application/json\u00e9",
        "a" * 10_000,
    ):
        yield post("content_types", f"Content-Type {ctype[:40]!r}", poll, body, content_type=ctype)
    yield post("content_types", "no Content-Type", poll, body, content_type=None)
    yield post("content_types", "two Content-Types", poll, body, headers=[("Content-Type", "text/html")])
    encodings = {
        "gzip (valid)": ("gzip", gzip.compress(body)),
        "deflate (valid)": ("deflate", zlib.compress(body)),
        "br (garbage)": ("br", b"\x8b\x02\x80" + body),
        "gzip (garbage)": ("gzip", b"\x1f\x8b" + body),
        "gzip, gzip": ("gzip, gzip", gzip.compress(gzip.compress(body))),
        "identity": ("identity", body),
        "x-unknown": ("x-unknown", body),
        "zstd (garbage)": ("zstd", body),
        "gzip but plain": ("gzip", body),
    }
    for name, (coding, data) in encodings.items():
        yield post("content_types", f"Content-Encoding {name}", poll, data, headers=[("Content-Encoding", coding)])
    yield post(
        "content_types",
        "gzip bomb: 254 KiB -> 256 MiB of zeros",
        capture,
        b"",
        headers=[("Content-Encoding", "gzip")],
        timeout=30,
        lazy=lambda: bomb("gzip", b"", b"\x00"),
    )
    text = dumps(capture.body)
    yield post(
        "content_types",
        "gzip bomb: a capture + 256 MiB of spaces",
        capture,
        b"",
        headers=[("Content-Encoding", "gzip")],
        timeout=30,
        lazy=lambda: bomb("gzip", text, b" "),
    )
    yield post(
        "content_types",
        "deflate bomb: 64 MiB of zeros",
        poll,
        b"",
        headers=[("Content-Encoding", "deflate")],
        timeout=30,
        lazy=lambda: bomb("deflate", b"", b"\x00", 64 * MiB),
    )


@functools.cache
def bomb(coding: str, prefix: bytes, filler: bytes, size: int = 256 * MiB) -> bytes:
    """``prefix`` + ``size`` bytes of ``filler``, compressed about 1000:1,
    built in pieces so the inflated form never exists here (built once,
    when first sent: about a second)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31 if coding == "gzip" else 15)
    out = [packer.compress(prefix)]
    block = filler * (4 * MiB)
    for _ in range(size // len(block)):
        out.append(packer.compress(block))
    out.append(packer.flush())
    return b"".join(out)


def framing() -> Iterator[Case]:
    """Chunked bodies (valid, with trailers and extensions, broken), bad and
    conflicting Content-Length, pipelining, Expect: 100-continue."""
    poll = next(m for m in endpoint_messages() if m.endpoint == "taskRequest")
    body = dumps(poll.body)
    half = len(body) // 2
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
    te = [("Transfer-Encoding", "chunked")]

    def case(name: str, data: bytes, **kw: Any) -> Case:
        return post("framing", name, poll, data, **kw)

    yield case("chunked", chunked, length=None, headers=te)
    yield case(
        "chunked with trailers",
        chunked[:-2] + b"X-Trailer: yes\r\nX-Other: 1\r\n\r\n",
        length=None,
        headers=te + [("Trailer", "X-Trailer, X-Other")],
    )
    yield case("chunked with extensions", chunked.replace(b"\r\n", b';ext=1;q="x"\r\n', 1), length=None, headers=te)
    yield case("chunk size not hex", b"zz\r\n" + body + b"\r\n0\r\n\r\n", length=None, headers=te, answer_optional=True)
    yield case(
        "chunk longer than said", b"4\r\n" + body + b"\r\n0\r\n\r\n", length=None, headers=te, answer_optional=True
    )
    yield case(
        "chunk size overflows",
        b"ffffffffffffffffffff\r\n" + body,
        length=None,
        headers=te,
        answer_optional=True,
        half_close=True,
    )
    yield case(
        "chunked, never ends",
        b"%x\r\n%s\r\n" % (len(body), body),
        length=None,
        headers=te,
        answer_optional=True,
        half_close=True,
        timeout=5,
    )
    yield case("chunked and Content-Length", chunked, length="5", headers=te, answer_optional=True)
    yield case(
        "Transfer-Encoding: gzip, chunked",
        chunked,
        length=None,
        headers=[("Transfer-Encoding", "gzip, chunked")],
        answer_optional=True,
    )
    yield case(
        "Transfer-Encoding: chunked, identity",
        chunked,
        length=None,
        headers=[("Transfer-Encoding", "chunked, identity")],
        answer_optional=True,
    )
    yield case(
        "Transfer-Encoding: xchunked",
        chunked,
        length=None,
        headers=[("Transfer-Encoding", "xchunked")],
        answer_optional=True,
    )
    yield case(
        "two Transfer-Encoding headers",
        chunked,
        length=None,
        headers=te + [("Transfer-Encoding", "chunked")],
        answer_optional=True,
    )
    for value in ("-1", "abc", "1e3", "+10", f" {len(body)} ", "99999999999999999999", ""):
        yield case(f"Content-Length {value!r}", body, length=value, answer_optional=True, half_close=True, timeout=5)
    yield case("Content-Length twice, equal", body, headers=[("Content-Length", str(len(body)))], answer_optional=True)
    yield case("Content-Length twice, different", body, headers=[("Content-Length", "3")], answer_optional=True)
    yield case("Content-Length: 0 with a body", body, length="0")
    yield case("Content-Length shorter than the body", body, length=str(half))
    yield case(
        "Content-Length longer, client goes quiet",
        body,
        length=str(len(body) + 100),
        half_close=True,
        answer_optional=True,
        timeout=5,
    )
    second = f"POST {poll.path} HTTP/1.1\r\nHost: {{host}}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    yield case("two pipelined requests", body + second + body)
    yield case("Expect: 100-continue", body, headers=[("Expect", "100-continue")])
    yield case("header folded (obs-fold)", body, headers=[("X-Folded", "one\r\n two")], answer_optional=True)
    yield case(
        "Upgrade: websocket",
        body,
        headers=[
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    yield case("Upgrade: h2c", body, headers=[("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])


METHODS = ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "FOO", "get", "M-SEARCH"]


def methods() -> Iterator[Case]:
    """Every method (standard, WebDAV, made up, lowercase) on every kind of
    path; the answer to a device endpoint, an asset or an unknown path is
    stored like any other. A device endpoint judges any method but POST
    (HTTP-METHOD) and refuses it with 400 (docs/mock-server.md), except the
    poll: a poll with findings is still served."""
    endpoints = get_contract().all_endpoints
    targets = [e.path for e in endpoints.values()]
    uploads = {e.path for e in endpoints.values() if e.name != POLL}
    targets += [f"/assets/{DEFAULT_FOR_KIND['image/jpeg']}", "/_admin/devices", "/", "/no/such/path"]
    poll = dumps(endpoint_messages()[0].body)
    for method in METHODS:
        for path in targets:
            body = poll if method not in ("GET", "HEAD", "get") else None
            refused = status_is(400) if path in uploads and method != "CONNECT" else None
            yield request(
                "methods", f"{method} {path}", method, path, body, answer_optional=method == "CONNECT", expect=refused
            )


def long_urls_headers() -> Iterator[Case]:
    poll = next(m for m in endpoint_messages() if m.endpoint == "taskRequest")
    body = dumps(poll.body)
    for size in (8 * 1024, 64 * 1024, MiB):
        yield request(
            "long_urls_headers",
            f"URL of {size:,} bytes",
            "POST",
            poll.path + "?q=" + "a" * size,
            body,
            answer_optional=size >= MiB,
            timeout=15,
        )
        yield post(
            "long_urls_headers",
            f"header value of {size:,} bytes",
            poll,
            body,
            headers=[("X-Long", "b" * size)],
            answer_optional=size >= MiB,
            timeout=15,
        )
    for count in (100, 1_000, 10_000):
        yield post(
            "long_urls_headers",
            f"{count:,} headers",
            poll,
            body,
            headers=[(f"X-H{i}", "v") for i in range(count)],
            answer_optional=count >= 10_000,
            timeout=15,
        )
    yield post("long_urls_headers", "header name of 10,000 bytes", poll, body, headers=[("X" * 10_000, "v")])
    yield post("long_urls_headers", "Cookie of 32 KiB", poll, body, headers=[("Cookie", "c=" + "d" * 32 * 1024)])
    yield request("long_urls_headers", "asset name of 64 KiB", "GET", "/assets/" + "n" * 64 * 1024)


def versions() -> Iterator[Case]:
    """HTTP/1.0 on every endpoint (with and without keep-alive), a missing
    or odd version, no Host, two Hosts, a foreign Host on a device endpoint."""
    for m in endpoint_messages():
        body = dumps(m.body)
        yield post("versions", "HTTP/1.0", m, body, version="HTTP/1.0")
        yield post(
            "versions", "HTTP/1.0 keep-alive", m, body, version="HTTP/1.0", headers=[("Connection", "keep-alive")]
        )
        yield post("versions", "HTTP/1.0 without Host", m, body, version="HTTP/1.0", host=False)
    poll = endpoint_messages()[0]
    body = dumps(poll.body)
    for version in ("HTTP/1.2", "HTTP/2.0", "HTTP/9.9", "http/1.1", "HTTP/1.1x", "HTTP/01.1", ""):
        yield post(
            "versions",
            f"version {version!r}",
            poll,
            body,
            version=version,
            answer_optional=True,
            half_close=True,
            timeout=5,
        )
    yield request(
        "versions",
        "HTTP/0.9 request line",
        "GET",
        "/",
        version="",
        host=False,
        answer_optional=True,
        half_close=True,
        timeout=5,
    )
    yield post("versions", "HTTP/1.1 without Host", poll, body, host=False, answer_optional=True)
    yield post("versions", "two Host headers", poll, body, headers=[("Host", "evil.example")], answer_optional=True)
    yield post(
        "versions", "foreign Host on a device endpoint", poll, body, host=False, headers=[("Host", "evil.example")]
    )
    yield post("versions", "absolute-form target", poll, body, uri="http://{host}" + poll.path)


def images() -> Iterator[Case]:
    """Decompression-bomb headers and broken images where the contract wants
    a JPEG or PNG: a finding, never a 500 (now or when the live page asks for
    a thumbnail)."""
    capture = next(m for m in endpoint_messages() if m.endpoint == "faceRecognition")
    jpeg = base64.b64decode(capture.body["image"])
    variants = {
        "JPEG header claiming 65500x65500": jpeg_claiming(jpeg, 65500, 65500),
        "JPEG header claiming 1x65500": jpeg_claiming(jpeg, 1, 65500),
        "PNG bomb (16000x16000 of zeros)": png_bomb(),
        "truncated JPEG": jpeg[: len(jpeg) // 2],
        "JPEG with garbage appended": jpeg + b"\x00" * 4096,
        "one byte": b"\xff",
        "GIF": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    }
    for name, data in variants.items():
        yield post(
            "images", name, capture, dumps({**capture.copy(), "image": base64.b64encode(data).decode()}), timeout=30
        )
    text = base64.b64encode(jpeg).decode()
    for name, image in {
        "base64 with newlines": "\n".join(text[i : i + 76] for i in range(0, len(text), 76)),
        "URL-safe base64": base64.urlsafe_b64encode(jpeg).decode(),
        "data: URI": "data:image/jpeg;base64," + text,
        "no padding": text.rstrip("="),
        "empty": "",
        "14 MiB of zeros as base64": base64.b64encode(b"\x00" * 14 * MiB).decode(),
    }.items():
        yield post("images", name, capture, dumps({**capture.copy(), "image": image}), timeout=30)


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOFn) rewritten to claim another size."""
    data = bytearray(jpeg)
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            break
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 7] = height.to_bytes(2, "big")
            data[i + 7 : i + 9] = width.to_bytes(2, "big")
            return bytes(data)
        i += 2 + length
    raise ValueError("no frame header in the example JPEG")


@functools.cache
def png_bomb() -> bytes:
    """A PNG of 16000x16000 (256 Mpixel) that compresses to a few hundred KB."""
    out = io.BytesIO()
    Image.new("1", (16000, 16000)).save(out, "PNG", optimize=True)
    return out.getvalue()


def cross_site() -> Iterator[Case]:
    """What a web page the operator visits could send the control API on
    127.0.0.1 (simple requests need no preflight), and DNS rebinding (a
    foreign Host): refused even without a token. The same-origin write is
    the control: it must still work."""
    fault = dumps({"kind": "slow", "delay": 0, "device_id": XSITE_DEVICE, "duration": 1})
    path = "/_admin/faults"
    evil = [("Origin", "http://evil.example")]
    yield request("cross_site", "POST with a foreign Origin", "POST", path, fault, headers=evil, expect=control_refused)
    yield request(
        "cross_site",
        "POST with Sec-Fetch-Site: cross-site",
        "POST",
        path,
        fault,
        headers=[("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "no-cors")],
        expect=control_refused,
    )
    yield request(
        "cross_site",
        "POST as text/plain (no-cors simple request)",
        "POST",
        path,
        fault,
        content_type="text/plain",
        headers=evil,
        expect=control_refused,
    )
    yield request(
        "cross_site",
        "POST as text/plain without Origin",
        "POST",
        path,
        fault,
        content_type="text/plain",
        expect=control_refused,
    )
    yield request(
        "cross_site",
        "POST as a form",
        "POST",
        path,
        b"kind=slow",
        headers=evil,
        content_type="application/x-www-form-urlencoded",
        expect=control_refused,
    )
    yield request(
        "cross_site",
        "POST with Origin: null",
        "POST",
        path,
        fault,
        headers=[("Origin", "null")],
        expect=control_refused,
    )
    yield request(
        "cross_site",
        "enqueue from a foreign Origin",
        "POST",
        f"/_admin/devices/{XSITE_DEVICE}/tasks",
        dumps({"task": {"request_type": "getDevStatus"}}),
        headers=evil,
        expect=control_refused,
    )
    yield request(
        "cross_site",
        "GET with a foreign Host (DNS rebinding)",
        "GET",
        "/_admin/devices",
        host=False,
        headers=[("Host", "evil.example")],
        expect=control_refused,
        via_proxy=False,
    )
    yield request(
        "cross_site",
        "GET with a foreign Host and our port",
        "GET",
        "/_admin/overview",
        host=False,
        headers=[("Host", "rebind.evil.example:8080")],
        expect=control_refused,
        via_proxy=False,
    )
    # Through a reverse proxy the page's origin is the proxy's while the server sees its own Host: not same-origin.
    yield request(
        "cross_site",
        "same-origin POST (the live page)",
        "POST",
        path,
        fault,
        headers=[("Origin", "http://{host}"), ("Sec-Fetch-Site", "same-origin")],
        expect=status_is(201),
        via_proxy=False,
    )


# ---- expectations beyond the shared ones ---------------------------------------------------------------------------


def status_is(*wanted: int) -> Check:
    def check(answer: Answer) -> str | None:
        if answer.status not in wanted:
            return f"expected HTTP {' or '.join(map(str, wanted))}, got {answer.status}"
        return None

    return check


def control_refused(answer: Answer) -> str | None:
    if answer.status is not None and 200 <= answer.status < 300:
        return f"the control API accepted it (HTTP {answer.status})"
    return None


def upload_refused(answer: Answer) -> str | None:
    """A capture the server must not acknowledge: 400, or 200 with code != 0."""
    if answer.status == 400:
        return None
    try:
        code = json.loads(answer.body).get("code")
    except (ValueError, AttributeError):
        code = None
    if answer.status == 200 and code not in (0, None):
        return None
    return f"acknowledged (HTTP {answer.status}, code {code})"


def no_file_leak(answer: Answer) -> str | None:
    """No traversal ever serves a file from outside the asset folder."""
    if b"root:" in answer.body or b"[boot loader]" in answer.body or b"[fonts]" in answer.body:
        return "a file outside the asset folder was served"
    return None


# ---- the corpus ----------------------------------------------------------------------------------------------------

CLASSES: dict[str, Callable[[], Iterator[Case]]] = {
    "malformed_json": malformed_json,
    "wrong_types": wrong_types,
    "empty": empty,
    "big_bodies": big_bodies,
    "deep_nesting": deep_nesting,
    "encodings": encodings,
    "numbers": numbers,
    "duplicate_keys": duplicate_keys,
    "nul": nul,
    "long_strings_many_keys": long_strings_many_keys,
    "traversal": traversal,
    "images": images,
    "content_types": content_types,
    "framing": framing,
    "methods": methods,
    "long_urls_headers": long_urls_headers,
    "versions": versions,
    "cross_site": cross_site,
}


def corpus(classes: Iterable[str] | None = None) -> list[Case]:
    """Every case, numbered in a stable order (the number is sent in the
    X-Hostile-Case header and finds the stored exchange again)."""
    out: list[Case] = []
    for name in classes or CLASSES:
        for case in CLASSES[name]():
            out.append(replace(case, cid=len(out)))
    return out


def counts(cases: Iterable[Case]) -> Counter[str]:
    return Counter(c.klass for c in cases)


if __name__ == "__main__":
    everything = corpus()
    for klass, n in counts(everything).items():
        print(f"{klass:24} {n:5}")
    print(f"{'total':24} {len(everything):5}")
