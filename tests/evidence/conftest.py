"""Keys and runs for the evidence tests: real ed25519 keys made by ssh-keygen, real
certification runs of our reference peers (subprocesses), verified by real ssh-keygen."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import facecert

IDENTITY = "lab@example.test"


@dataclass(frozen=True)
class Keys:
    lab: Path  # the lab's private key (no passphrase)
    other: Path  # somebody else's key
    allowed: Path  # allowed_signers: only the lab's key, for the facecert-evidence namespace
    identity: str = IDENTITY


def make_key(path: Path, passphrase: str = "") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    return path


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (OpenSSH) is not installed")
    folder = tmp_path_factory.mktemp("keys")
    lab, other = make_key(folder / "lab"), make_key(folder / "other")
    allowed = folder / "allowed_signers"
    public = (folder / "lab.pub").read_text().strip()
    allowed.write_text(f'{IDENTITY} namespaces="facecert-evidence" {public}\n')
    return Keys(lab, other, allowed)


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``facecert ARGS`` as its own process (forked: tests.support.facecert), stdin /dev/null."""
    return facecert(*args, timeout=timeout)


def verify(report: Path, keys: Keys | None = None) -> subprocess.CompletedProcess[str]:
    signers = ["--allowed-signers", str(keys.allowed), "--identity", keys.identity] if keys else []
    return run("verify", str(report), *signers, timeout=60)


def ssh_verify(report: Path, keys: Keys) -> subprocess.CompletedProcess[bytes]:
    """The auditor's check with nothing but OpenSSH, exactly as the README shows it."""
    with (report / "manifest.json").open("rb") as manifest:
        return subprocess.run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(keys.allowed),
                "-I",
                keys.identity,
                "-n",
                "facecert-evidence",
                "-s",
                str(report / "manifest.json.sig"),
            ],
            stdin=manifest,
            capture_output=True,
            timeout=30,
        )


@pytest.fixture(scope="module")
def signed_run(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fast signed certification of our reference device (kept pristine: tests tamper with copies)."""
    report = tmp_path_factory.mktemp("signed") / "report"
    done = run(
        "certify",
        "device",
        "--demo",
        "--no-html",
        "--tags",
        "cadence",
        "--report",
        str(report),
        "--sign",
        str(keys.lab),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "manifest.json signed by" in done.stdout, done.stdout
    return report


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    """A copy of a report folder to tamper with (links copied as links)."""

    def copy(report: Path) -> Path:
        target = tmp_path / "copy"
        shutil.copytree(report, target, symlinks=True)
        return target

    return copy
