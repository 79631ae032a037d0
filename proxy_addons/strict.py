"""Clean text for everything the proxy writes, on top of :mod:`facecert.core.jsonsafe`.

A device can put a lone surrogate (``"\\udfff"``) or a NUL in a message, and
mitmproxy decodes odd header and path bytes with ``surrogateescape``: such
strings reach finding messages, header dicts and paths. JSON files are
written with :func:`facecert.core.jsonsafe.dumps_strict`; text that also goes to
XML (JUnit), log lines and flow comments is cleaned here: a lone surrogate
becomes U+FFFD (as jsonsafe does), and a control character XML 1.0 refuses
becomes its visible escape (``\\x00``).
"""

from __future__ import annotations

import dataclasses
import re

from facecert.core.jsonsafe import clean_text as _no_surrogates
from facecert.core.jsonsafe import strict_value
from facecert.core.model import Finding

#: control characters XML 1.0 has no place for (tab, newline and carriage return are fine)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_text(text: str) -> str:
    """``text`` as any strict JSON or XML writer takes it."""
    return _CONTROL.sub(_escape, _no_surrogates(text))


def clean_finding(finding: Finding) -> Finding:
    """A copy of the finding whose every text is writable to JSON and XML."""
    return dataclasses.replace(
        finding,
        message=clean_text(finding.message),
        spec=clean_text(finding.spec),
        pointer=clean_text(finding.pointer),
        device_id=clean_text(finding.device_id),
        endpoint=clean_text(finding.endpoint),
        note=clean_text(finding.note),
        expected=strict_value(finding.expected, unsafe_ints_as_text=True),
        actual=strict_value(finding.actual, unsafe_ints_as_text=True),
    )
