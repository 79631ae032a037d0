"""Throughput of `facecert validate` against plain JSON parsing of the same capture.

    .venv/bin/python benchmarks/validate.py [--exchanges 10000] [--repeat 3]

Writes a JSONL capture of N exchanges (the clean sample conversation over
N/80 devices, one 300-byte-to-1 KB body each way, captures with a small JPEG),
then times, in the same run and best of --repeat:
  baseline   read the file, json-decode every line, base64-decode and
             json-decode both bodies (what any reader must do);
  facecert   read_capture + Engine.feed for every exchange + finish
             (schemas via jsonschema-rs, the default);
  python     the same with the pure-Python jsonschema backend, on a slice.
Prints exchanges/s and each as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
from pathlib import Path

from facecert.core.captures import read_capture, write_jsonl
from facecert.core.contract import Contract
from facecert.core.engine import Engine, EngineConfig
from facecert.samples import iter_large


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


def facecert_run(path: Path, backend: str, limit: int | None = None) -> int:
    engine = Engine(EngineConfig(), contract=Contract(backend=backend))
    count = 0
    for exchange in read_capture(path):
        engine.feed(exchange)
        count += 1
        if limit and count >= limit:
            break
    engine.finish()
    assert not engine.errors(), [f.line() for f in engine.errors()[:5]]
    return count


def best(fn, repeat: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - started)
    return min(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python-slice", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = write_jsonl(iter_large(args.exchanges), Path(folder) / "capture.jsonl")
        size = path.stat().st_size
        base_s, n = best(lambda: baseline(path), args.repeat)
        rs_s, n_rs = best(lambda: facecert_run(path, "rs"), args.repeat)
        py_s, n_py = best(lambda: facecert_run(path, "py", args.python_slice), 1)
        base_slice_s = base_s * n_py / n
    rows = [
        ("baseline (json parse)", n, base_s),
        ("facecert, jsonschema-rs", n_rs, rs_s),
        (f"facecert, python jsonschema (first {n_py})", n_py, py_s),
    ]
    print(f"capture: {n} exchanges, {size / 1e6:.1f} MB")
    print("| run | exchanges | seconds | exchanges/s | time ratio to baseline |")
    print("|---|---:|---:|---:|---:|")
    for name, count, seconds in rows:
        reference = base_s if count == n else base_slice_s
        print(f"| {name} | {count} | {seconds:.3f} | {count / seconds:,.0f} | {seconds / reference:.1f}x |")
    print(f"jsonschema-rs engine is {py_s / n_py / (rs_s / n_rs):.1f}x faster per exchange than python-jsonschema")


if __name__ == "__main__":
    main()
