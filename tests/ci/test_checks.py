"""`make check` catches what it is there for: the import contract (pyproject's [tool.importlinter])
reports a core module that imports a peer, and an import cycle inside the core, in a copy of the
package tree; it holds on the real tree; ruff's banned-api rule refuses the top-level folder names
(`import mock_server`) that are no import names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LINT_IMPORTS = BIN / "lint-imports"


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the copy, not the editable install, is `facecert`
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *selected],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The package's Python files (the linked peers and steps followed, as the wheel does) and the
    project's pyproject.toml (the contracts), in a fresh folder."""
    shutil.copytree(
        ROOT / "facecert",
        tmp_path / "facecert",
        symlinks=False,
        ignore=lambda folder, names: [
            n for n in names if n == "__pycache__" or (Path(folder, n).is_file() and not n.endswith(".py"))
        ],
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    """``statement`` after the module's docstring and ``from __future__`` line (a real top-level import)."""
    text = module.read_text(encoding="utf-8")
    anchor = "from __future__ import annotations\n"
    assert anchor in text, f"{module}: no anchor for the test's import"
    module.write_text(text.replace(anchor, anchor + statement + "\n", 1), encoding="utf-8")


def test_the_layers_hold_on_the_real_tree_and_the_core_has_no_cycle() -> None:
    done = lint_imports(ROOT)
    assert "CLI > steps > certification > peers > services > engine core KEPT" in done.stdout, done.stdout
    assert "cycles are allowed in facecert.core." not in done.stdout, done.stdout


def test_the_copy_is_what_is_checked(tree: Path) -> None:
    done = lint_imports(tree, "layers")
    assert done.returncode == 0 and "KEPT" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "statement", "upward"),
    [
        ("core/jsonsafe.py", "import facecert.mock_server", "facecert.core.jsonsafe -> facecert.mock_server"),
        (
            "core/rules/message.py",
            "from facecert.certify import asgi",
            "facecert.core.rules.message -> facecert.certify",
        ),
        ("validate.py", "import facecert.proxy_addons.addon", "facecert.validate -> facecert.proxy_addons.addon"),
    ],
)
def test_an_upward_import_breaks_the_layers(tree: Path, module: str, statement: str, upward: str) -> None:
    add_import(tree / "facecert" / module, statement)
    done = lint_imports(tree, "layers")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "engine core BROKEN" in done.stdout, done.stdout
    assert upward in done.stdout, done.stdout


def test_a_cycle_inside_the_core_breaks_the_acyclic_contract(tree: Path) -> None:
    # facecert.core.model imports jsonsafe; jsonsafe importing model closes a cycle
    add_import(tree / "facecert" / "core" / "jsonsafe.py", "import facecert.core.model")
    done = lint_imports(tree, "acyclic")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "No cycles are allowed in facecert.core." in done.stdout, done.stdout
    assert ".jsonsafe -> .model" in done.stdout or ".model -> .jsonsafe" in done.stdout, done.stdout


def ruff_banned(source: str, filename: str = "facecert/core/example.py") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID251", "--output-format", "concise"]
        + ["--stdin-filename", filename, "-"],
        cwd=ROOT,
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "source",
    [
        "import mock_server\n",
        "from mock_device.device import Device\n",
        "import proxy_addons.addon\n",
        "import steps\n",
    ],
)
def test_ruff_refuses_the_top_level_folder_names(source: str) -> None:
    out = ruff_banned(source)
    assert "TID251" in out and "import facecert." in out, out


def test_ruff_accepts_the_packaged_names() -> None:
    out = ruff_banned("import facecert.mock_server\nfrom facecert.steps import common\n")
    assert "TID251" not in out, out
