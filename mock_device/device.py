"""The reference device: the client side of the protocol, on asyncio + httpx.

One :class:`Device` polls ``/taskRequest``, carries out each task against its
face library, reports to ``/taskResult`` before polling again, and waits the
document's 20 s after idleTime or 5 s after a task (contract timing × time
scale). Captures, alarms and GPS reports run beside the poll loop. Captures
that the server did not acknowledge are spooled and replayed in order while
resume transfer is on.

Nothing the server does stops the device: a refused connection, a timeout,
a 5xx, a body that is not JSON or a task it does not know are logged, and the
device backs off and polls again.

Tests and pytest-bdd steps cannot be async; :meth:`Device.start` runs the
device on its own event loop in a thread and the sync methods
(``capture_now``, ``alarm``, ``gps_start``, ``wait_until``) cross over to it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from facecert.core.contract import get_contract
from facecert.core.model import Exchange
from facecert.core.rules.conversation import haversine_m
from facecert.core.rules.message import Issue, content_issues
from facecert.mock_device import messages
from facecert.mock_device.config import DeviceConfig
from facecert.mock_device.facedb import FaceDB
from facecert.mock_device.gps import Route
from facecert.mock_device.spool import Spool
from facecert.mock_device.stats import DeviceStats
from facecert.mock_device.tasks import (
    BAD_PARAMETER,
    COMMAND_UNKNOWN,
    CURL_COULDNT_CONNECT,
    CURL_HTTP_RETURNED_ERROR,
    CURL_OPERATION_TIMEDOUT,
    HANDLERS,
    DownloadFailed,
    Outcome,
    done,
)

logger = logging.getLogger("mock_device")
T = TypeVar("T")
_JSON = {"Content-Type": "application/json; charset=utf-8"}
MAX_REJECTIONS = 5  # a capture the server explicitly refuses (2xx, code != 0) is retried this often, then dropped
_RANGE_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"})  # bound a value


def idle_task_name() -> str:
    """The task that has no result (idleTime): the catalogue says so, not this code."""
    return next(t.name for t in get_contract().all_tasks.values() if t.result is None)


class Device:
    """One simulated terminal. ``client`` lets a fleet share one connection pool."""

    def __init__(
        self, cfg: DeviceConfig, client: httpx.AsyncClient | None = None, gate: asyncio.Semaphore | None = None
    ) -> None:
        self.cfg = cfg
        self.gate = gate  # a fleet's bound on requests in flight across all its devices
        self.contract = get_contract()
        self.version = self.contract.check_version(cfg.protocol_version)
        self.timing = self.contract.timing
        self.server = cfg.server
        self.servers: list[str] = [cfg.server]
        self.faces = FaceDB()
        self.stats = DeviceStats()
        self.exchanges: list[Exchange] = []
        self.results: list[dict[str, Any]] = []
        self.captures_made: list[dict[str, Any]] = []  # (snap_time, frpic_name) of every capture, in order
        self.resume_transfer = cfg.resume_transfer
        self.spool = Spool(cfg.spool_dir / cfg.device_id if cfg.spool_dir else None)
        self.screen_savers: dict[str, bytes] = {}
        self.screen_saver_settings: dict[str, Any] = {}
        self.face_config: dict[str, Any] = {}
        self.first_face_count: int | None = None  # what getDevStatus reports under the static-face-count knob
        self.ws_server: str | None = None
        self.gps_enabled = False
        self._clock_offset = 0.0
        self._log: collections.deque[str] = collections.deque(maxlen=cfg.log_lines)
        self._client = client
        self._rng = random.Random(cfg.seed ^ zlib.crc32(cfg.device_id.encode()))
        self._face_seq = 0
        self._first_poll = True
        self.polling = True  # False once the stop-after-malformed-task knob has ended the poll loop
        self._changed = threading.Condition()
        self._capture_lock: asyncio.Lock | None = None
        self._sender_wake: asyncio.Event | None = None
        self._gps_wake: asyncio.Event | None = None
        self._rejections: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    # ---- clock, log, waiting ---------------------------------------------------------
    def clock(self) -> float:
        """The device's own clock (UTC seconds): what setDevTime moves."""
        return time.time() + self._clock_offset

    def set_clock(self, epoch_s: float) -> None:
        self._clock_offset = epoch_s - time.time()
        self.log(f"clock set to {int(epoch_s)}")

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(self.clock()))} {self.cfg.device_id} {message}"
        self._log.append(line)
        logger.debug(line)

    def log_text(self) -> str:
        return "\n".join(self._log)

    def scaled(self, key: str) -> float:
        return self.timing[key] * self.cfg.time_scale

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block (test thread) until ``predicate()`` holds or ``timeout`` passes; whether it holds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return predicate()
                self._changed.wait(min(left, 0.05))
        return True

    # ---- HTTP --------------------------------------------------------------------------
    async def send(self, method: str, url: str, raw: bytes = b"", json_body: bool = True) -> Exchange:
        """One request, recorded as the device saw it; transport errors become status None."""
        assert self._client is not None, "the device is not running"
        if self.gate is None:
            return await self._send(method, url, raw, json_body)
        async with self.gate:
            return await self._send(method, url, raw, json_body)

    async def _send(self, method: str, url: str, raw: bytes, json_body: bool) -> Exchange:
        assert self._client is not None
        started = time.time()
        status: int | None = None
        body: bytes | None = None
        headers: dict[str, str] = {}
        error = None
        try:
            response = await self._client.request(
                method,
                url,
                content=raw if raw or method != "GET" else None,
                headers=_JSON if json_body else None,
                timeout=self.cfg.request_timeout_s,
            )
            status, body, headers = response.status_code, response.content, dict(response.headers)
        except httpx.TimeoutException as exc:
            error = f"timeout ({exc.__class__.__name__})"
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        ended = time.time()
        if status is not None:
            self.stats.latency(ended - started)
        exchange = Exchange(
            method,
            urlsplit(url).path or "/",
            raw,
            status,
            body,
            started=started,
            ended=ended,
            request_headers=dict(_JSON) if json_body else {},
            response_headers=headers,
            url=url,
            error=error,
        )
        if self.cfg.record:
            self.exchanges.append(exchange)
        return exchange

    def endpoint_url(self, name: str) -> str:
        return self.server + self.contract.all_endpoints[name].path

    async def post(self, endpoint: str, body: dict[str, Any]) -> Exchange:
        return await self.send("POST", self.endpoint_url(endpoint), messages.encode(body))

    async def download(self, url: str) -> bytes:
        """GET a file a task names; DownloadFailed carries the libcurl-style code."""
        self.stats.add("downloads")
        exchange = await self.send("GET", url, json_body=False)
        if exchange.status is None:
            code = CURL_OPERATION_TIMEDOUT if (exchange.error or "").startswith("timeout") else CURL_COULDNT_CONNECT
            raise DownloadFailed(code, f"download of {url} failed: {exchange.error}")
        if exchange.status >= 400:
            raise DownloadFailed(CURL_HTTP_RETURNED_ERROR, f"download of {url} answered HTTP {exchange.status}")
        return exchange.response_body or b""

    @staticmethod
    def json_answer(exchange: Exchange) -> Any:
        """The answer as JSON when it is a 2xx with a parseable body; None otherwise."""
        if exchange.status is None or not 200 <= exchange.status < 300 or not exchange.response_body:
            return None
        try:
            return json.loads(exchange.response_body)
        except (ValueError, UnicodeDecodeError):
            return None

    # ---- the poll loop ---------------------------------------------------------------------
    async def _poll_loop(self, stop: asyncio.Event) -> None:
        first_backoff = self.scaled("task_interval_s")
        backoff = first_backoff
        while not stop.is_set() and self.polling:
            try:
                next_at = await self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a bug in one cycle must not kill the device
                self.log(f"poll cycle failed: {exc!r}")
                logger.debug("poll cycle failed", exc_info=True)
                next_at = None
            self._notify()
            if next_at is None:
                next_at = time.time() + backoff
                backoff = min(backoff * 2, self.scaled("idle_interval_s"))
            else:
                backoff = first_backoff
            await _sleep_until(stop, next_at)

    async def poll_once(self) -> float | None:
        """One poll and whatever it brings; when to poll next (epoch s), None after a failure."""
        body = messages.poll_body(self.cfg, self.clock(), self.version)
        method, raw = messages.poll_request(self.cfg, body, self._first_poll)
        self._first_poll = False
        exchange = await self.send(method, self.endpoint_url("taskRequest"), raw)
        self.stats.add("polls")
        answer = self.json_answer(exchange)
        if not isinstance(answer, dict):
            self.stats.add("failures")
            why = exchange.error or "not a JSON object"
            self.log(f"taskRequest: no usable answer (status {exchange.status}, {why}); backing off")
            return None
        self._wake_sender()
        name = answer.get("request_type")
        if name == idle_task_name():
            self.stats.add("idle")
            if "result-for-idle" in self.cfg.faults:
                await self.post_result(0, done(name))
            factor = 0.4 if "cadence-idle" in self.cfg.faults else 1.0
            return (exchange.ended or time.time()) + self.scaled("idle_interval_s") * factor
        if "request_id" not in answer:
            self.stats.add("failures")
            self.log(f"taskRequest answer {name!r} without request_id: nothing to report; backing off")
            return None
        self.stats.add("tasks")
        outcome = await self.run_task(answer)
        if outcome.code != 0:
            self.stats.add("task_failures")
        anchor = exchange.ended or time.time()
        result = await self.post_result(answer["request_id"], outcome)
        if result is not None and result.ended:
            anchor = result.ended
        if outcome.after is not None:
            await outcome.after()
        if "stop-after-malformed-task" in self.cfg.faults and outcome.code in (COMMAND_UNKNOWN, BAD_PARAMETER):
            self.polling = False  # the knob: a task it could not use killed the poll loop, nothing else
            self.log("poll loop ended after a task it could not use (fault stop-after-malformed-task)")
        factor = 2.5 if "cadence-task" in self.cfg.faults else 1.0
        return anchor + self.scaled("task_interval_s") * factor

    async def run_task(self, task: dict[str, Any]) -> Outcome:
        """Validate the task through the contract, then carry it out."""
        name = task.get("request_type")
        known = self.contract.tasks(self.version)
        if not isinstance(name, str) or name not in known or name not in HANDLERS:
            self.log(f"task {name!r} is not a command of protocol V{self.version}")
            return Outcome(COMMAND_UNKNOWN, f"'{name}' failed: command does not exist")
        errors = [
            e
            for e in self.contract.errors(known[name].schema, task, self.version)
            if e.keyword != "unevaluatedProperties"
        ]
        if "accept-out-of-range" in self.cfg.faults:
            errors = [e for e in errors if e.keyword not in _RANGE_KEYWORDS]
        if "follow-log-path" in self.cfg.faults:  # file names (x-file-name) taken as given, paths and all
            names = self.contract.file_name_pointers(known[name].schema, task, self.version)
            errors = [e for e in errors if not (e.keyword == "pattern" and e.pointer in names)]
        if errors:
            where = ", ".join(sorted({e.pointer or "/" for e in errors}))
            self.log(f"task {name} rejected: {where}: {errors[0].message}")
            return Outcome(BAD_PARAMETER, f"'{name}' failed: bad parameter {where}")
        refused = [i for i in self.content_problems(name, task) if not i.pointer.startswith("/user_list/")]
        if refused:  # content the schema only annotates (images, size limits); users are judged one by one
            where = ", ".join(sorted({i.pointer for i in refused}))
            self.log(f"task {name} rejected: {refused[0].message}")
            return Outcome(BAD_PARAMETER, f"'{name}' failed: bad parameter {where}")
        if "skip-download" in self.cfg.faults and self.downloads_of(name, task):
            return done(name)
        try:
            outcome = await HANDLERS[name](self, task)
        except Exception as exc:  # noqa: BLE001 - a device reports failure, it does not crash
            self.log(f"task {name} failed: {exc!r}")
            logger.debug("task %s failed", name, exc_info=True)
            return Outcome(BAD_PARAMETER, f"'{name}' failed: {exc}")
        self.log(f"task {name} (request_id {task.get('request_id')!r}) -> code {outcome.code}")
        return outcome

    def content_problems(self, name: str, task: dict[str, Any]) -> list[Issue]:
        """What the contract's content annotations say is wrong with a task (base64 images that are not
        images, user_info over its serialised size), by the engine's own checks."""
        schema = self.contract.tasks(self.version)[name].schema
        return content_issues(self.contract, schema, task, self.version, name)[0]

    def downloads_of(self, name: str, task: dict[str, Any]) -> list[str]:
        """The URLs a task makes the device fetch (the schema's x-download annotations say which)."""
        schema = self.contract.tasks(self.version)[name].schema
        return content_issues(self.contract, schema, task, self.version, name)[1]

    async def post_result(self, request_id: Any, outcome: Outcome) -> Exchange | None:
        faults = self.cfg.faults
        if "result-missing" in faults:
            return None
        if "result-wrong-id" in faults:
            request_id = request_id + 1_000_000 if isinstance(request_id, int) else f"{request_id}-x"
        body = messages.result_body(self.cfg, request_id, outcome.code, outcome.log, outcome.extras)
        self.results.append(body)  # before sending: a test that saw the server store it finds it here
        self.stats.add("results")
        exchange = await self.post("taskResult", body)
        if "result-duplicate" in faults:
            exchange = await self.post("taskResult", body)
        if exchange.status is None or exchange.status >= 300:
            self.log(f"taskResult {request_id!r}: server answered {exchange.status or exchange.error}")
        return exchange

    def task_properties(self, name: str) -> dict[str, Any]:
        """The fields a task has in the declared version (from its schema)."""
        return messages.schema_properties(self.contract.tasks(self.version)[name].schema, self.version)

    def user_defaults(self, name: str) -> dict[str, Any]:
        """Defaults the schema gives the fields of one user in addUser/updateUser (user_list: whitelist)."""
        items = self.task_properties(name).get("user_list", {}).get("items", {})
        return {k: v["default"] for k, v in (items.get("properties") or {}).items() if "default" in v}

    def move_to(self, url: str) -> None:
        """setPlatformServer: the result went to the old server; from now on, the new one."""
        self.log(f"platform server {self.server} -> {url}")
        self.server = url.rstrip("/")
        self.servers.append(self.server)

    # ---- captures and resume transfer ----------------------------------------------------
    def make_capture(self, kind: str = "face") -> dict[str, Any]:
        self._face_seq += 1
        users = list(self.faces) if kind == "face" else []
        user = self._rng.choice(users) if users else None
        body = messages.capture_body(
            self.cfg,
            self.clock(),
            self._face_seq,
            kind if user or kind != "face" else "stranger",
            user,
            self.version,
            self._rng,
        )
        self.captures_made.append({"snap_time": body.get("snap_time"), "frpic_name": body.get("frpic_name")})
        self.stats.add("captures_made")
        return body

    async def capture(self, kind: str = "face") -> dict[str, Any]:
        """Make a capture and deliver it (or spool it); the capture made."""
        body = self.make_capture(kind)
        assert self._capture_lock is not None
        async with self._capture_lock:
            if len(self.spool) == 0 and await self._deliver(body) == "acked":
                return body
            self._keep_or_drop(body)
        return body

    def _keep_or_drop(self, body: dict[str, Any]) -> None:
        if self.resume_transfer:
            self.spool.push(body)
            self.log(f"capture {body.get('frpic_name')} kept for resume transfer ({len(self.spool)} waiting)")
            if self._sender_wake is not None:
                self._sender_wake.set()
        else:
            self.stats.add("captures_dropped")
            self.log(f"capture {body.get('frpic_name')} dropped (resume transfer off)")
        self.stats.captures_buffered = len(self.spool)

    async def _deliver(self, body: dict[str, Any]) -> str:
        """POST one capture: "acked" when the answer acknowledges it (code 0, snap_time and frpic_name
        echoed), "refused" when the server answered 2xx without acknowledging, "failed" otherwise."""
        exchange = await self.post("faceRecognition", body)
        answer = self.json_answer(exchange)
        acked = (
            isinstance(answer, dict)
            and answer.get("code") == 0
            and answer.get("snap_time") == body.get("snap_time")
            and answer.get("frpic_name") == body.get("frpic_name")
        )
        if acked:
            self.stats.add("captures_sent")
            self._notify()
            return "acked"
        self.log(
            f"capture {body.get('frpic_name')} not acknowledged (status {exchange.status}, answer "
            f"{str(answer)[:80] if answer is not None else exchange.error})"
        )
        if exchange.status is None or exchange.status >= 500:
            self.stats.add("failures")
            return "failed"
        return "refused"  # answered, but not acknowledged (4xx, or code != 0, or no echo): retried a few times

    def _wake_sender(self) -> None:
        if self._sender_wake is not None and len(self.spool):
            self._sender_wake.set()

    async def drain_spool(self) -> bool:
        """Replay spooled captures oldest first; stops at the first one not acknowledged."""
        assert self._capture_lock is not None
        async with self._capture_lock:
            if len(self.spool) and "lose-buffered" in self.cfg.faults:
                lost = self.spool.clear()
                self.log(f"{lost} buffered capture(s) lost")
            while (body := self.spool.peek()) is not None:
                delivered = await self._deliver(body)
                name = str(body.get("frpic_name"))
                if delivered != "acked":
                    if delivered == "refused":
                        self._rejections[name] = self._rejections.get(name, 0) + 1
                    if self._rejections.get(name, 0) < MAX_REJECTIONS:
                        return False
                    self.stats.add("captures_dropped")
                    self.log(f"capture {name} refused {MAX_REJECTIONS} times; dropped")
                self._rejections.pop(name, None)
                self.spool.pop()
                self.stats.captures_buffered = len(self.spool)
            self.stats.captures_buffered = 0
            return True

    async def _sender_loop(self, stop: asyncio.Event) -> None:
        """Sleeps until something is spooled; then replays, retrying every task interval until empty."""
        assert self._sender_wake is not None
        while not stop.is_set():
            await self._sender_wake.wait()
            self._sender_wake.clear()
            while len(self.spool) and not stop.is_set():
                try:
                    if await self.drain_spool():
                        break
                except Exception as exc:  # noqa: BLE001
                    self.log(f"resume transfer failed: {exc!r}")
                self._notify()
                await _sleep_until(stop, time.time() + self.scaled("task_interval_s"))
            self._notify()

    async def _capture_loop(self, stop: asyncio.Event) -> None:
        if self.cfg.captures_per_minute <= 0:
            return
        every = 60.0 / self.cfg.captures_per_minute * self.cfg.time_scale
        await _sleep_until(stop, time.time() + self._rng.uniform(0, every))
        while not stop.is_set():
            kind = self._rng.choices(messages.CAPTURE_KINDS, weights=(6, 2, 1, 1))[0]
            try:
                await self.capture(kind)
            except Exception as exc:  # noqa: BLE001
                self.log(f"capture failed: {exc!r}")
            self._notify()
            await _sleep_until(stop, time.time() + every)

    # ---- alarms and GPS ----------------------------------------------------------------
    async def send_alarm(self, alarm_type: int, status: int = 1) -> Exchange | None:
        """Report an alarm; None when the no-alarm knob swallows it."""
        body = messages.alarm_body(self.cfg, self.clock(), alarm_type, status, self.version)
        if "no-alarm" in self.cfg.faults:
            self.log(f"alarm {alarm_type} raised, not reported")
            return None
        exchange = await self.post("deviceAlarm", body)
        self.stats.add("alarms")
        self._notify()
        return exchange

    def gps_allowed(self) -> bool:
        return "gpsReport" in self.contract.endpoints(self.version) or "gps-old-version" in self.cfg.faults

    async def _gps_loop(self, stop: asyncio.Event) -> None:
        """Walk the route ahead, one simulated second at a time, to the next position a report is due at
        (more than 5 s or 20 m since the last one, contract timing); sleep that long; report."""
        tick = self.cfg.time_scale  # one simulated second
        route = Route(seed=self._rng.randrange(1 << 30))
        standing = "gps-too-often" in self.cfg.faults
        every, far = self.timing["gps_min_interval_s"], self.timing["gps_min_distance_m"]
        last: tuple[float, float] | None = None  # position of the last report
        assert self._gps_wake is not None
        while not stop.is_set():
            if not self.gps_enabled:
                self._gps_wake.clear()
                await self._gps_wake.wait()  # nothing scheduled while GPS is off: a fleet has a thousand of these
            seconds, moved = 0, 0.0
            lat, lon = route.lat, route.lon
            while last is not None:
                lat, lon = route.step(moving=False if standing else None)
                seconds += 1
                moved = haversine_m(last[0], last[1], lat, lon)
                if standing or seconds >= every or moved >= far:
                    break
            await asyncio.sleep(seconds * tick)
            if not self.gps_enabled:
                continue
            await self.post("gpsReport", messages.gps_body(self.cfg, self.clock(), lat, lon, moved))
            self.stats.add("gps")
            last = (lat, lon)
            self._notify()

    # ---- running -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set. Uses the shared client when one was given."""
        own = self._client is None
        if own:
            self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=8))
        self._loop = asyncio.get_running_loop()
        self._capture_lock = asyncio.Lock()
        self._sender_wake = asyncio.Event()
        self._gps_wake = asyncio.Event()
        if len(self.spool):
            self._sender_wake.set()  # records left from a previous run
        if self.gps_enabled:
            self._gps_wake.set()
        self.log(f"starting: server {self.server}, protocol V{self.version}, time scale {self.cfg.time_scale}")
        jobs = [
            asyncio.create_task(job(stop))
            for job in (self._poll_loop, self._sender_loop, self._capture_loop, self._gps_loop)
        ]
        try:
            await stop.wait()
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            if own and self._client is not None:
                await self._client.aclose()
                self._client = None
            self._notify()

    # ---- sync facade (pytest-bdd steps cannot be async) -------------------------------------
    def start(self, timeout: float = 5.0) -> Device:
        """Run the device on its own event loop in a background thread."""
        if self._thread is not None:
            raise RuntimeError("device already started")
        ready = threading.Event()

        def main() -> None:
            async def body() -> None:
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                ready.set()
                await self.run(self._stop)

            try:
                asyncio.run(body())
            except BaseException as exc:  # noqa: BLE001 - kept for stop() to re-raise in the test thread
                self._crash = exc
                ready.set()

        self._thread = threading.Thread(target=main, name=f"device-{self.cfg.device_id}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("device loop did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None
        if self._crash is not None:
            raise RuntimeError(f"device {self.cfg.device_id} crashed") from self._crash

    def __enter__(self) -> Device:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run a coroutine on the device's loop from another thread and wait for it."""
        if self._loop is None:
            raise RuntimeError("device not started")
        return asyncio.run_coroutine_threadsafe(_invoke(make), self._loop).result(timeout)

    def capture_now(self, kind: str = "face", timeout: float = 30.0) -> dict[str, Any]:
        """Make one capture now and hand it to the server (or the spool); the capture body.
        Under the no-capture knob the camera's capture is made and never sent (faceCmd's,
        made on the loop, still is)."""
        if "no-capture" in self.cfg.faults:
            return self.call(lambda: self._capture_unsent(kind), timeout)
        return self.call(lambda: self.capture(kind), timeout)

    async def _capture_unsent(self, kind: str) -> dict[str, Any]:
        body = self.make_capture(kind)
        self.log(f"capture {body.get('frpic_name')} made, not uploaded")
        return body

    def alarm(self, alarm_type: int, status: int = 1, timeout: float = 30.0) -> Exchange | None:
        return self.call(lambda: self.send_alarm(alarm_type, status), timeout)

    def gps_start(self) -> None:
        """Start reporting along the route (any thread; before or after start)."""
        self.gps_enabled = self.gps_allowed()
        if "no-gps" in self.cfg.faults:
            self.gps_enabled = False
            self.log("GPS switched on; no gpsReport will be sent")
        elif not self.gps_enabled:
            self.log(f"gpsReport does not exist in protocol V{self.version}; GPS stays off")
        elif self._loop is not None and self._gps_wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._gps_wake.set)

    def gps_stop(self) -> None:
        self.gps_enabled = False


async def _invoke(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


async def _sleep_until(stop: asyncio.Event, when: float) -> None:
    """Sleep until the epoch time ``when``. A plain sleep (no task per call: a fleet sleeps thousands of
    times a second); the loops end by cancellation when ``run`` sees ``stop``."""
    delay = when - time.time()
    if delay > 0 and not stop.is_set():
        await asyncio.sleep(delay)


async def wait_or_stop(stop: asyncio.Event, when: float) -> None:
    """Sleep until the epoch time ``when`` unless ``stop`` is set first."""
    delay = when - time.time()
    if delay <= 0:
        return
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except TimeoutError:
        pass
