"""A redacted copy of an existing capture (``facecert redact IN OUT``): the same format,
every exchange passed through a :class:`facecert.core.redact.Redactor`."""

from __future__ import annotations

import os
from pathlib import Path

from facecert.core.captures.detect import read_capture, sniff_format
from facecert.core.captures.errors import CaptureError
from facecert.core.captures.flows import REDACTED_KEY, flow_to_exchange
from facecert.core.captures.har import exchanges_to_har, read_judged_with
from facecert.core.captures.jsonl import exchange_to_record
from facecert.core.files import NEW, replace_with
from facecert.core.jsonsafe import dumps_strict
from facecert.core.redact import Redactor


def redact_capture(source: Path, target: Path, redactor: Redactor) -> tuple[str, int]:
    """Write ``source`` (HAR, mitmproxy flows, facecert JSONL) redacted to ``target`` in the same
    format; (format, exchanges written). A HAR keeps how it was judged live (``_facecert``)."""
    fmt = sniff_format(source)
    if Path(source).resolve() == Path(target).resolve():
        raise CaptureError(f"{target}: write the redacted copy beside the capture, not over it")
    if fmt == "flows":
        return fmt, _redact_flows(source, target, redactor)
    if fmt not in ("har", "jsonl"):
        raise CaptureError(f"{source}: a single message, not a capture: facecert redact takes HAR, flows or JSONL")
    exchanges = [redactor.exchange(ex) for ex in read_capture(source, fmt)]
    if fmt == "har":
        text = dumps_strict(exchanges_to_har(exchanges, "facecert redact", read_judged_with(source)))
        replace_with(target, lambda out: out.write(text))
    else:
        replace_with(
            target, lambda out: out.writelines(dumps_strict(exchange_to_record(ex)) + "\n" for ex in exchanges)
        )
    return fmt, len(exchanges)


def _redact_flows(source: Path, target: Path, redactor: Redactor) -> int:
    """Flows stay flows: each body redacted in place, the flow marked in its metadata."""
    from mitmproxy import http
    from mitmproxy import io as mitm_io
    from mitmproxy.exceptions import FlowReadException

    count = 0
    tmp = Path(target).with_name(Path(target).name + ".tmp")
    if os.path.lexists(tmp):
        tmp.unlink()
    try:
        with open(source, "rb") as handle, os.fdopen(os.open(tmp, NEW, 0o644), "wb") as out:
            writer = mitm_io.FlowWriter(out)
            try:
                for flow in mitm_io.FlowReader(handle).stream():
                    exchange = flow_to_exchange(flow)
                    if isinstance(flow, http.HTTPFlow) and exchange is not None and not exchange.redacted:
                        done = redactor.exchange(exchange)
                        flow.request.content = done.request_body
                        if flow.response is not None and done.response_body is not None:
                            flow.response.content = done.response_body
                        flow.metadata[REDACTED_KEY] = True
                    writer.add(flow)
                    count += 1
            except (FlowReadException, ValueError, KeyError, TypeError) as exc:
                raise CaptureError(f"{source}: not a readable mitmproxy flow file ({str(exc)[:120]})") from None
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    return count
