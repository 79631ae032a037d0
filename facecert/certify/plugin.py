"""The pytest plugin a certification run hands to ``pytest.main``.

It gives the steps the live session (the ``cert`` fixture) and a per-scenario
scratch dict (``scn``), and turns each scenario's outcome into a
:class:`~facecert.certify.verdicts.ScenarioRecord`: the Gherkin name with
outline values filled in, the feature name, one verdict, the rule ids behind
it and the message. pytest's own terminal output is switched off by the
runner; this plugin prints short progress instead, so the console never shows
pytest internals.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.scenario import scenario_wrapper_template_registry

from facecert.certify.capabilities import Need, Statement, check_needs, declared_missing, needs_of
from facecert.certify.verdicts import RuleFailure, ScenarioError, ScenarioRecord, Verdict
from facecert.recording import disk_failure, what_to_do

NEEDS_TAG = "needs:"  # @needs:task=getLogFile: what a scenario needs of the peer (facecert/certify/capabilities.py)


class PlanPlugin:
    """Collects one record per scenario; ``progress(record, done, total)`` is called as each ends."""

    def __init__(
        self,
        session: Any,
        progress: Callable[[ScenarioRecord, int, int], None] | None = None,
        capabilities: Statement | None = None,
    ) -> None:
        self.session = session
        self.capabilities = capabilities  # the peer's capability statement (None: everything applies)
        self.records: dict[str, ScenarioRecord] = {}
        self.order: list[str] = []
        self.total = 0
        self.items: list[pytest.Item] = []  # the plan's scenarios, as selected
        self.finished: set[str] = set()  # node ids whose teardown ran
        self.interrupted_by = ""  # what stopped the run (Ctrl-C, SIGTERM), if anything did
        self.broken_by: BaseException | None = None  # what broke pytest itself mid-plan (an INTERNALERROR)
        self.broken_trace = ""  # its traceback, as pytest would have printed it
        self.progress = progress
        self.config: pytest.Config | None = None
        self.markers: set[str] = set()

    def pytest_configure(self, config: pytest.Config) -> None:
        # pytest's long failure report parses the source of every frame (~0.3 s a failure): nobody
        # reads it here (the record carries the message, --debug the trace), so keep it cheap
        config.option.tbstyle = "native"
        self.config = config
        config.addinivalue_line("markers", "needs: what a scenario needs of the peer (@needs:task=getLogFile)")
        # every tag of both plans up front: `--tags` naming the other plan's tag selects nothing here
        # (one --tags for both plans, as CI passes it) instead of being a usage error under --strict-markers
        for tag in sorted(feature_tags()):
            self._register(tag)

    # ---- fixtures the steps use ----------------------------------------------------------
    @pytest.fixture
    def cert(self) -> Any:
        """The running certification session (its peers, clocks and waits)."""
        return self.session

    @pytest.fixture
    def scn(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        """What one scenario remembers between its steps; ``checks`` collects the rules it checked."""
        state: dict[str, Any] = {"checks": set()}
        request.node.stash[_SCN] = state
        return state

    # ---- collection and scenario identity ---------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_bdd_apply_tag(self, tag: str, function: Any) -> Any:
        """``@needs:...`` tags become one ``needs`` mark (their values are not marker names); every
        other tag of the features is a marker (``--tags``), registered here as pytest-bdd meets it, so
        --strict-markers needs no list of them in any configuration file."""
        if tag.startswith(NEEDS_TAG):
            return pytest.mark.needs(tag[len(NEEDS_TAG) :])(function)
        self._register(tag)
        return None

    def _register(self, tag: str) -> None:
        if self.config is not None and tag not in self.markers:
            self.markers.add(tag)
            self.config.addinivalue_line("markers", f"{tag}: a tag of the certification features")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)
        self.total = len(self.items)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted_by = self.interrupted_by or "Ctrl-C"

    def pytest_internalerror(self, excrepr: Any, excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
        """pytest itself broke off the plan (a plugin's hook raised: Allure's writer on a full disk): the
        scenarios left are errors (:meth:`close_interrupted`) and the cause is their message. True: pytest's
        own "INTERNALERROR>" traceback is not printed (``--debug`` shows it, from the records)."""
        self.broken_by = excinfo.value
        self.broken_trace = str(excrepr)
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_bdd_before_scenario(self, request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
        record = self._record(request.node)
        record.name, record.feature = scenario.name, feature.name

    @pytest.hookimpl(trylast=True, specname="pytest_bdd_before_scenario")
    def pytest_bdd_capabilities(self, request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
        """Before the first step (and after Allure has opened the scenario): nothing is asked of the
        peer that its statement does not claim."""
        needs = self._needs(request)
        request.node.stash[_NEEDS] = needs
        outside = check_needs(self.capabilities, needs)
        if outside:
            pytest.skip(outside)

    @staticmethod
    def _needs(request: pytest.FixtureRequest) -> list[Need]:
        example = request.getfixturevalue("_pytest_bdd_example") or {}
        return needs_of([m.args[0] for m in request.node.iter_markers("needs")], example)

    def _record(self, item: pytest.Item) -> ScenarioRecord:
        if item.nodeid not in self.records:
            doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").partition(": ")
            self.records[item.nodeid] = ScenarioRecord(
                name=doc[2] or item.name, feature=doc[0], nodeid=item.nodeid, started=time.time()
            )
            self.order.append(item.nodeid)
        return self.records[item.nodeid]

    # ---- outcomes ---------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        yield
        record = self._record(item)
        if call.excinfo is not None and record.verdict in (Verdict.PASS, Verdict.NOT_APPLICABLE):
            classify(record, call.excinfo.value, call.excinfo.tb)
            self._blame_statement(item, record)
        if call.when == "teardown":
            self.finished.add(item.nodeid)
            record.seconds = time.time() - record.started
            self._blame_recording(record)
            state = item.stash.get(_SCN, None)
            if state:
                record.checks |= set(state.get("checks", ()))
                record.warnings = list(state.get("warnings", []))
            if self.progress is not None:
                self.progress(record, len(self.order), self.total)

    def _blame_statement(self, item: pytest.Item, record: ScenarioRecord) -> None:
        """A failure showing that something declared was not delivered also names CAP-DECLARED-MISSING."""
        if record.verdict is not Verdict.FAIL or "CAP-DECLARED-MISSING" in record.rules:
            return
        missing = declared_missing(self.capabilities, item.stash.get(_NEEDS, []), record.rules)
        if missing:
            party = self.capabilities.party if self.capabilities else "peer"
            record.rules = ("CAP-DECLARED-MISSING", *record.rules)
            record.message = (
                f"the statement declares {', '.join(missing)}, and the {party} did not deliver it: "
                f"{', '.join(record.rules[1:])}: {record.message}"
            )

    def _blame_recording(self, record: ScenarioRecord) -> None:
        """A scenario that ended after our server failed to keep an exchange (its disk full) is an error,
        whatever it found: the record it is judged on is incomplete, and the judge saw answers the device
        never got (they were refused with 503). The root cause comes first; what it had found, after."""
        recording = getattr(self.session, "recording", None)
        state = recording() if callable(recording) else None
        if state is None or record.rules == ("HARNESS-RECORDING",):
            return
        since = time.strftime("%H:%M:%S", time.localtime(state.first_refused or time.time()))
        before = f"; without that it was {record.verdict.value}" if record.verdict is not Verdict.PASS else ""
        if record.rules:
            before += f" ({', '.join(record.rules)}: {record.message})"
        record.verdict, record.rules, record.trace = Verdict.ERROR, ("HARNESS-RECORDING",), ""
        record.message = (
            f"the reference server could not record {state.refused} device request(s) since {since} "
            f"({state.cause}): the record is incomplete, so this scenario has no verdict; "
            f"{state.advice}{before}"
        )

    def close_interrupted(self) -> None:
        """After an interrupt, or pytest broken off mid-plan: the scenario it stopped and those it left unrun
        are errors (HARNESS-INTERRUPTED; HARNESS-RECORDING when a full disk broke it, else HARNESS-ERROR), never
        left out: 9 scenarios passed of 46 is no certificate."""
        if not self.interrupted_by and self.broken_by is None:
            return
        rule, why = self._why_unfinished()
        done, trace = len(self.finished), self.broken_trace  # the traceback once, on the first scenario it cost
        for item in self.items:
            if item.nodeid in self.finished:
                continue
            started = item.nodeid in self.records
            record = self._record(item)
            # named as pytest-bdd names it when it runs: one stopped in its set-up, before
            # pytest_bdd_before_scenario, had only its function's names (the feature's path)
            record.name, record.feature = _scenario_names(item) or (record.name, record.feature)
            record.verdict, record.rules = Verdict.ERROR, (rule,)
            record.trace, trace = trace, ""
            record.message = (
                f"{why} while it ran: its verdict is unknown"
                if started
                else f"not run: the certification was {why} after {done} of {self.total} scenarios"
            )

    def _why_unfinished(self) -> tuple[str, str]:
        if self.interrupted_by:
            return "HARNESS-INTERRUPTED", f"stopped by {self.interrupted_by}"
        exc = self.broken_by
        if exc is not None and disk_failure(exc):
            return "HARNESS-RECORDING", f"broken off by a full or failing disk ({exc})"
        return "HARNESS-ERROR", f"broken off by an internal error ({type(exc).__name__}: {exc})"

    @property
    def scenarios(self) -> list[ScenarioRecord]:
        return [self.records[nodeid] for nodeid in self.order]


def _scenario_names(item: pytest.Item) -> tuple[str, str] | None:
    """The scenario's name (outline values filled in) and its feature's, as pytest-bdd gives them when it
    runs (``pytest_bdd_before_scenario``), for a scenario that never ran (pytest-bdd's own lookup, as in
    its ``generation`` module)."""
    function = getattr(item, "obj", None)
    template = scenario_wrapper_template_registry.get(function) if callable(function) else None
    if template is None:
        return None
    callspec = getattr(item, "callspec", None)
    scenario = template.render(callspec.params.get("_pytest_bdd_example") or {} if callspec else {})
    return scenario.name, scenario.feature.name


_SCN = pytest.StashKey[dict[str, Any]]()
_NEEDS = pytest.StashKey[list[Need]]()


def classify(record: ScenarioRecord, exc: BaseException, tb: Any = None) -> None:
    """One verdict from what a step raised."""
    if isinstance(exc, RuleFailure):
        record.verdict, record.rules, record.message = Verdict.FAIL, exc.rules, exc.text
    elif isinstance(exc, ScenarioError):
        record.verdict, record.rules, record.message = Verdict.ERROR, exc.rules, exc.text
    elif disk_failure(exc):
        # a write the disk refused: our server's store (a step's call to it) or the evidence a step attaches
        record.verdict, record.rules = Verdict.ERROR, ("HARNESS-RECORDING",)
        record.message = f"facecert could not record: {exc}; {what_to_do(exc)}"
    elif isinstance(exc, pytest.skip.Exception):
        record.verdict, record.rules, record.message = Verdict.NOT_APPLICABLE, (), str(exc.msg)
    else:  # a plain assert or a crash in a step: facecert's fault, never blamed on the peer
        record.verdict, record.rules = Verdict.ERROR, ("HARNESS-ERROR",)
        record.message = f"{type(exc).__name__}: {exc}".strip()
        record.trace = "".join(traceback.format_exception(type(exc), exc, tb))


def plain_progress(stream: Any = None) -> Callable[[ScenarioRecord, int, int], None]:
    """A line per finished scenario, for logs (stderr: stdout carries the report)."""
    out = stream or sys.stderr

    def show(record: ScenarioRecord, done: int, total: int) -> None:
        out.write(
            f"[{done}/{total}] {record.verdict.value:<15} {record.feature} › {record.name} ({record.seconds:.1f} s)\n"
        )
        out.flush()

    return show


def feature_tags() -> set[str]:
    """The marker names the packaged features' tags give (``@needs:...`` values are not marker names)."""
    tags: set[str] = set()
    for feature in (Path(str(files("facecert"))) / "features").rglob("*.feature"):
        for line in feature.read_text(encoding="utf-8").splitlines():
            words = line.strip().split()
            if words and words[0].startswith("@"):
                names = (w[1:] for w in words if w.startswith("@"))
                tags.update(name for name in names if not name.startswith(NEEDS_TAG))
    return tags
