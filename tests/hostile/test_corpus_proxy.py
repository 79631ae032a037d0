"""A subset of the hostile corpus through the proxy (mitmdump + the facecert
addon in reverse mode) in front of a mock server of its own: the same
assertions as tests/hostile/test_corpus.py, on both processes, and the
proxy's reports written when it is stopped with Ctrl-C (SIGINT) afterwards.

The subset: every case of the classes that exercise what a proxy does with
bodies and framing (big bodies, compression, chunked, versions, images,
long strings, cross-site), and every tenth case of the others. Cases that
only mean something to the server itself (a foreign Host: a reverse proxy
replaces it by design) are left out. mitmproxy's own error answers (its
``Server: mitmproxy`` 400 for bytes it cannot parse) are not expected to be
stored upstream; a 502 is a failure like any 5xx.

Bounds: the canary's as in test_corpus.py; mitmdump's RSS after the run at
most ``PROXY_RSS_LIMIT_MIB``; stopping takes at most ``STOP_SECONDS``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from facecert.proxy_addons.process import Mitmdump
from tests.hostile.conftest import ServeProcess, excerpt, rss_of, tracebacks
from tests.hostile.corpus import Case, corpus
from tests.hostile.runner import strict_json
from tests.hostile.session import Run, execute
from tests.hostile.test_corpus import CANARY_MAX_S, CANARY_P99_S, RSS_LIMIT_MIB

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

WHOLE_CLASSES = {"big_bodies", "content_types", "framing", "versions", "images", "long_strings_many_keys", "cross_site"}
EVERY = 10
CONNECTIONS = 100
PROXY_RSS_LIMIT_MIB = 1024
STOP_SECONDS = 30.0


def proxy_subset(cases: list[Case]) -> list[Case]:
    return [c for c in cases if c.via_proxy and (c.klass in WHOLE_CLASSES or c.cid % EVERY == 0)]


def mitmdump_pid(proxy: Mitmdump) -> int:
    """The mitmdump process id (Mitmdump keeps its Popen private)."""
    return proxy._proc.pid if proxy._proc is not None else 0  # no public accessor yet


@dataclass
class ProxyRun:
    run: Run
    server: ServeProcess
    stop_seconds: float  # from SIGINT to exit
    exit_code: int | None
    report: Path  # the addon's report folder


@pytest.fixture(scope="module")
def proxy_run(proxied: tuple[ServeProcess, Mitmdump, Path], tmp_path_factory: pytest.TempPathFactory) -> ProxyRun:
    server, proxy, report_dir = proxied
    host, port = proxy.address or ("127.0.0.1", 0)
    pid = mitmdump_pid(proxy)
    report = Path(tmp_path_factory.mktemp("hostile-proxy-report")) / "hostile-report.json"
    run = execute(
        proxy_subset(corpus()),
        server,
        host,
        port,
        report,
        via_proxy=True,
        connections=CONNECTIONS,
        rss_of=lambda: rss_of(pid),
        log=lambda: "\n".join(proxy.lines),
    )
    started = time.monotonic()
    code = proxy.stop(timeout=STOP_SECONDS + 30)
    return ProxyRun(run, server, time.monotonic() - started, code, report_dir)


def fail_on(run: Run, kind: str, title: str) -> None:
    if run.failing(kind):
        pytest.fail(run.explain(kind, title), pytrace=False)


def test_every_case_answered_without_5xx(proxy_run: ProxyRun) -> None:
    assert proxy_run.server.alive(), "the mock server died behind the proxy"
    fail_on(proxy_run.run, "answer", "a 5xx or no answer through the proxy")


def test_no_traceback_in_either_log(proxy_run: ProxyRun) -> None:
    found = proxy_run.run.tracebacks + [f"(mock server) {t}" for t in tracebacks(proxy_run.server.stderr())]
    if found:
        pytest.fail(
            f"{len(found)} traceback(s) in mitmdump's output or the server's stderr:\n"
            + "\n\n".join(excerpt(t) for t in found[:5]),
            pytrace=False,
        )


def test_answers_are_strict_json(proxy_run: ProxyRun) -> None:
    fail_on(proxy_run.run, "json", "a JSON answer that is not strict JSON")


def test_every_answered_request_is_stored_upstream(proxy_run: ProxyRun) -> None:
    fail_on(proxy_run.run, "stored", "answered through the proxy but not stored by the server")


def test_case_expectations(proxy_run: ProxyRun) -> None:
    fail_on(proxy_run.run, "expect", "a case's own expectation failed through the proxy")


def test_control_api_and_live_page_answer_afterwards(proxy_run: ProxyRun) -> None:
    if proxy_run.run.after:
        pytest.fail("through the proxy after the corpus:\n" + "\n".join(proxy_run.run.after), pytrace=False)


def test_other_devices_not_stalled(proxy_run: ProxyRun) -> None:
    canary = proxy_run.run.canary
    assert canary.latencies, "the canary never polled"
    if canary.failures:
        pytest.fail("\n".join(canary.failures[:10]), pytrace=False)
    worst = max(canary.latencies)
    if canary.p99() > CANARY_P99_S or worst > CANARY_MAX_S:
        pytest.fail(
            f"a correct device waited p99 {canary.p99():.2f} s, at worst {worst:.2f} s through the proxy:\n"
            f"{proxy_run.run.stalls()}",
            pytrace=False,
        )


def test_many_connections_through_the_proxy(proxy_run: ProxyRun) -> None:
    run = proxy_run.run
    answered = [a for a in run.many if a.status == 200]
    if len(answered) != CONNECTIONS:
        pytest.fail(
            f"{CONNECTIONS - len(answered)} of {CONNECTIONS} concurrent polls not answered 200: "
            + "; ".join(f"{a.status} {a.error}" for a in run.many if a.status != 200)[:1500],
            pytrace=False,
        )
    assert run.many_stored == CONNECTIONS, f"{run.many_stored} of {CONNECTIONS} concurrent polls stored upstream"


def test_memory_after_the_run(proxy_run: ProxyRun) -> None:
    run = proxy_run.run
    assert run.rss_after <= PROXY_RSS_LIMIT_MIB * 2**20, (
        f"mitmdump RSS {run.rss_after / 2**20:.0f} MiB after the corpus (before {run.rss_before / 2**20:.0f} MiB, "
        f"limit {PROXY_RSS_LIMIT_MIB} MiB)"
    )
    assert proxy_run.server.rss() <= RSS_LIMIT_MIB * 2**20, (
        f"mock server RSS {proxy_run.server.rss() / 2**20:.0f} MiB behind the proxy (limit {RSS_LIMIT_MIB} MiB)"
    )


def test_ctrl_c_writes_the_reports(proxy_run: ProxyRun) -> None:
    """After all that, SIGINT still ends mitmdump promptly with its reports
    written, and every JSON file among them is strict JSON."""
    assert proxy_run.stop_seconds <= STOP_SECONDS, f"mitmdump took {proxy_run.stop_seconds:.0f} s to stop"
    summary = proxy_run.report / "summary.json"
    assert summary.is_file(), (
        f"no summary.json after Ctrl-C (exit code {proxy_run.exit_code}); "
        f"report folder holds {sorted(p.name for p in proxy_run.report.iterdir())}"
    )
    bad: list[str] = []
    for path in sorted(proxy_run.report.rglob("*.json")) + sorted(proxy_run.report.rglob("*.har")):
        try:
            document: Any = strict_json(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            bad.append(f"{path.name}: {str(exc)[:200]}")
            continue
        if path == summary:
            assert isinstance(document, dict) and document, "summary.json is empty"
    assert not bad, "report files that are not strict JSON:\n" + "\n".join(bad)
    for path in proxy_run.report.rglob("*.jsonl"):
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                strict_json(line)
            except (ValueError, UnicodeDecodeError) as exc:
                pytest.fail(f"{path.name} line {number} is not strict JSON: {str(exc)[:200]}", pytrace=False)
