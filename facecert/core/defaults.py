"""The harness's defaults: every number facecert assumes that the protocol does not fix, in one place.

Protocol facts (intervals, the result deadline, bounds on one message, task names and fields) are
not here: they live in ``schemas/`` (catalogue.yaml and the schemas) and are read through
:class:`facecert.core.contract.Contract`. What is here are the harness's own choices (how much
cadence slack a conforming device gets, which time scales a session accepts, where a server
listens), used alike by the engine, both reference peers, the proxy, the steps and the CLI help
texts. The bounds on one message (catalogue ``limits:``) are exposed from the contract by
:func:`limits` and :func:`max_body_bytes`, never copied.

Imports nothing above the contract (engine-core level).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from facecert.core.contract import Limits, get_contract

# Cadence: a gap between polls is accepted from nominal × (1 − tolerance) to
# nominal × (1 + tolerance) + allowance + busy (docs/architecture.md, Cadence; errata #26).
CADENCE_TOLERANCE = 0.25  # relative, on the 20 s / 5 s intervals: ±25 %
CADENCE_ALLOWANCE_S = 0.05  # absolute network allowance on top, seconds
TOLERANCE_MIN, TOLERANCE_MAX = 0.0, 1.0  # a relative tolerance: 1 accepts any early poll

# Time scale: protocol intervals and deadlines are multiplied by it (simulators run faster than real time).
TIME_SCALE = 1.0  # real time: what a device in the field does
DEMO_TIME_SCALE = 0.05  # `certify --demo`: both reference peers at 1/20 of real time (idle 1 s, task 0.25 s)
# Accepted by every command, peer and the proxy alike. Below 1e-4 the task interval (5 s) is under half a
# millisecond, less than the network allowance by a hundred times: nothing about the cadence is judged any more.
# Above 100 an idle interval lasts more than half an hour.
TIME_SCALE_MIN, TIME_SCALE_MAX = 0.0001, 100.0
# `--demo` at another time scale for every run that does not give --time-scale (a CI that wants its self-test
# faster, this project's own tests): read when a run starts, so forked and child processes follow the variable.
DEMO_TIME_SCALE_ENV = "FACECERT_DEMO_TIME_SCALE"


# Where a reference server or the proxy listens unless told otherwise (127.0.0.1 only: never off the machine).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_LISTEN = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
# The device_id the reference device sends and `certify device` expects unless told otherwise.
DEFAULT_DEVICE_ID = "ID00000000000001"


# How long a person at the console gets for something only they can do (present a face, queue a task by hand).
OPERATOR_WAIT_S = 120.0

# The smallest body bound a command accepts (--max-body): below it not even a poll fits.
MAX_BODY_MIN = 1024


def limits() -> Limits:
    """The bounds on one message: the contract's (catalogue.yaml ``limits:``), not a copy."""
    return get_contract().limits


def max_body_bytes() -> int:
    """The largest body judged (catalogue.yaml ``limits.max_body_bytes``, 20 MiB)."""
    return get_contract().limits.max_body_bytes


def check_time_scale(value: float, what: str = "time_scale") -> float:
    """``value`` when it lies within TIME_SCALE_MIN..TIME_SCALE_MAX; ValueError otherwise."""
    if not TIME_SCALE_MIN <= value <= TIME_SCALE_MAX:
        raise ValueError(f"{what} {value!r} is outside {TIME_SCALE_MIN:g}..{TIME_SCALE_MAX:g}")
    return value


def demo_time_scale(environ: Mapping[str, str] = os.environ) -> float:
    """The time scale of a `--demo` run: :data:`DEMO_TIME_SCALE` unless ``FACECERT_DEMO_TIME_SCALE`` says
    another; ValueError naming the variable when its value is no number within the time-scale range."""
    text = environ.get(DEMO_TIME_SCALE_ENV, "").strip()
    if not text:
        return DEMO_TIME_SCALE
    try:
        return check_time_scale(float(text), DEMO_TIME_SCALE_ENV)  # NaN is outside the range too
    except ValueError:
        raise ValueError(
            f"{DEMO_TIME_SCALE_ENV}={text!r} is no time scale: give a number from {TIME_SCALE_MIN:g} to "
            f"{TIME_SCALE_MAX:g}, or unset it for the demo's {DEMO_TIME_SCALE:g}"
        ) from None


def check_tolerance(value: float, what: str = "tolerance") -> float:
    """``value`` when it lies within TOLERANCE_MIN..TOLERANCE_MAX; ValueError otherwise."""
    if not TOLERANCE_MIN <= value <= TOLERANCE_MAX:
        raise ValueError(f"{what} {value!r} is outside {TOLERANCE_MIN:g}..{TOLERANCE_MAX:g}")
    return value
