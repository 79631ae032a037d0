"""``facecert demo`` / ``make demo``: the main job on the embedded defaults.

1. the repaired examples of the document are validated through the engine;
2. our reference device is certified against our reference server
   (``facecert certify device --demo``);
3. our reference server is certified with our reference device
   (``facecert certify server --demo``);
and the report folders are printed at the end. Exit 0 when both are certified.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.examples import load_examples


def run_demo(report: Path, console: Console) -> int:
    run = report / time.strftime("%Y%m%d-%H%M%S")
    run.mkdir(parents=True, exist_ok=True)
    examples_ok = _examples(console)
    verdicts = {}
    for number, plan in enumerate(("device", "server"), start=2):
        console.rule(
            f"[bold]{number}/3 certify {plan} --demo[/] (our reference {'device' if plan == 'device' else 'server'})"
        )
        done = subprocess.run(
            [sys.executable, "-m", "facecert.cli", "certify", plan, "--demo", "--report", str(run / plan)], timeout=1800
        )
        verdicts[plan] = done.returncode == 0
    console.rule("[bold]demo finished[/]")
    for plan in ("device", "server"):
        summary_path = run / plan / "summary.json"
        html = json.loads(summary_path.read_text())["html"] if summary_path.exists() else None
        state = "[green]certified[/]" if verdicts[plan] else "[red]not certified[/]"
        console.print(f"{plan:6} {state}: report {html or run / plan}", soft_wrap=True)
    ok = examples_ok and all(verdicts.values())
    console.print(
        f"all reports under {run}/ (open the index.html files in a browser; they work offline)", soft_wrap=True
    )
    return 0 if ok else 1


def _examples(console: Console) -> bool:
    examples = load_examples()
    console.rule(f"[bold]1/3 the {len(examples)} repaired examples of the protocol document[/]")
    engine = Engine(EngineConfig())
    bad = 0
    for example in examples:
        found = judge_message(engine, example.schema, json.dumps(example.body).encode())
        bad += bool(found)
        mark = "[green]ok[/]" if not found else f"[red]{len(found)} finding(s)[/]"
        console.print(f"  {example.file:34} {example.schema:36} {mark}")
    return bad == 0
