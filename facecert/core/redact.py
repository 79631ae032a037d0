"""No faces or identities in what we write (privacy by default).

Which fields carry a face and which a person's identity is the schemas' ``x-personal``
annotation (``biometric`` | ``identity``), read through
:meth:`facecert.core.contract.Contract.personal_fields`. Judging always sees the real bytes:
only the writers (HAR, JSONL, the session database, summary, JUnit, Allure) pass what
they write through the run's :class:`Redactor`.

* A biometric value becomes a placeholder string that records what the image rules
  need, so ``facecert validate`` of a redacted capture gives the live verdict::

      facecert-redacted:image/jpeg;bytes=1234;head=ffd8ffe000104a46;px=640x480;sha256=<64 hex>
      facecert-redacted:invalid-base64;chars=17;sha256=<sha256 of the text>

  ``image/jpeg`` is what the bytes are (by the magic numbers the engine checks), not
  what the schema wants; ``px=?`` when Pillow cannot read the header, ``pixels=N`` when
  the header claims a decompression bomb. The engine reads a placeholder only in an
  exchange marked redacted (:attr:`facecert.core.model.Exchange.redacted`): a live peer that
  sends such a string is judged on it as text (it is no base64).
* An identity value becomes a salted hash (HMAC-SHA256 with one random salt per run)
  of the same length in characters and in UTF-8 JSON bytes: the length bounds
  (``max_string_chars``) and ``USERINFO-SIZE`` (256 bytes of user_info) judge the
  hash as they judged the name. The hash is hex; where the name had multi-byte
  characters, filler characters of the same byte width (``·`` 2, ``※`` 3, ``𝔥`` 4
  bytes) make up the difference. A value of ASCII digits only (a phone or ID card
  number) gets a hash of digits, its first not 0 unless the value's was: where it
  stood as a number, the file still holds a valid number.
* In free text and in the files of a report (:meth:`Redactor.text`, :meth:`Redactor.data`)
  a value seen is replaced where it stands alone: not inside a longer run of ASCII
  letters and digits, nor a number's digits (``0.24052356294712345`` holds the
  document's phone number ``12345`` by chance, a sha256 in manifest.json may too).
  Replacing it there broke the HAR's JSON and the manifest's sums; a value glued to
  other letters or digits (``user12345``) is left as it is.
* Bodies are rewritten member by member: key order, duplicate keys and number
  literals stay as they were, so the parse-level rules judge the same message. A body
  above the body limit is padded with trailing spaces to its original length
  (MSG-TOO-LARGE judges its size). A body that is not JSON keeps its bytes except runs
  of base64 of an image's size (:data:`B64_RUN`), which become placeholders.

``--keep-personal-data`` (:func:`configure`) makes the run's redactor keep everything.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import io
import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from facecert.core.contract import Contract, get_contract
from facecert.core.files import NEW
from facecert.core.model import Exchange
from facecert.core.placeholder import PREFIX, is_placeholder, parse_placeholder
from facecert.core.rules.message import MAGIC, decoded_base64

SALT_ENV = "FACECERT_REDACTION_SALT"  # hex; certify hands its salt to the processes it starts
KEEP_ENV = "FACECERT_KEEP_PERSONAL_DATA"  # "1": keep everything (--keep-personal-data)
B64_RUN = re.compile(rb"[A-Za-z0-9+/]{512,}={0,2}")  # a face in a body that is no JSON: 384 bytes and more
_LOOKS_B64 = re.compile(r"^[A-Za-z0-9+/\s]{16,}={0,2}\s*$")
_FILLER = {2: "\u00b7", 3: "\u203b", 4: "\U0001d525"}  # ·, ※, 𝔥: one character of that many UTF-8 bytes
SCRUB_MIN_CHARS = 3  # personal values shorter than this are not searched for in free text (they would hit words)


def image_placeholder(value: str) -> str:
    """The placeholder of one biometric value (the real bytes are hashed, then forgotten)."""
    data = decoded_base64(value)
    if isinstance(data, Exception):
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{PREFIX}invalid-base64;chars={len(value)};sha256={digest}"
    return (
        f"{PREFIX}{media_of(data)};bytes={len(data)};head={data[:8].hex()};{_pixel_size(data)};"
        f"sha256={hashlib.sha256(data).hexdigest()}"
    )


def media_of(data: bytes) -> str:
    """The media type the engine's magic numbers give these bytes."""
    return next(
        (media for media, magic in MAGIC.items() if any(data.startswith(m) for m in magic)), "application/octet-stream"
    )


