"""The repaired spec examples (schemas/examples/index.yaml) as data for
tests, the demo and the reference peers."""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from facecert.core.contract import schemas_dir


@dataclass(frozen=True)
class Example:
    file: str
    schema: str
    spec: str
    repairs: tuple[str, ...]
    body: Any


def load_examples(root: Path | None = None) -> list[Example]:
    return list(_load(root or schemas_dir()))


@functools.cache
def _load(root: Path) -> tuple[Example, ...]:
    folder = root / "examples"
    index = yaml.safe_load((folder / "index.yaml").read_text(encoding="utf-8"))
    return tuple(
        Example(
            item["file"],
            item["schema"],
            str(item.get("spec", "")),
            tuple(item.get("repairs") or ()),
            json.loads((folder / item["file"]).read_text(encoding="utf-8")),
        )
        for item in index
    )


def example_for(schema: str) -> Any:
    """The first repaired example of a schema (a deep copy each call)."""
    for example in load_examples():
        if example.schema == schema:
            return copy.deepcopy(example.body)
    raise KeyError(f"no example for {schema}")
