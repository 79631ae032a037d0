"""The reference device on Locust: one Locust user per device, the device's behaviour from the sans-I/O core.

Run it as any locustfile (Locust patches the process with gevent, so it runs in processes of its own;
``facecert fleet`` starts them and gathers the verdicts)::

    locust -f "$(facecert fleet --locustfile)" --headless --host http://127.0.0.1:8080 -u 1000 -r 50 -t 60s \\
        --facecert-time-scale 0.05 --facecert-report reports/fleet

Each user is one :class:`~facecert.mock_device.core.DeviceCore` driven by :class:`GeventDevice`: a
``Send`` is a request on a shared geventhttpclient pool (reported to Locust's statistics under the
endpoint's name: taskRequest, taskResult, faceRecognition, ...), a ``Wait`` a gevent timer. Every
process that runs devices judges them as they go (mock_device.verdict, one engine per process,
bounded memory); when the run stops, the master asks each worker for its verdicts and writes
``<report>/fleet.json``; it also keeps ``<report>/progress.json`` current for ``facecert fleet``.

Options (besides Locust's; a master passes them on to its workers): ``--facecert-time-scale``,
``--facecert-fault KNOB[,KNOB]`` and ``--facecert-fault-share F`` (that share of each worker's
devices gets a knob, the knobs in turn), ``--facecert-captures-per-minute``, ``--facecert-gps``,
``--facecert-protocol-version``, ``--facecert-id-prefix``, ``--facecert-in-flight`` (requests in
flight per process), ``--facecert-request-timeout`` and ``--facecert-report DIR``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import gevent
import gevent.event
from gevent.lock import BoundedSemaphore
from geventhttpclient.client import HTTPClient
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from facecert.heap import settle
from facecert.mock_device.config import DeviceConfig, mac_for, server_url
from facecert.mock_device.core import Action, DeviceCore, Send, Wait
from facecert.mock_device.faults import FAULTS_BY_NAME, check_faults
from facecert.mock_device.flow import READ_CHUNK, BodyCap, Reply, declared_length
from facecert.mock_device.verdict import FleetJudge, finish_cutoff, fleet_report, late_after, record_problem

logger = logging.getLogger("facecert.fleet")
FINISH, RESULTS = "facecert_finish", "facecert_results"
CHUNK = 500  # device records per message to the master
GATHER_TIMEOUT_S = 60.0  # how long the master waits for the workers' verdicts
MAX_DEVICE_INDEX = 10_000_000  # devices per worker (ids and MAC addresses are numbered per worker)
# Locust's master dispatches a second's worth of users at once; each device powers up at a random moment of
# that second, so the fleet's polls do not come in one burst a second (real fleets power up spread out).
SPAWN_SPREAD_S = 1.0
# Requests in flight per process. Each device has one at a time, as a real one with its own connection; a cap
# below the devices a slow answer holds up makes the others wait for a slot, which is the generator's lag
# (at 1,000 devices and 128, a 150 ms answer made 800 devices late). geventhttpclient's pool is O(1) per request.
IN_FLIGHT = 1024
# Captures a fleet device keeps for resume transfer while the server acknowledges none (in memory: ~5 KB each
# with its JPEG), the oldest dropped past it: 10,000 devices then hold at most ~1 GB, not a capture per minute each.
SPOOL_MAX = 20


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("facecert reference device")
    group.add_argument("--facecert-time-scale", type=float, default=1.0, help="protocol intervals × this")
    group.add_argument(
        "--facecert-fault", default="", help="fault knob(s), comma separated (facecert device --list-faults)"
    )
    group.add_argument("--facecert-fault-share", type=float, default=0.0, help="share of devices given a knob (0..1)")
    group.add_argument("--facecert-captures-per-minute", type=float, default=0.0, help="captures per simulated minute")
    group.add_argument("--facecert-gps", action="store_true", default=False, help="report GPS along a simulated route")
    group.add_argument("--facecert-protocol-version", default="", help="protocol version the devices declare")
    group.add_argument("--facecert-id-prefix", default="LOC", help="device ids: prefix + worker index + number")
    group.add_argument(
        "--facecert-in-flight", type=int, default=IN_FLIGHT, help="requests (and connections) in flight per process"
    )
    group.add_argument("--facecert-request-timeout", type=float, default=10.0, help="seconds per request")
    group.add_argument("--facecert-report", default="", help="folder for fleet.json and progress.json (master)")


class RequestFailed(Exception):
    """A request Locust counts as failed: no answer, or an HTTP error status (the text names which)."""


class GeventDevice:
    """One device's driver on gevent: performs the core's actions, holds no protocol logic."""

    def __init__(self, core: DeviceCore, process: DeviceProcess, start_delay: float = 0.0) -> None:
        self.core = core
        self.process = process
        self.start_delay = start_delay  # power-on spread: Locust starts a second's worth of users at once
        self.loop = gevent.get_hub().loop
        self.timers: dict[int, Any] = {}
        self.requests: set[gevent.Greenlet] = set()
        self.commands: dict[int, gevent.event.AsyncResult] = {}
        self.stopped = gevent.event.Event()

    def run(self) -> None:
        """Switch the device on and live until :meth:`stop` (the Locust user's one task)."""
        if self.start_delay > 0 and self.stopped.wait(self.start_delay):
            return
        self._apply(self.core.start(time.time()))
        self.stopped.wait()

    def stop(self) -> None:
        for timer in self.timers.values():
            timer.stop()
            timer.close()
        self.timers.clear()
        gevent.killall(list(self.requests), block=False)
        self.requests.clear()
        self.core.stop()
        self.stopped.set()

    def command(self, give: Any, timeout: float = 30.0) -> Any:
        """Give the core a command (``core.capture_command`` …) and wait for its value."""
        ticket, actions = give(time.time())
        result: gevent.event.AsyncResult[Any] = gevent.event.AsyncResult()
        self.commands[ticket] = result
        self._apply(actions)
        return result.get(timeout=timeout)

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.requests.add(gevent.spawn(self._request, action))
            elif isinstance(action, Wait):
                self._arm(action.ticket, action.until)
            else:
                result = self.commands.pop(action.ticket, None)
                if result is not None:
                    if action.error is not None:
                        result.set_exception(action.error)
                    else:
                        result.set(action.value)

    def _arm(self, ticket: int, until: float) -> None:
        timer = self.loop.timer(max(0.0, until - time.time()))
        self.timers[ticket] = timer
        # update=True: libev times a new timer from the loop's cached "now", which is as old as the loop's
        # current iteration; a busy loop would fire it that much early (an early poll, on every clock)
        timer.start(self._fire, ticket, until, update=True)

    def _fire(self, ticket: int, until: float) -> None:
        """A timer fired (runs in the gevent hub: must not block; it only spawns and schedules)."""
        timer = self.timers.pop(ticket, None)
        if timer is not None:
            timer.close()
        now = time.time()
        if now < until - 0.0005:  # never early, whatever the loop's idea of the time
            self._arm(ticket, until)
            return
        try:
            self._apply(self.core.timer_fired(ticket, now))
        except Exception:
            logger.exception("device %s: timer %s", self.core.cfg.device_id, ticket)

    def _request(self, send: Send) -> None:
        try:
            with self.process.gate:
                reply = self.process.http(send)
            self.process.report(send, reply)
            self._apply(self.core.receive(send.ticket, reply))
        except Exception:
            logger.exception("device %s: request %s", self.core.cfg.device_id, send.url)
        finally:
            self.requests.discard(gevent.getcurrent())


class DeviceProcess:
    """What the devices of one process share: options, the HTTP pool, the bound on requests in flight,
    the judge and the numbering of devices and knobs."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        options = environment.parsed_options
        if not environment.host:
            raise ValueError("no server: give --host URL (the platform server's base URL)")
        self.server = server_url(environment.host)
        self.time_scale = float(getattr(options, "facecert_time_scale", 1.0))
        knobs = [k for k in str(getattr(options, "facecert_fault", "") or "").split(",") if k.strip()]
        self.knobs = sorted(check_faults(knobs)) if knobs else []
        self.share = float(getattr(options, "facecert_fault_share", 0.0)) if self.knobs else 0.0
        self.captures_per_minute = float(getattr(options, "facecert_captures_per_minute", 0.0))
        self.gps = bool(getattr(options, "facecert_gps", False))
        self.protocol_version = str(getattr(options, "facecert_protocol_version", "") or "") or None
        self.prefix = str(getattr(options, "facecert_id_prefix", "LOC"))
        self.request_timeout = float(getattr(options, "facecert_request_timeout", 10.0))
        self.in_flight = max(1, int(getattr(options, "facecert_in_flight", IN_FLIGHT)))
        runner = environment.runner
        self.index = max(0, int(getattr(runner, "worker_index", 0) or 0))
        self.name = f"worker-{self.index}" if isinstance(runner, WorkerRunner) else "local"
        self.gate = BoundedSemaphore(self.in_flight)
        self.clients: dict[tuple[str, str, int], HTTPClient] = {}
        self.judge = FleetJudge(self.time_scale, self.protocol_version)
        # what is loaded now (Locust, the contract, its schemas and validators) lives as long as the process:
        # out of the collector's sight, a full collection scans only the devices' own objects (a 50 ms pause
        # otherwise, which is lag for every device whose timer falls into it); facecert/heap.py
        settle()
        self.count = 0
        self.faulty = 0
        self.devices: list[GeventDevice] = []
        self.stalls = 0  # times this process did not run for longer than half the cadence slack
        self.stall_max_s = 0.0
        self.stall_cpu_s = 0.0  # CPU it used during its longest stall: ~0 means the machine gave it none
        gevent.spawn(self._watchdog)

    def _watchdog(self) -> None:
        """How long this process went without running: what a device's lag owes to the machine (another
        program took the CPU) rather than to the devices this process carries (it was busy with them)."""
        tick, threshold = 0.02, self.judge.late_after_s / 2
        while True:
            wall, cpu = time.monotonic(), time.process_time()
            gevent.sleep(tick)
            over = time.monotonic() - wall - tick
            if over > threshold:
                self.stalls += 1
                if over > self.stall_max_s:
                    self.stall_max_s, self.stall_cpu_s = over, time.process_time() - cpu

    # ---- devices -----------------------------------------------------------------------------
    def new_device(self) -> GeventDevice:
        number = self.count
        if number >= MAX_DEVICE_INDEX:
            raise RuntimeError(f"more than {MAX_DEVICE_INDEX} devices in one process")
        self.count += 1
        fault = None
        if self.knobs and math.floor((number + 1) * self.share) > math.floor(number * self.share):
            fault = self.knobs[self.faulty % len(self.knobs)]
            self.faulty += 1
        declared = FAULTS_BY_NAME[fault].protocol_version if fault else None
        cfg = DeviceConfig(
            server=self.server,
            device_id=f"{self.prefix}{self.index:03d}{number:07d}",
            device_mac=mac_for(self.index * MAX_DEVICE_INDEX + number + 1),
            device_name=f"facecert-fleet-{self.index}-{number}",
            time_scale=self.time_scale,
            faults={fault} if fault else set(),
            protocol_version=declared or self.protocol_version,
            captures_per_minute=self.captures_per_minute,
            request_timeout_s=self.request_timeout,
            record=False,  # the judge keeps counters, not exchanges
            spool_max=SPOOL_MAX,  # a server that acknowledges no capture: each device keeps this many, not all
            latency_samples=0,  # Locust keeps the latencies
            seed=self.index * 1_000_003 + number,
        )
        core = DeviceCore(cfg)
        if self.gps:
            core.gps_on()
        self.judge.watch(core, fault)
        device = GeventDevice(core, self, random.Random(cfg.seed).uniform(0.0, SPAWN_SPREAD_S))
        self.devices.append(device)
        return device

    # ---- HTTP --------------------------------------------------------------------------------
    def client(self, scheme: str, host: str, port: int, timeout: float) -> HTTPClient:
        key = (scheme, host, port)
        client = self.clients.get(key)
        if client is None:
            client = HTTPClient(
                host,
                port=port,
                ssl=scheme == "https",
                concurrency=self.in_flight,
                connection_timeout=timeout,
                network_timeout=timeout,
            )
            self.clients[key] = client
        return client

    def http(self, send: Send) -> Reply:
        """One request as the socket saw it; transport errors become status None (as in the asyncio driver)."""
        parts = urlsplit(send.url)
        started = time.time()
        response = None
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            client = self.client(parts.scheme, parts.hostname or "", port, send.timeout)
            uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            # the whole exchange within its timeout: geventhttpclient's network timeout is per socket read, so
            # a server trickling its answer a byte at a time would hold the device (and a slot) for ever
            with gevent.Timeout(send.timeout, TimeoutError(f"no complete answer within {send.timeout:g} s")):
                response = client.request(send.method, uri, body=send.body, headers=send.headers)
                status, headers = response.status_code, dict(response.items())
                body, whole = _read_capped(response, send.limit, declared_length(headers))
            if whole:
                response.release()
            else:
                _discard(response)  # stopped reading past the limit: the rest of the answer is still on the socket
            return Reply(status, body, headers, started, time.time())
        except Exception as exc:  # noqa: BLE001 - a device reports a failed request, it does not crash
            _discard(response)
            error = f"timeout ({exc})" if isinstance(exc, TimeoutError) else None
            return Reply(None, None, {}, started, time.time(), error or f"{exc.__class__.__name__}: {exc}")

    def report(self, send: Send, reply: Reply) -> None:
        """The request in Locust's statistics, under the endpoint's name."""
        if reply.status is None:
            failure: Exception | None = RequestFailed(reply.error or "no answer")
        elif reply.status >= 400:
            failure = RequestFailed(f"HTTP {reply.status}")
        else:
            failure = None
        self.environment.events.request.fire(
            request_type=send.method,
            name=send.endpoint or urlsplit(send.url).path,
            response_time=(reply.ended - reply.started) * 1000,
            response_length=len(reply.body or b""),
            response=None,
            context={},
            exception=failure,
            start_time=reply.started,
            url=send.url,
        )

    # ---- verdicts ----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "max_rss_mb": _peak_rss_mb(),
            "rss_mb": _rss_mb(),
            "stalls": self.stalls,
            "stall_max_ms": round(self.stall_max_s * 1000, 1),
            "stall_cpu_ms": round(self.stall_cpu_s * 1000, 1),
            **self.judge.counters(),
        }


def _read_capped(response: Any, limit: int, declared: int | None) -> tuple[bytes, bool]:
    """The answer read a chunk at a time until its end or past ``limit`` bytes (0: no limit): its bytes
    (flow.Oversized past the limit) and whether it was read whole. A Content-Length above the limit is
    refused before its first byte is read. geventhttpclient does not inflate: the bytes are as sent."""
    cap = BodyCap(limit or 2**63)
    if declared is not None and declared > cap.limit:
        return cap.body(declared), False
    while chunk := response.read(READ_CHUNK):
        if not cap.add(chunk):
            return cap.body(declared), False
    return cap.body(declared), True


def _discard(response: Any) -> None:
    """A response that failed half-way: its connection cannot be reused."""
    sock, pool = getattr(response, "_sock", None), getattr(response, "_pool", None)
    if sock is not None and pool is not None:
        response._sock = None
        pool.release_socket(sock)


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; getrusage's maxrss survives exec: it would be the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


_PROCESS: dict[int, DeviceProcess] = {}


def device_process(environment: Environment) -> DeviceProcess:
    """This process's device state, made when the first device starts (a worker has the master's options
    by then: they come with the spawn message)."""
    process = _PROCESS.get(id(environment))
    if process is None:
        process = _PROCESS[id(environment)] = DeviceProcess(environment)
    return process


class FleetDevice(User):
    """One reference device (its behaviour: mock_device.core; its driver: GeventDevice)."""

    wait_time = constant(1)

    def on_start(self) -> None:
        self.device = device_process(self.environment).new_device()

    @task
    def live(self) -> None:
        if self.device.stopped.is_set():
            return
        self.device.run()

    def on_stop(self) -> None:
        device = getattr(self, "device", None)
        if device is not None:
            device.stop()


# ---- gathering the verdicts ------------------------------------------------------------------------
class _Gather:
    """The master's side (or a single process's): progress and the verdicts of every worker."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        report = str(getattr(environment.parsed_options, "facecert_report", "") or "")
        self.report = Path(report) if report else None
        self.phase = "waiting"
        self.started = time.time()
        self.test_started: float | None = None  # the first devices were spawned
        self.cutoff: float | None = None  # the verdicts were asked for
        self.live: dict[str, dict[str, Any]] = {}  # latest counters per worker (from its reports)
        self.summaries: dict[str, dict[str, Any]] = {}  # each worker's summary, with its verdicts
        self.devices: dict[str, dict[str, Any]] = {}
        self.waiting: set[str] = set()
        self.refused = 0  # device records from workers that could not go into fleet.json
        self.all_in = gevent.event.Event()  # set when the last awaited worker has sent its verdicts
        self.gathered = False

    def write(self, name: str, data: Any) -> None:
        if self.report is None:
            return
        self.report.mkdir(parents=True, exist_ok=True)
        tmp = self.report / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=1 if name == "fleet.json" else None), encoding="utf-8")
        tmp.replace(self.report / name)

    def progress(self) -> None:
        runner = self.environment.runner
        connected = len([c for c in runner.clients.all if c.state != STATE_MISSING]) if _is_master(runner) else 1
        totals: dict[str, float] = {}
        for counters in self.live.values():
            for key, value in counters.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    totals[key] = max(totals.get(key, 0), value) if key.endswith("_ms") else totals.get(key, 0) + value
        self.write(
            "progress.json",
            {
                "phase": self.phase,
                "time": time.time(),
                "started": self.started,
                "workers_connected": connected,
                "users": getattr(runner, "user_count", 0),
                "totals": totals,
            },
        )

    def gather(self) -> None:
        """Ask every worker (or this process) for its verdicts, wait for them (bounded), write fleet.json."""
        if self.gathered:
            return
        self.gathered = True
        self.phase = "gathering"
        self.progress()
        runner = self.environment.runner
        assert runner is not None
        if _is_master(runner):
            self.waiting = {c.id for c in runner.clients.all if c.state != STATE_MISSING}
        else:
            self.waiting = {"local"}
        self.cutoff = time.time()
        if not self.waiting:
            self.all_in.set()
        runner.send_message(FINISH, {"cutoff": self.cutoff})
        self.all_in.wait(timeout=GATHER_TIMEOUT_S)
        if self.waiting:
            logger.error("no verdicts from %d worker(s) within %.0f s", len(self.waiting), GATHER_TIMEOUT_S)
        self.write("fleet.json", fleet_report(self.devices, self.meta()))
        self.phase = "done"
        self.progress()

    def receive(self, node: str, data: dict[str, Any]) -> None:
        for item in data.get("devices", []) if isinstance(data, dict) else ():
            device_id, record = item if isinstance(item, (list, tuple)) and len(item) == 2 else (None, None)
            problem = "not a (device id, record) pair" if not isinstance(device_id, str) else record_problem(record)
            if problem is None and isinstance(device_id, str) and isinstance(record, dict):
                self.devices[device_id] = record
            else:
                self.refused += 1
                logger.warning("a device record from %s was dropped: %s", node, problem)
        if data.get("last"):
            self.summaries[str(data.get("worker"))] = data.get("summary") or {}
            self.waiting.discard(node)
            if self.gathered and not self.waiting:
                self.all_in.set()

    def meta(self) -> dict[str, Any]:
        options = self.environment.parsed_options
        scale = float(getattr(options, "facecert_time_scale", 1.0))
        return {
            "server": self.environment.host,
            "users": getattr(options, "num_users", None),
            "spawn_rate": getattr(options, "spawn_rate", None),
            "run_time_s": getattr(options, "run_time", None),
            "time_scale": scale,
            "faults": [k for k in str(getattr(options, "facecert_fault", "") or "").split(",") if k],
            "fault_share": float(getattr(options, "facecert_fault_share", 0.0)),
            "captures_per_minute": float(getattr(options, "facecert_captures_per_minute", 0.0)),
            "gps": bool(getattr(options, "facecert_gps", False)),
            "late_after_ms": round(late_after(scale) * 1000, 1),
            "started": self.started,
            "test_started": self.test_started,
            "cutoff": self.cutoff,
            "ended": time.time(),
            "workers": self.summaries,
            "missing_workers": sorted(self.waiting),
            "refused_records": self.refused,
        }


