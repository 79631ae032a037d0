"""What one hostile message costs the engine, against plain ``json.loads`` of it.

    .venv/bin/python benchmarks/hostile.py [--repeat 3]

For each body (a taskRequest poll made hostile, up to the 20 MiB body
limit), times best of --repeat: ``json.loads`` of the body (what any reader
pays, where it can parse it at all) and ``Engine.feed`` of the exchange
(parse within the contract's limits, schema, content, conversation). Prints
seconds, the findings made and their rules.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from facecert.core.engine import Engine, EngineConfig
from facecert.core.examples import example_for
from facecert.core.model import Exchange
from facecert.samples import ConversationBuilder


def poll_with(extra: dict[str, object]) -> bytes:
    return json.dumps({**example_for("device/taskRequest"), **extra}, separators=(",", ":")).encode()


CASES: dict[str, Callable[[], bytes]] = {
    "poll, 100,000 unknown keys (1.7 MB)": lambda: poll_with({f"k{i:07d}": 1 for i in range(100_000)}).ljust(1_700_000),
    "poll, 1,000,000 keys (18.8 MB)": lambda: poll_with({f"k{i:07d}": 1 for i in range(1_000_000)}).ljust(18_800_000),
    "1,000,000 nested arrays (2 MB)": lambda: b"[" * 1_000_000 + b"]" * 1_000_000,
    "array of 1,000,000 objects (3 MB)": lambda: b'{"x":[' + b",".join([b"{}"] * 1_000_000) + b"]}",
    "18 MB string of escapes and commas": lambda: b'{"x":"' + b'\\\\,\\",' * 3_000_000 + b'"}',
    "poll, 9,990 unknown keys (within bounds)": lambda: poll_with({f"k{i}": 1 for i in range(9_990)}),
    "poll, 10 objects x 9,000 keys (within bounds)": lambda: poll_with(
        {f"v{j}": {f"k{i}": 1 for i in range(9_000)} for j in range(10)}
    ),
    "poll, 5,000-digit integer": lambda: poll_with({}).replace(
        b'"time_stamp":', b'"time_stamp":' + b"9" * 5000 + b',"x":'
    ),
}


def exchange(raw: bytes) -> Exchange:
    return ConversationBuilder()._post("/taskRequest", raw, example_for("server/tasks/idleTime"))


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def judge_best(repeat: int, raw: bytes) -> tuple[float, Counter[str]]:
    """Best time of feeding the exchange to a fresh engine (made before the clock starts)."""
    times, rules = [], Counter[str]()
    for _ in range(repeat):
        engine, item = Engine(EngineConfig()), exchange(raw)
        started = time.perf_counter()
        judged = engine.feed(item)
        times.append(time.perf_counter() - started)
        rules = Counter(f.rule for f in judged.findings)
    return min(times), rules


def plain_loads(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine = Engine(EngineConfig())
    engine.feed(exchange(poll_with({})))  # validators compiled before timing
    print("| body | bytes | json.loads s | engine s | findings |")
    print("|---|---:|---:|---:|---|")
    for name, make in CASES.items():
        raw = make()
        loads = best(args.repeat, partial(plain_loads, raw))
        seconds, rules = judge_best(args.repeat, raw)
        print(
            f"| {name} | {len(raw):,} | {loads:.3f} | {seconds:.3f} | "
            f"{', '.join(f'{rule} x{count}' for rule, count in rules.items())} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
