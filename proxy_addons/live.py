"""How findings show while the proxy runs: log lines and flow marks.

mitmproxy colours a log line by its level (error red, warning yellow), so a
finding's severity is mapped to a logging level and mitmdump, mitmweb and the
console UI all colour it alike, with no escape codes of ours in log files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from facecert.core.model import Finding, Severity
from facecert.proxy_addons.strict import clean_text

LEVEL = {Severity.ERROR: logging.ERROR, Severity.WARNING: logging.WARNING, Severity.INFO: logging.INFO}
MARK = {Severity.ERROR: ":red_circle:", Severity.WARNING: ":warning:"}
PREFIX = "facecert "
COMMENT_LIMIT = 20


def log_line(finding: Finding) -> str:
    """One line per finding; ``facecert`` first so it can be grepped and coloured."""
    device = f" device={finding.device_id}" if finding.device_id else ""
    return clean_text(f"{PREFIX}{finding.line()}{device}")


def worst(findings: Iterable[Finding]) -> Severity | None:
    ranked = sorted(findings, key=lambda f: f.severity.rank, reverse=True)
    return ranked[0].severity if ranked else None


def mark_for(findings: list[Finding]) -> str:
    """mitmproxy marker (emoji short code) for the worst finding; "" leaves the flow unmarked."""
    severity = worst(findings)
    return MARK.get(severity, "") if severity else ""


def comment_for(findings: list[Finding]) -> str:
    lines = [f"{f.severity.value.upper()} {f.rule}: {f.message}" for f in findings[:COMMENT_LIMIT]]
    if len(findings) > COMMENT_LIMIT:
        lines.append(f"… and {len(findings) - COMMENT_LIMIT} more (see the report)")
    return clean_text("\n".join(lines))
