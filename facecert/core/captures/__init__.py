"""Capture readers and writers: HAR 1.2, mitmproxy flow files, our JSONL.

Every reader yields :class:`facecert.core.model.Exchange` in file order; every
problem with the file is a :class:`CaptureError` carrying a message for a
person (the CLI turns it into exit code 2, never a traceback).
"""

from facecert.core.captures.detect import read_capture, sniff_format
from facecert.core.captures.errors import CaptureError
from facecert.core.captures.har import exchanges_to_har, read_judged_with, write_har
from facecert.core.captures.jsonl import write_jsonl

__all__ = [
    "CaptureError",
    "exchanges_to_har",
    "read_capture",
    "read_judged_with",
    "sniff_format",
    "write_har",
    "write_jsonl",
]