def _pixel_size(data: bytes) -> str:
    """``px=WxH`` from the header only (Pillow opens lazily); a bomb says how many pixels it claims."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        return (
            f"pixels={claimed.group(1)}" if claimed else f"pixels={int(Image.MAX_IMAGE_PIXELS or 89_478_485) * 2 + 1}"
        )
    except Exception:  # noqa: BLE001 - no readable header: nothing to record, as the live check finds nothing
        return "px=?"
    return f"px={width}x{height}"


class Redactor:
    """One run's redaction: its salt, and the personal values it replaced (for free text)."""

    def __init__(self, salt: bytes | None = None, keep: bool = False, contract: Contract | None = None) -> None:
        self.salt = salt if salt is not None else secrets.token_bytes(32)
        self.keep = keep
        self.keep_salt = False  # --keep-salt: the salt goes to the summary and the manifest (privacy_fields)
        self.contract = contract or get_contract()
        self.seen_identity: dict[str, str] = {}
        self.seen_images: dict[str, str] = {}
        self._searched: tuple[int, int, list[tuple[str, str]]] = (0, 0, [])

    # ---- single values -----------------------------------------------------
    def identity(self, value: str) -> str:
        """A salted hash as long as ``value`` in characters and in JSON UTF-8 bytes."""
        if self.keep or not value:
            return value
        if value in self.seen_identity:
            return self.seen_identity[value]
        if value.isascii() and value.isdigit():
            token = self._decimal(value)
            self.seen_identity[value] = token
            return token
        chars = len(value)
        width = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")) - 2
        extra = min(width - chars, 3 * chars)  # a name of escaped control characters keeps its char count only
        wide = min(extra // 3, chars)
        rest = extra - 3 * wide
        fillers = _FILLER[4] * wide + (_FILLER[rest + 1] if rest else "")
        token = self._hex(value, chars - len(fillers)) + fillers
        self.seen_identity[value] = token
        return token

    def _hex(self, value: str, count: int) -> str:
        out, block = "", 0
        while len(out) < count:
            out += hmac.new(
                self.salt, value.encode("utf-8", "surrogatepass") + block.to_bytes(4, "big"), hashlib.sha256
            ).hexdigest()
            block += 1
        return out[:count]

    def _decimal(self, value: str) -> str:
        """The hash of a number written in digits, as many digits, the first not 0 unless the value's is (a
        JSON number with a leading 0 is no JSON)."""
        digits = "".join(str(int(ch, 16) % 10) for ch in self._hex(value, len(value)))
        if value[0] != "0" and digits[0] == "0":
            digits = str(1 + int(self._hex(value + "\x00", 1), 16) % 9) + digits[1:]
        return digits

    def _searched_values(self) -> list[tuple[str, str]]:
        """(value, token) of every value seen long enough to search for in free text, the longest first: a
        name that holds a shorter one ("Zhang Wei", "Zhang") is replaced whole, not cut up."""
        identities, images, values = self._searched
        if (identities, images) != (len(self.seen_identity), len(self.seen_images)):
            pairs = [*self.seen_identity.items(), *self.seen_images.items()]
            values = sorted(((v, t) for v, t in pairs if len(v) >= SCRUB_MIN_CHARS), key=lambda vt: -len(vt[0]))
            self._searched = (len(self.seen_identity), len(self.seen_images), values)
        return values

    def biometric(self, value: str) -> str:
        if self.keep or is_placeholder(value):
            return value
        if value not in self.seen_images:
            self.seen_images[value] = image_placeholder(value)
        return self.seen_images[value]

    # ---- messages ----------------------------------------------------------
    def body(self, raw: bytes | None, schema: str | None) -> bytes | None:
        """One HTTP body with its personal fields replaced (``schema``: its contract schema, if known)."""
        if self.keep or not raw:
            return raw
        try:
            text = raw.decode("utf-8")
            plain = json.loads(text)
            kept = json.loads(
                text, object_pairs_hook=_Pairs, parse_float=_Literal, parse_int=_Literal, parse_constant=_Literal
            )
        except (UnicodeDecodeError, ValueError, RecursionError):
            return B64_RUN.sub(lambda m: self.biometric(m.group().decode("ascii")).encode("ascii"), raw)
        marks = self._marks(plain, schema)
        changed = self._apply(kept, marks)
        if not changed:
            return raw
        try:
            out = _dumps(kept).encode("utf-8", "surrogatepass")
        except RecursionError:
            return B64_RUN.sub(lambda m: self.biometric(m.group().decode("ascii")).encode("ascii"), raw)
        if len(raw) > self.contract.limits.max_body_bytes and len(out) < len(raw):
            out += b" " * (len(raw) - len(out))  # MSG-TOO-LARGE judges the size: keep it
        return out

    def _marks(self, plain: Any, schema: str | None) -> dict[tuple[str, ...], str]:
        marks: dict[tuple[str, ...], str] = {}
        if schema and schema in self.contract.raw:
            try:
                found = self.contract.personal_fields(schema, plain)
            except (ValueError, RecursionError):
                found = {}
            marks = {tuple(_unescape(p) for p in pointer.split("/")[1:]): kind for pointer, kind in found.items()}
        return marks

    def _apply(self, kept: Any, marks: dict[tuple[str, ...], str]) -> bool:
        """Replace in place: the schema's marks, then any member a name alone marks (a message
        no schema covered, a field where the schema does not expect it)."""
        names = self.contract.personal_names
        changed = False
        stack: list[tuple[Any, tuple[str, ...]]] = [(kept, ())]
        while stack:
            node, path = stack.pop()
            if isinstance(node, _Pairs):
                for index, (key, value) in enumerate(node):
                    here = path + (key,)
                    kind = marks.get(here) or _by_name(names.get(key), value)
                    if kind and isinstance(value, str):
                        new = self.biometric(value) if kind == "biometric" else self.identity(value)
                        if new != value:
                            node[index] = (key, new)
                            changed = True
                    else:
                        stack.append((value, here))
            elif isinstance(node, list):
                stack.extend((item, path + (str(i),)) for i, item in enumerate(node))
        return changed

    def exchange(self, ex: Exchange) -> Exchange:
        """The exchange as a writer may store it, marked redacted (unchanged with keep)."""
        if self.keep or ex.redacted:
            return ex
        request_schema, answer_schema = self._schemas(ex)
        return dataclasses.replace(
            ex,
            request_body=self.body(ex.request_body, request_schema) or b"",
            response_body=self.body(ex.response_body, answer_schema),
            error=self.text(ex.error) if ex.error else ex.error,
            redacted=True,
        )

    def exchanges(self, exchanges: Iterable[Exchange]) -> Iterable[Exchange]:
        return (self.exchange(ex) for ex in exchanges)

    def _schemas(self, ex: Exchange) -> tuple[str | None, str | None]:
        endpoint = self.contract.endpoint_for_path(ex.path)
        if endpoint is None:
            return None, None
        answer: str | None = endpoint.answer
        if endpoint.answer == "tasks":
            answer = None
            try:
                name = json.loads(ex.response_body or b"").get("request_type")
            except (ValueError, AttributeError, RecursionError):
                name = None
            if isinstance(name, str) and name in self.contract.all_tasks:
                answer = self.contract.all_tasks[name].schema
        return endpoint.request, answer

    # ---- free text and evidence ----------------------------------------------
    def value(self, data: Any) -> Any:
        """A JSON-like value for evidence (Allure, summary): members named personal by the
        contract replaced, every string scrubbed of the personal values seen so far."""
        if self.keep:
            return data
        names = self.contract.personal_names
        if isinstance(data, dict):
            out = {}
            for key, item in data.items():
                kind = names.get(key) if isinstance(key, str) else None
                if kind and isinstance(item, str) and item:
                    out[key] = (
                        self.biometric(item)
                        if kind[0] == "biometric"
                        else (self.identity(item) if kind[1] else self.text(item))
                    )
                else:
                    out[key] = self.value(item)
            return out
        if isinstance(data, (list, tuple)):
            return [self.value(item) for item in data]
        if isinstance(data, str):
            return self.text(data)
        return data

    def text(self, text: str) -> str:
        """``text`` with every personal value this run replaced (and any image-sized base64 run) taken out."""
        if self.keep or not text:
            return text
        # a tiny "image" (a device's "1") or name holds no face and no person, and searched for it would replace
        # every "1" of a report (its timestamps, counts and messages): SCRUB_MIN_CHARS
        for original, token in self._searched_values():
            if original in text:
                text = replace_alone(text, original, token)
        return B64_RUN.sub(
            lambda m: self.biometric(m.group().decode("ascii")).encode("ascii"), text.encode("utf-8", "surrogatepass")
        ).decode("utf-8", "surrogatepass")

    def data(self, blob: bytes, runs: bool = True) -> bytes:
        """Bytes of any file we write (a SQLite page, a spilled body): every personal value seen, out;
        with ``runs`` also any run of base64 of an image's size (not in the HTML report: its fonts)."""
        if self.keep or not blob:
            return blob
        text: str | None = None  # the blob as Latin-1 (a character a byte), made once a value is found in it
        for original, token in self._searched_values():
            value = original.encode("utf-8", "surrogatepass").decode("latin-1")
            if text is None:
                if value.encode("latin-1") not in blob:
                    continue
                text = blob.decode("latin-1")
            if value in text:
                text = replace_alone(text, value, token.encode("utf-8", "surrogatepass").decode("latin-1"))
        if text is not None:
            blob = text.encode("latin-1")
        for original, token in list(self.seen_images.items()):
            decoded = decoded_base64(original)
            if isinstance(decoded, bytes) and len(decoded) >= 64 and decoded in blob:
                blob = blob.replace(decoded, token.encode("ascii"))  # a picture written as a file
        if not runs:
            return blob
        return B64_RUN.sub(lambda m: self.biometric(m.group().decode("ascii")).encode("ascii"), blob)


_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")


def replace_alone(text: str, original: str, token: str) -> str:
    """``text`` with ``original`` replaced by ``token`` where it stands alone: an edge of ``original`` that is an
    ASCII letter or digit must not touch another one (a longer number, word, hex digest or base64 run), and an
    edge digit must not continue a decimal number across its point (``3.12345``, ``12345.6``). Bytes go
    through as Latin-1 (one character a byte), so that the same test holds for a file's bytes."""
    guard_head, guard_tail = original[:1] in _ALNUM, original[-1:] in _ALNUM
    number_head, number_tail = original[:1] in _DIGITS, original[-1:] in _DIGITS
    pieces: list[str] = []
    kept = 0
    at = text.find(original)
    while at != -1:
        end = at + len(original)
        before, after = text[at - 1 : at] if at else "", text[end : end + 1]
        glued = (guard_head and before in _ALNUM) or (guard_tail and after in _ALNUM)
        glued = glued or (number_head and before == "." and text[at - 2 : at - 1] in _DIGITS and at >= 2)
        glued = glued or (number_tail and after == "." and text[end + 1 : end + 2] in _DIGITS)
        if glued:
            at = text.find(original, at + 1)
            continue
        pieces += [text[kept:at], token]
        kept = end
        at = text.find(original, end)
    if not pieces:
        return text
    pieces.append(text[kept:])
    return "".join(pieces)


def _by_name(kinds: tuple[str, bool] | None, value: Any) -> str | None:
    """A member the contract names personal where no schema mark reached it: an image
    name marks a base64-looking string; an identity name only if it is personal everywhere."""
    if kinds is None or not isinstance(value, str):
        return None
    kind, everywhere = kinds
    if kind == "biometric":
        return kind if _LOOKS_B64.match(value) else None
    return kind if everywhere else None


class _Pairs(list):
    """An object's members in order, duplicates kept (what the sender sent)."""


class _Literal(str):
    """A number or constant literal as the sender wrote it."""


def _dumps(node: Any) -> str:
    if isinstance(node, _Pairs):
        return "{" + ",".join(_string(k) + ":" + _dumps(v) for k, v in node) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_dumps(item) for item in node) + "]"
    if isinstance(node, _Literal):
        return str(node)
    if isinstance(node, str):
        return _string(node)
    return json.dumps(node)  # true, false, null


