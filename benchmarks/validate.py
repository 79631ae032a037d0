"""Throughput of `facecert validate` against plain JSON parsing of the same capture, in one run.

    .venv/bin/python benchmarks/validate.py [--exchanges 10000] [--repeat 5] [--jobs 2] [--python-slice 0]

Writes a JSONL capture of N exchanges (the clean sample conversation over N/80 devices, one
300-byte-to-1 KB body each way, captures with a small JPEG, redacted as facecert writes it), then
times, in the same run, each round in turn (so that a busy machine slows all of them alike):

  baseline   read the capture: json-decode every line, base64-decode both bodies, and
             json.loads every request and answer body (what any reader must do);
  validate   what `facecert validate capture.jsonl` judges with: facecert.validate.judge_files
             (read_capture, Engine.feed for every exchange, finish), one process;
  jobs N     the same split by device over N processes: facecert.validate.judge_split
             (`facecert validate --jobs N`), startup of the processes included;
  python     (--python-slice K) validate with the pure-Python jsonschema backend, on K exchanges.

Wall-clock seconds, best of --repeat rounds. Prints exchanges/s and the ratios: validate's
throughput ÷ the baseline's (by wall clock, and by this process's CPU time, which a busy machine
skews less), and jobs N's ÷ validate's (the speed-up; `nproc` cores); and the CPU seconds of each
(the main process's and the jobs'), which bound the speed-up on idle cores.
The findings of every run are checked to be the same (none: the capture is clean).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from facecert.core.captures import read_capture, write_jsonl
from facecert.core.contract import Contract, get_contract
from facecert.core.engine import Engine, EngineConfig
from facecert.core.model import Finding
from facecert.samples import iter_large
from facecert.validate import judge_files, judge_split


def baseline(path: Path) -> int:
    count = 0
    with open(path, "rb") as handle:
        for line in handle:
            record = json.loads(line)
            for key in ("request_b64", "response_b64"):
                raw = base64.b64decode(record[key] or "")
                if raw:
                    json.loads(raw)
            count += 1
    return count


def validate(path: Path) -> tuple[int, list[Finding]]:
    _, findings, count = judge_files([path], EngineConfig())
    return count, findings


def jobs_run(path: Path, jobs: int) -> tuple[int, list[Finding]]:
    findings, count, _ = judge_split([path], EngineConfig(), jobs)
    return count, findings


def python_run(path: Path, limit: int) -> int:
    engine = Engine(EngineConfig(), contract=Contract(backend="py"))
    count = 0
    for exchange in read_capture(path):
        engine.feed(exchange)
        count += 1
        if count >= limit:
            break
    engine.finish()
    assert not engine.errors(), [f.line() for f in engine.errors()[:5]]
    return count


CPU: dict[str, list[tuple[float, float]]] = {}  # run -> (this process's CPU s, its children's CPU s) per round


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object], name: str = "") -> tuple[float, object]:
    cpu, children = time.process_time(), _children_cpu()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    CPU.setdefault(name, []).append((time.process_time() - cpu, _children_cpu() - children))
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--python-slice", type=int, default=0, help="exchanges for the pure-Python backend (0: skip)")
    args = parser.parse_args()
    get_contract().validator("device/taskRequest")  # the contract loaded before timing, as in a long run
    with tempfile.TemporaryDirectory() as folder:
        path = write_jsonl(iter_large(args.exchanges), Path(folder) / "capture.jsonl")
        size = path.stat().st_size
        times: dict[str, list[float]] = {"baseline": [], "validate": [], "jobs": []}
        expected: list[dict[str, object]] | None = None
        n = 0
        for _ in range(args.repeat):
            seconds, n = timed(lambda: baseline(path), "baseline")  # type: ignore[assignment]
            times["baseline"].append(seconds)
            for name, run in (("validate", lambda: validate(path)), ("jobs", lambda: jobs_run(path, args.jobs))):
                seconds, (count, findings) = timed(run, name)  # type: ignore[misc]
                assert count == n, (name, count, n)
                found = [f.to_dict() for f in findings]
                expected = found if expected is None else expected
                assert found == expected, f"{name}: other findings than the first run"
                times[name].append(seconds)
        python = None
        if args.python_slice:
            python = timed(lambda: python_run(path, args.python_slice))
    best = {name: min(values) for name, values in times.items()}
    # ratios round by round too: their median says how steady the best-of figures are
    per_round = [b / v for b, v in zip(times["baseline"], times["validate"], strict=True)]
    speedups = [v / j for v, j in zip(times["validate"], times["jobs"], strict=True)]
    print(f"capture: {n} exchanges, {size / 1e6:.1f} MB; {os.cpu_count()} cores; best of {args.repeat} rounds")
    print(f"date: {datetime.date.today().isoformat()}")
    print("| run | seconds | exchanges/s | throughput ÷ baseline |")
    print("|---|---:|---:|---:|")
    for name, label in (
        ("baseline", "baseline: read + json.loads of every body"),
        ("validate", "facecert validate, one process"),
        ("jobs", f"facecert validate --jobs {args.jobs}"),
    ):
        print(f"| {label} | {best[name]:.3f} | {n / best[name]:,.0f} | {best['baseline'] / best[name]:.2f}× |")
    if python is not None:
        seconds, count = python
        print(
            f"| validate, python jsonschema backend (first {count}) | {seconds:.3f} | {count / seconds:,.0f} | "
            f"{best['baseline'] / n * count / seconds:.2f}× |"
        )
    print(
        f"validate ÷ plain parse: {best['baseline'] / best['validate']:.2f}× "
        f"(median of rounds {statistics.median(per_round):.2f}×)"
    )
    print(
        f"--jobs {args.jobs} ÷ --jobs 1 speed-up: {best['validate'] / best['jobs']:.2f}× "
        f"(median of rounds {statistics.median(speedups):.2f}×)"
    )
    # CPU seconds say what the wall clock cannot on a shared machine: the main process reads and deals
    # out the exchanges while the jobs judge them, so the longer of the two bounds the wall time
    single = min(cpu for cpu, _ in CPU["validate"])
    # on a loaded machine the wall clock counts the time other processes held the core; CPU time does not
    plain_cpu = min(cpu for cpu, _ in CPU["baseline"])
    cpu_ratios = [b[0] / v[0] for b, v in zip(CPU["baseline"], CPU["validate"], strict=True)]
    print(
        f"validate ÷ plain parse by CPU time: {plain_cpu / single:.2f}× (baseline {plain_cpu:.3f} s, "
        f"validate {single:.3f} s; median of rounds {statistics.median(cpu_ratios):.2f}×)"
    )
    main_cpu, jobs_cpu = min(CPU["jobs"], key=sum)
    cores = os.cpu_count() or 1
    bound = single / max(main_cpu, jobs_cpu / args.jobs, (main_cpu + jobs_cpu) / cores)
    print(
        f"CPU: validate {single:.2f} s; --jobs {args.jobs}: main process {main_cpu:.2f} s, jobs {jobs_cpu:.2f} s "
        f"together; speed-up on {cores} idle cores at most {bound:.2f}× "
        f"(load average now {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