def _is_master(runner: Any) -> TypeGuard[MasterRunner]:
    return isinstance(runner, MasterRunner)


def _chunks(items: list[tuple[str, dict[str, Any]]]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


_GATHER: dict[int, _Gather] = {}


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if runner is None:
        return
    if not isinstance(runner, WorkerRunner):  # the master, or a single process: it gathers
        gatherer = _GATHER[id(environment)] = _Gather(environment)
        runner.register_message(RESULTS, lambda environment, msg, **kw: gatherer.receive(msg.node_id, msg.data))
        gatherer.progress()
    if not _is_master(runner):  # a worker, or a single process: it runs devices and answers FINISH
        runner.register_message(FINISH, _on_finish)


def _on_finish(environment: Environment, msg: Any, **_: Any) -> None:
    process = _PROCESS.get(id(environment))
    runner = environment.runner
    assert runner is not None
    items: list[tuple[str, dict[str, Any]]] = []
    summary: dict[str, Any] = {}
    if process is not None:
        process.judge.finish(finish_cutoff(msg.data, time.time()))
        items = [(device_id, process.judge.record(device_id, process.name)) for device_id in process.judge.tallies]
        summary = process.summary()
    name = process.name if process is not None else f"worker-{getattr(runner, 'worker_index', 0)}"
    for chunk in _chunks(items):
        runner.send_message(RESULTS, {"worker": name, "devices": chunk, "last": False})
    runner.send_message(RESULTS, {"worker": name, "devices": [], "last": True, "summary": summary})


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    gatherer = _GATHER.get(id(environment))
    if gatherer is not None:
        gatherer.phase = "running"
        gatherer.test_started = time.time()
        gatherer.progress()
        if not _is_master(environment.runner):
            gevent.spawn(_local_progress, environment, gatherer)


def _local_progress(environment: Environment, gatherer: _Gather) -> None:
    """A single process (no master): its own counters into progress.json every few seconds."""
    while not gatherer.gathered:
        process = _PROCESS.get(id(environment))
        if process is not None:
            gatherer.live["local"] = process.summary()
        gatherer.progress()
        gevent.sleep(3.0)


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    gatherer = _GATHER.get(id(environment))
    if gatherer is not None:
        gatherer.gather()


@events.report_to_master.add_listener
def _on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    for process in _PROCESS.values():
        data["facecert"] = process.summary()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    counters = data.get("facecert")
    if not counters:
        return
    for gatherer in _GATHER.values():
        if not gatherer.gathered:
            gatherer.live[client_id] = counters
            gatherer.progress()


@events.worker_connect.add_listener
def _on_worker_connect(client_id: str, **_: Any) -> None:
    for gatherer in _GATHER.values():
        gatherer.progress()
