"""One run of the hostile corpus against a server (direct or through the
proxy) and what the tests assert about it, with a report a person can act
on: each failing case with its request, the answer and the problem, and the
server's tracebacks."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.hostile.conftest import ServeProcess, tracebacks
from tests.hostile.corpus import CASE_HEADER, Case, counts
from tests.hostile.rawhttp import Answer
from tests.hostile.runner import (
    Canary,
    Outcome,
    control_api_still_answers,
    judge,
    many_connections,
    send_all,
    slowloris,
)

SHOWN = 40  # failing cases printed per assertion (the JSON report has all of them)


@dataclass
class Run:
    host: str
    port: int
    outcomes: list[Outcome]
    seconds: float
    canary: Canary
    slow: dict[str, Any]
    many: list[Answer]
    many_stored: int
    rss_before: int
    rss_after: int
    tracebacks: list[str]
    after: list[str]
    report: Path
    classes: Counter[str] = field(default_factory=Counter)

    def in_flight(self, start: float, seconds: float) -> list[Outcome]:
        """Cases being sent or answered while a canary poll waited."""
        return [o for o in self.outcomes if o.started < start + seconds and o.started + o.answer.elapsed > start]

    def stalls(self) -> str:
        lines = []
        for start, seconds in self.canary.slowest():
            names = [
                f"#{o.case.cid} [{o.case.klass}] {o.case.name[:80]} ({o.answer.elapsed:.2f} s)"
                for o in sorted(self.in_flight(start, seconds), key=lambda o: -o.answer.elapsed)[:4]
            ]
            lines.append(f"  a poll waited {seconds:.2f} s while in flight: " + "; ".join(names))
        return "\n".join(lines)

    def failing(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if kind in o.problems]

    def explain(self, kind: str, title: str) -> str:
        failing = self.failing(kind)
        per_class = Counter(o.case.klass for o in failing)
        lines = [
            f"{len(failing)} of {len(self.outcomes)} cases: {title} "
            f"(per class: {dict(per_class)}); full report: {self.report}"
        ]
        shown: dict[str, int] = defaultdict(int)
        for outcome in failing:  # a few of every class rather than the first 40 of one
            if shown[outcome.case.klass] < max(3, SHOWN // max(1, len(per_class))):
                shown[outcome.case.klass] += 1
                lines.append(outcome.describe(f"{self.host}:{self.port}"))
        return "\n".join(lines)


def execute(
    cases: list[Case],
    server: ServeProcess,
    host: str,
    port: int,
    report: Path,
    via_proxy: bool = False,
    connections: int = 300,
    rss_of: Callable[[], int] | None = None,
    log: Callable[[], str] | None = None,
) -> Run:
    """Send every case (with the canary polling), the slow clients and the
    concurrent connections, then look at the store, the log and the control
    API. ``rss_of`` and ``log`` default to the server's (the proxy's when in front)."""
    rss = rss_of or server.rss
    log = log or server.stderr
    for (
        case
    ) in cases:  # build the bombs now: compressing them while the canary runs would slow the canary, not the server
        if case.lazy is not None:
            case.lazy()
    before_log = len(log())
    rss_before = rss()
    started = time.monotonic()
    with Canary(host, port) as canary:
        outcomes = send_all(cases, host, port)
        slow = slowloris(host, port)
        many = many_connections(host, port, connections)
    seconds = time.monotonic() - started
    stored = server.stored_cases(CASE_HEADER)
    for outcome in outcomes:
        judge(outcome, stored, via_proxy)
    after = control_api_still_answers(host, port)
    many_stored = sum(1 for value in stored if value.startswith("many-"))
    run = Run(
        host,
        port,
        outcomes,
        seconds,
        canary,
        slow,
        many,
        many_stored,
        rss_before,
        rss(),
        tracebacks(log()[before_log:]),
        after,
        report,
        counts(cases),
    )
    write_report(run)
    return run


def write_report(run: Run) -> None:
    data = {
        "cases": len(run.outcomes),
        "classes": dict(run.classes),
        "seconds": round(run.seconds, 1),
        "canary": {
            "polls": len(run.canary.latencies),
            "p99_s": round(run.canary.p99(), 3),
            "stalls": run.stalls(),
            "max_s": round(max(run.canary.latencies, default=0), 3),
            "failures": run.canary.failures[:20],
        },
        "slowloris": run.slow,
        "many_connections": {
            "count": len(run.many),
            "answered_2xx": sum(1 for a in run.many if a.status == 200),
            "stored": run.many_stored,
        },
        "rss_mib": {"before": run.rss_before // 2**20, "after": run.rss_after // 2**20},
        "tracebacks": run.tracebacks[:50],
        "control_api_after": run.after,
        "failing": [
            {
                "case": o.case.cid,
                "class": o.case.klass,
                "name": o.case.name,
                "problems": o.problems,
                "status": o.answer.status,
                "error": o.answer.error,
                "elapsed": round(o.answer.elapsed, 3),
                "answer": o.answer.body[:500].decode("utf-8", "replace"),
            }
            for o in run.outcomes
            if o.problems
        ],
    }
    run.report.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