def _string(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text)  # a lone surrogate stays an escape (MSG-BAD-UNICODE judges it)
    return json.dumps(text, ensure_ascii=False)


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


# ---- the run's redactor ------------------------------------------------------
_CURRENT: Redactor | None = None


def configure(keep_personal_data: bool = False, salt: bytes | None = None, keep_salt: bool = False) -> Redactor:
    """The run's redactor (one salt per run), also handed to the processes it starts (environment)."""
    global _CURRENT
    _CURRENT = Redactor(salt=salt, keep=keep_personal_data)
    _CURRENT.keep_salt = keep_salt
    os.environ[SALT_ENV] = _CURRENT.salt.hex()
    os.environ[KEEP_ENV] = "1" if keep_personal_data else "0"
    return _CURRENT


def current() -> Redactor:
    """The run's redactor: the one :func:`configure` made, or one from the environment (a
    process certify started), or a fresh one that redacts (privacy by default)."""
    global _CURRENT
    if _CURRENT is None:
        salt_hex = os.environ.get(SALT_ENV, "")
        try:
            salt = bytes.fromhex(salt_hex) if salt_hex else None
        except ValueError:
            salt = None
        _CURRENT = Redactor(salt=salt, keep=os.environ.get(KEEP_ENV) == "1")
    return _CURRENT


