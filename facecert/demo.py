"""``facecert demo`` / ``make demo``: the main job on embedded defaults.

For now: validate every repaired example of the document and a sample
capture, and write the reports. It grows into the full certification demo.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from facecert.engine import Engine, EngineConfig, judge_message
from facecert.examples import load_examples
from facecert.reports import summarize, write_junit, write_summary
from facecert.reports.console import findings_table, print_verdict
from facecert.samples import sample_conversation
from facecert.captures import write_har


def run_demo(report: Path, console: Console) -> int:
    report.mkdir(parents=True, exist_ok=True)
    engine = Engine(EngineConfig())
    examples = load_examples()
    console.print(f"[bold]1/2[/] validating the {len(examples)} repaired examples of the protocol document")
    for example in examples:
        found = judge_message(engine, example.schema, json.dumps(example.body).encode())
        mark = "[green]ok[/]" if not found else f"[red]{len(found)} finding(s)[/]"
        console.print(f"  {example.file:32} {example.schema:36} {mark}")
    har = write_har(sample_conversation(), report / "sample-session.har")
    console.print(f"[bold]2/2[/] validating a sample session capture: {har}")
    from facecert.validate import judge_files

    _, findings, total = judge_files([har], EngineConfig())
    all_findings = engine.findings + findings
    summary = summarize(all_findings, exchanges=engine.count + total, profile="strict", version=engine.version)
    write_summary(summary, report / "summary.json")
    write_junit(all_findings, report / "junit.xml", suite="facecert.demo")
    if all_findings:
        console.print(findings_table(all_findings))
    print_verdict(console, summary)
    console.print(f"reports: {report}/summary.json, {report}/junit.xml, {har}")
    return 0 if summary["verdict"] == "pass" else 1
