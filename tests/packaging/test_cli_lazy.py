"""The ``facecert`` command imports a peer's or certification's code only when one of its commands runs
(facecert/cli.py LAZY_COMMANDS): `facecert validate` in a fresh process imports neither peer, every
command is still offered by ``--help`` and by the "did you mean" hint."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from facecert.cli import LAZY_COMMANDS, app

PEERS = ("facecert.mock_server", "facecert.mock_device", "facecert.proxy_addons", "facecert.certify")


@pytest.mark.parametrize("module", list(LAZY_COMMANDS))
def test_each_lazy_module_registers_exactly_the_names_written_for_it(module: str) -> None:
    part = typer.Typer()
    importlib.import_module(module).register(part)
    assert sorted(typer.main.get_group(part).commands) == sorted(LAZY_COMMANDS[module])


def _imported_after(argv: list[str]) -> set[str]:
    """The facecert modules a fresh interpreter holds after ``facecert ARGV``."""
    script = (
        "import sys\n"
        f"sys.argv = ['facecert', *{argv!r}]\n"
        "from facecert.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('facecert'))), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    return set(done.stderr.split())


def test_validate_imports_no_peer_and_proxy_only_its_own() -> None:
    validate = _imported_after(["validate", "--help"])
    assert "facecert.cli" in validate and "facecert.clicommon" in validate
    assert not [m for m in validate if m.startswith(PEERS)], "validate imported a peer"
    proxy = _imported_after(["proxy", "--help"])
    assert "facecert.proxy_addons.cli" in proxy
    assert not [m for m in proxy if m.startswith(("facecert.mock_server", "facecert.mock_device", "facecert.certify"))]


def test_help_lists_every_command_and_a_typo_gets_a_hint() -> None:
    shown = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    for names in LAZY_COMMANDS.values():
        for name in names:
            assert f" {name} " in shown.output, f"{name} missing from --help"
    typo = CliRunner().invoke(app, ["certfy"])
    assert typo.exit_code == 2 and "certify" in typo.output, typo.output