def privacy_fields(redactor: Redactor) -> dict[str, Any]:
    """What a summary says about personal data: kept or redacted, and the salt only if asked."""
    fields: dict[str, Any] = {"personal_data": "kept" if redactor.keep else "redacted"}
    if redactor.keep_salt and not redactor.keep:
        fields["redaction_salt"] = redactor.salt.hex()
    return fields


def reset() -> None:
    """Forget the run's redactor (tests, and a second run in one process)."""
    global _CURRENT
    _CURRENT = None
    os.environ.pop(SALT_ENV, None)
    os.environ.pop(KEEP_ENV, None)


# ---- a report folder, after the run -------------------------------------------------
def scrub(data: Any, redactor: Redactor) -> Any:
    """``data`` with every string scrubbed of the personal values seen (keys and shape kept:
    a summary's ``name`` is a scenario's, not a person's)."""
    if isinstance(data, dict):
        return {key: scrub(value, redactor) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [scrub(value, redactor) for value in data]
    return redactor.text(data) if isinstance(data, str) else data


def scrub_folder(folder: Path, redactor: Redactor, skip: Iterable[str] = ()) -> list[Path]:
    """Take every personal value the run replaced out of every file under ``folder`` (the
    session database rewritten, see :func:`redact_sqlite`); the files changed. Links are
    not followed: a planted link is left, not written through."""
    if redactor.keep:
        return []
    changed: list[Path] = []
    skipped = set(skip)
    for path in sorted(Path(folder).rglob("*")):
        if path.is_symlink() or not path.is_file() or path.name in skipped or path.name.endswith(("-wal", "-shm")):
            continue
        if path.suffix == ".db":
            redact_sqlite(path, redactor)
            changed.append(path)
            continue
        data = path.read_bytes()
        clean = redactor.data(data, runs="html" not in path.relative_to(folder).parts)
        if clean != data:
            _rewrite(path, clean)
            changed.append(path)
    return changed


def _rewrite(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".redact.tmp")
    if os.path.lexists(tmp):
        tmp.unlink()
    with os.fdopen(os.open(tmp, NEW, 0o600), "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def redact_sqlite(path: Path, redactor: Redactor) -> None:
    """Rewrite a SQLite database with every text and blob value redacted (bodies by their
    endpoint's schema where a row names its path), then VACUUM it into a fresh file: the
    old pages (and the WAL) that still held the faces are gone with it."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({quoted})")]
            for row in conn.execute(f"SELECT rowid, * FROM {quoted}").fetchall():
                values = dict(zip(columns, row[1:], strict=True))  # rowid, then one per column
                schema = redactor._schemas(Exchange(method="POST", path=str(values.get("path") or "")))[0]
                changes = {
                    col: _redact_cell(value, redactor, schema if col == "request_body" else None)
                    for col, value in values.items()
                    if isinstance(value, (str, bytes))
                }
                changes = {col: value for col, value in changes.items() if value != values[col]}
                if changes:
                    sets = ", ".join('"' + c.replace('"', '""') + '" = ?' for c in changes)
                    conn.execute(f"UPDATE {quoted} SET {sets} WHERE rowid = ?", [*changes.values(), row[0]])
        conn.commit()
        tmp = path.with_name(path.name + ".redact.tmp")
        if os.path.lexists(tmp):
            tmp.unlink()
        conn.execute("VACUUM INTO ?", (str(tmp),))
    finally:
        conn.close()
    os.replace(tmp, path)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if os.path.lexists(side):
            side.unlink()


def _redact_cell(value: str | bytes, redactor: Redactor, schema: str | None) -> str | bytes:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    done = redactor.data(redactor.body(raw, schema) or b"")
    if isinstance(value, str):
        return done.decode("utf-8", "surrogatepass")
    return done


def tile_png(placeholder: str, size: tuple[int, int] = (320, 240)) -> bytes:
    """A grey tile that stands for a redacted picture in a report a person reads: what it was
    (media type, pixel size, bytes) and its sha256, not the face."""
    from PIL import Image, ImageDraw

    try:
        held = parse_placeholder(placeholder)
        lines = [
            "redacted picture",
            held.media or "not base64",
            f"{held.size:,} bytes",
            f"{held.pixels:,} pixels" if held.pixels is not None else "pixel size unknown",
            "sha256",
            held.sha256[:32],
            held.sha256[32:],
        ]
    except ValueError:
        lines = ["redacted picture", "(placeholder unreadable)"]
    image = Image.new("RGB", size, (160, 160, 160))
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((12, 12 + 30 * number), line, fill=(32, 32, 32))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def picture_for_report(data: bytes, redactor: Redactor) -> tuple[bytes, str, str]:
    """(bytes, media type, extension) to attach for a picture: itself when personal data is
    kept, else the grey tile of its placeholder."""
    if redactor.keep:
        return data, "image/jpeg", "jpg"
    token = redactor.biometric(base64.b64encode(data).decode("ascii"))
    return tile_png(token), "image/png", "png"
