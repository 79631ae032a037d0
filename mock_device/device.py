"""The reference device on asyncio + httpx: a thin driver over the sans-I/O core.

Everything the device decides (poll body and cadence, tasks and their results, back-off,
captures, alarms, GPS, the resume-transfer spool, fault knobs) is in
:class:`facecert.mock_device.core.DeviceCore`. This driver only performs the core's actions:
a :class:`~facecert.mock_device.core.Send` becomes an httpx request (its outcome fed back with
``core.receive``), a :class:`~facecert.mock_device.core.Wait` an ``loop.call_later`` timer
(``core.timer_fired``), and a :class:`~facecert.mock_device.core.Finished` resolves the future
of the command that started it. The core's state reads through: ``dev.stats``, ``dev.faces``,
``dev.results``, ``dev.exchanges``, ``dev.spool``, ``dev.servers``, ``dev.version``, ...

Nothing the server does stops the device: a refused connection, a timeout, a 5xx, a body that
is not JSON or a task it does not know are logged by the core, which backs off and polls again.

Tests and pytest-bdd steps cannot be async; :meth:`Device.start` runs the device on its own
event loop in a thread and the sync methods (``capture_now``, ``alarm``, ``gps_start``,
``wait_until``) cross over to it. The second driver, for Locust, is mock_device/locustfile.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from facecert.core.model import Exchange
from facecert.mock_device.config import DeviceConfig
from facecert.mock_device.core import Action, DeviceCore, Send, Wait, idle_task_name
from facecert.mock_device.flow import READ_CHUNK, BodyCap, Reply, declared_length
from facecert.stalls import stall_clock

__all__ = ["Device", "idle_task_name", "wait_or_stop"]

logger = logging.getLogger("mock_device")
# The answer as sent: a device asks for no Content-Encoding (libcurl sends no Accept-Encoding unless told),
# and the bytes are never inflated here, so a compressed bomb costs what its bytes on the wire cost.
IDENTITY = {"Accept-Encoding": "identity"}
# How long a stopped device lets its exchanges in flight finish before it drops them: a poll answered in
# that time is recorded whole, where cutting it made the server (or a proxy) see the device leave unanswered.
STOP_GRACE_S = 1.0


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    """The answer's bytes as sent (``iter_raw``: no decoding), read until its end or past ``limit`` (0: no limit).
    A Content-Length above the limit is refused before its first byte is read."""
    cap = BodyCap(limit or 2**63)
    declared = declared_length(response.headers)
    if declared is None or declared <= cap.limit:
        async for chunk in response.aiter_raw(READ_CHUNK):
            if not cap.add(chunk):
                break  # the rest is not read: closing the response drops the connection
    return cap.body(declared)


class Device:
    """One simulated terminal on asyncio. ``client`` lets a fleet share one connection pool, ``gate`` bounds
    a fleet's requests in flight; what the device knows and does is ``self.core`` (read through)."""

    def __init__(
        self, cfg: DeviceConfig, client: httpx.AsyncClient | None = None, gate: asyncio.Semaphore | None = None
    ) -> None:
        self.core = DeviceCore(cfg)
        self.gate = gate  # a fleet's bound on requests in flight across all its devices
        self.stalls = stall_clock()  # how long this process could not run: read beside every request's stamps
        self._client = client
        self._changed = threading.Condition()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._requests: set[asyncio.Task[None]] = set()
        self._commands: dict[int, asyncio.Future[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None
        self._stopping = False  # set when run() ends: what the core asks for then is not done
        self._unanswered = 0  # requests on their way (in_flight)

    def __getattr__(self, name: str) -> Any:
        """The core's state and decisions, read through (``dev.stats``, ``dev.cfg``, ``dev.scaled(...)``)."""
        core = self.__dict__.get("core")
        if core is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(core, name)

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered (nor failed): 0 again before the core hears the answer."""
        return self._unanswered

    # ---- clock, waiting ------------------------------------------------------------------
    def clock(self) -> float:
        """The device's own clock now (UTC seconds): what setDevTime moves."""
        return time.time() + self.core.clock_offset

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

    # ---- performing the core's actions ----------------------------------------------------
    def _apply(self, actions: list[Action]) -> None:
        loop = self._loop
        assert loop is not None, "the device is not running"
        for action in actions:
            if self._stopping and isinstance(action, (Send, Wait)):
                continue  # switched off: no new request, no new timer
            if isinstance(action, Send):
                task = loop.create_task(self._request(action))
                self._requests.add(task)
                task.add_done_callback(self._request_done)
            elif isinstance(action, Wait):
                delay = max(0.0, action.until - time.time())
                self._timers[action.ticket] = loop.call_later(delay, self._fire, action.ticket)
            else:
                future = self._commands.pop(action.ticket, None)
                if future is not None and not future.done():
                    if action.error is not None:
                        future.set_exception(action.error)
                    else:
                        future.set_result(action.value)
        self._notify()

    def _request_done(self, task: asyncio.Task[None]) -> None:
        """A request ended. A Ctrl-C that landed inside it ended it with KeyboardInterrupt, which asyncio also
        raises out of the loop (the CLI stops the device and prints its summary): it is marked seen here, or
        asyncio would print "Task exception was never retrieved" and a traceback at the user after that. Any other
        exception (the core's handling of a reply failed) is logged, not silenced."""
        self._requests.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # marked seen; anything but a stop is a bug of ours, said once with its traceback
        if error is not None and not isinstance(error, (KeyboardInterrupt, SystemExit)):
            logger.error("a request of the device failed (a bug)", exc_info=error)

    def _fire(self, ticket: int) -> None:
        self._timers.pop(ticket, None)
        self._apply(self.core.timer_fired(ticket, time.time()))

    async def _request(self, send: Send) -> None:
        self._unanswered += 1
        try:
            if self.gate is None:
                reply = await self._http(send)
            else:
                async with self.gate:
                    reply = await self._http(send)
        except Exception as exc:  # a bug below us (httpx, anyio) must not leave the core waiting for ever
            logger.exception("the request to %s failed inside the HTTP client", send.url)
            reply = Reply(None, None, {}, time.time(), time.time(), f"internal error: {exc.__class__.__name__}: {exc}")
        finally:
            self._unanswered -= 1
        self._apply(self.core.receive(send.ticket, reply))

    async def _http(self, send: Send) -> Reply:
        """The request as the socket saw it; transport errors become status None. The answer is read as it
        comes, never more than ``send.limit`` bytes (past it: flow.Oversized, and the connection is dropped),
        and the whole exchange, a server trickling its answer included, ends by ``send.timeout``."""
        assert self._client is not None, "the device is not running"
        started, stall = time.time(), self.stalls.read()
        headers = {**send.headers, **IDENTITY} if send.headers else IDENTITY
        try:
            async with asyncio.timeout(send.timeout):
                request = self._client.build_request(
                    send.method,
                    send.url,
                    content=send.body if send.body or send.method != "GET" else None,
                    headers=headers,
                    timeout=send.timeout,
                )
                response = await self._client.send(request, stream=True)
                try:
                    body = await _read_capped(response, send.limit)
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError) as exc:
            return self._stamped(
                Reply(None, None, {}, started, time.time(), f"timeout ({exc.__class__.__name__})"), stall
            )
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
            return self._stamped(Reply(None, None, {}, started, time.time(), f"{exc.__class__.__name__}: {exc}"), stall)
        return self._stamped(Reply(response.status_code, body, dict(response.headers), started, time.time()), stall)

    def _stamped(self, reply: Reply, stall_started: float) -> Reply:
        """``reply`` with the stall clock read beside its stamps (facecert.stalls): a poll this process sent late
        because it could not run is HARNESS-STALLED in the judgement of its own recording, not CADENCE-*."""
        reply.stall_started, reply.stall_ended = stall_started, self.stalls.read()
        return reply

    async def _command(self, give: Callable[[float], tuple[int, list[Action]]]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ticket, actions = give(time.time())
        self._commands[ticket] = future
        self._apply(actions)
        return await future

    async def capture(self, kind: str = "face") -> dict[str, Any]:
        """The camera makes a capture and delivers it (or spools it); the capture made."""
        return await self._command(lambda now: self.core.capture_command(kind, now))

    async def send_alarm(self, alarm_type: int, status: int = 1) -> Exchange | None:
        """Report an alarm; None when the no-alarm knob swallows it."""
        return await self._command(lambda now: self.core.alarm_command(alarm_type, status, now))

    # ---- running -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set. Uses the shared client when one was given."""
        own = self._client is None
        if own:
            self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=8))
        self._loop = asyncio.get_running_loop()
        self._stopping = False  # a device stopped before may be run again
        try:
            self._apply(self.core.start(time.time()))
            await stop.wait()
        finally:
            self._stopping = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            requests = list(self._requests)
            if requests:  # an exchange in flight ends before the device does, within a grace: no torn last poll
                await asyncio.wait(requests, timeout=STOP_GRACE_S)
            for task in requests:
                task.cancel()
            await asyncio.gather(*requests, return_exceptions=True)
            self.core.stop()
            for future in self._commands.values():
                future.cancel()
            self._commands.clear()
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

    def call[R](self, make: Callable[[], Awaitable[R]], timeout: float = 30.0) -> R:
        """Run a coroutine on the device's loop from another thread and wait for it."""
        if self._loop is None:
            raise RuntimeError("device not started")
        return asyncio.run_coroutine_threadsafe(_invoke(make), self._loop).result(timeout)

    def capture_now(self, kind: str = "face", timeout: float = 30.0) -> dict[str, Any]:
        """Make one capture now and hand it to the server (or the spool); the capture body.
        Under the no-capture knob the camera's capture is made and never sent (faceCmd's
        still is: the core decides)."""
        return self.call(lambda: self.capture(kind), timeout)

    def alarm(self, alarm_type: int, status: int = 1, timeout: float = 30.0) -> Exchange | None:
        return self.call(lambda: self.send_alarm(alarm_type, status), timeout)

    def gps_start(self) -> None:
        """Start reporting along the route (any thread; before or after start)."""
        loop = self._loop
        if loop is not None and self.core.running and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: self._apply(self.core.gps_on(time.time())))
        else:
            self.core.gps_on(time.time())

    def gps_stop(self) -> None:
        self.core.gps_off()


async def _invoke[R](make: Callable[[], Awaitable[R]]) -> R:
    return await make()


async def wait_or_stop(stop: asyncio.Event, when: float) -> None:
    """Sleep until the epoch time ``when`` unless ``stop`` is set first."""
    delay = when - time.time()
    if delay <= 0:
        return
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except TimeoutError:
        pass
