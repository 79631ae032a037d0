"""A signed certification run, checked the way an auditor checks it: `facecert verify`
and `ssh-keygen -Y verify` alone; every kind of tampering is caught and named."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import facecert
from facecert.evidence import PREDICATE_TYPE, STATEMENT_TYPE, contract_digest, folder_entries, verify_report
from tests.evidence.conftest import Keys, ssh_verify, verify
from tests.support import SCALE

pytestmark = pytest.mark.slow  # signed certification runs: make test-fast leaves it out

ROOT = Path(__file__).resolve().parents[2]


def _files(report: Path) -> dict[str, str]:
    """Every file below ``report`` (but the manifest and its signature) with its sha256, by os.walk."""
    found = {}
    for folder, _, names in os.walk(report):
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(report).as_posix()
            if rel not in ("manifest.json", "manifest.json.sig"):
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_signed_run_verifies_with_facecert_and_with_ssh_keygen_alone(signed_run: Path, keys: Keys) -> None:
    checked = verify(signed_run, keys)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"signature good for {keys.identity}" in checked.stdout
    alone = ssh_verify(signed_run, keys)
    assert alone.returncode == 0, alone.stderr
    assert f'Good "facecert-evidence" signature for {keys.identity}'.encode() in alone.stdout


def test_the_files_check_with_stock_tools_too(signed_run: Path, copy_of: Callable[[Path], Path]) -> None:
    """The README's recipe without facecert: jq lists the subjects, sha256sum checks them."""
    if shutil.which("jq") is None or shutil.which("sha256sum") is None:
        pytest.skip("jq or sha256sum is not installed")
    recipe = "jq -r '.subject[] | \"\\(.digest.sha256)  \\(.name)\"' manifest.json | sha256sum --quiet -c"
    assert subprocess.run(["bash", "-c", recipe], cwd=signed_run, capture_output=True, timeout=60).returncode == 0
    report = copy_of(signed_run)
    _flip(report / "junit.xml")
    failed = subprocess.run(["bash", "-c", recipe], cwd=report, capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and "junit.xml: FAILED" in failed.stdout


def test_manifest_lists_every_file_and_what_was_certified(signed_run: Path) -> None:
    manifest = json.loads((signed_run / "manifest.json").read_text(encoding="utf-8"))
    summary = json.loads((signed_run / "summary.json").read_text(encoding="utf-8"))
    assert manifest["_type"] == STATEMENT_TYPE and manifest["predicateType"] == PREDICATE_TYPE
    listed = {s["name"]: s["digest"]["sha256"] for s in manifest["subject"]}
    assert listed == _files(signed_run)
    assert {"summary.json", "junit.xml", "session.har", "session.db"} <= set(listed)
    assert any(name.startswith("allure-results/") for name in listed)
    predicate = manifest["predicate"]
    assert predicate["plan"] == "device" and predicate["verdict"] == summary["verdict"] == "certified"
    assert predicate["scenarios"] == [
        {k: s[k] for k in ("name", "feature", "verdict", "rules")} for s in summary["scenarios"]
    ]
    assert len(predicate["scenarios"]) == 2
    assert predicate["harness"]["version"] == facecert.__version__
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode == 0:
        assert predicate["harness"]["commit"] == head.stdout.strip()
        assert isinstance(predicate["harness"]["dirty"], bool)
    assert predicate["contract_sha256"] == contract_digest()
    assert predicate["capabilities_sha256"] is None and predicate["redaction_salt"] is None
    assert (predicate["profile"], predicate["protocol_version"], predicate["time_scale"]) == (
        "strict",
        summary["protocol_version"],
        SCALE,
    )
    assert predicate["demo"] is True
    assert predicate["command"][1:4] == ["certify", "device", "--demo"] and "--sign" in predicate["command"]
    assert predicate["peer"] == {"device_id": summary["device_id"], "server_url": summary["server_url"]}
    assert predicate["started"] < predicate["ended"]


def _flip(path: Path) -> None:
    """Change one byte (an empty file gets one)."""
    data = bytearray(path.read_bytes())
    if not data:
        path.write_bytes(b"\0")
        return
    middle = len(data) // 2
    data[middle] ^= 0x01
    path.write_bytes(bytes(data))


def test_one_changed_byte_in_any_file_fails_naming_it(
    signed_run: Path, keys: Keys, copy_of: Callable[[Path], Path]
) -> None:
    report = copy_of(signed_run)
    names = [e.name for e in folder_entries(report) if e.name not in ("manifest.json", "manifest.json.sig")]
    assert len(names) > 10
    for name in names:
        original = (report / name).read_bytes()
        _flip(report / name)
        result = verify_report(report, keys.allowed, keys.identity)
        assert result.code == 1 and len(result.problems) == 1, (name, result.problems)
        assert result.problems[0].startswith(f"changed: {name} (sha256 "), result.problems
        (report / name).write_bytes(original)
    assert verify_report(report, keys.allowed, keys.identity).code == 0  # restored: whole again
    _flip(report / "session.har")
    checked = verify(report, keys)
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[0].startswith("changed: session.har (sha256 ")


def test_a_changed_manifest_or_signature_fails(signed_run: Path, keys: Keys, copy_of: Callable[[Path], Path]) -> None:
    report = copy_of(signed_run)
    manifest = report / "manifest.json"
    original = manifest.read_bytes()
    manifest.write_bytes(original.replace(b'"verdict": "certified"', b'"verdict": "certifiee"', 1))
    checked = verify(report, keys)
    assert checked.returncode == 1 and "bad signature: manifest.json.sig" in checked.stdout, checked.stdout
    assert ssh_verify(report, keys).returncode != 0
    manifest.write_bytes(original)
    signature = report / "manifest.json.sig"
    lines = signature.read_text().splitlines()
    middle = lines[len(lines) // 2]
    lines[len(lines) // 2] = middle[:10] + ("A" if middle[10] != "A" else "B") + middle[11:]
    signature.write_text("\n".join(lines) + "\n")
    checked = verify(report, keys)
    assert checked.returncode == 1 and "bad signature" in checked.stdout, checked.stdout
    assert ssh_verify(report, keys).returncode != 0


def test_an_added_file_fails_naming_it(signed_run: Path, keys: Keys, copy_of: Callable[[Path], Path]) -> None:
    report = copy_of(signed_run)
    (report / "allure-results" / "extra-result.json").write_text("{}")
    checked = verify(report, keys)
    assert checked.returncode == 1
    assert "added: allure-results/extra-result.json (not in manifest.json)" in checked.stdout.splitlines()


def test_a_removed_file_fails_naming_it(signed_run: Path, keys: Keys, copy_of: Callable[[Path], Path]) -> None:
    report = copy_of(signed_run)
    (report / "junit.xml").unlink()
    checked = verify(report, keys)
    assert checked.returncode == 1
    assert "missing: junit.xml" in checked.stdout.splitlines()


def test_a_planted_link_fails_and_is_not_followed(
    signed_run: Path, keys: Keys, copy_of: Callable[[Path], Path]
) -> None:
    report = copy_of(signed_run)
    target = report / "summary.json"
    moved = report.parent / "summary.json"
    target.rename(moved)
    target.symlink_to(moved)  # same bytes, through a link
    checked = verify(report, keys)
    assert checked.returncode == 1
    assert "symbolic link: summary.json (links are not followed; the bundle holds files only)" in checked.stdout
    assert "NOT VERIFIED: 1 problem(s)" in checked.stdout  # one line for it: the link, not also "missing"


def test_a_signature_from_another_key_fails(signed_run: Path, keys: Keys, copy_of: Callable[[Path], Path]) -> None:
    report = copy_of(signed_run)
    (report / "manifest.json.sig").unlink()
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(keys.other), "-n", "facecert-evidence", str(report / "manifest.json")],
        check=True,
        capture_output=True,
        timeout=30,
    )
    checked = verify(report, keys)
    assert checked.returncode == 1
    assert checked.stdout.startswith(
        f"bad signature: manifest.json.sig is not a good facecert-evidence signature "
        f"of manifest.json by {keys.identity}"
    ), checked.stdout
    assert ssh_verify(report, keys).returncode != 0
    assert verify_report(report).code == 1  # signed, so a check without signers is not a pass either


def test_a_signed_run_checked_without_signers_says_how(signed_run: Path) -> None:
    checked = verify(signed_run)
    assert checked.returncode == 1
    assert "give --allowed-signers FILE --identity ID" in checked.stdout


def test_signers_asked_for_but_the_run_is_unsigned(
    signed_run: Path, keys: Keys, copy_of: Callable[[Path], Path]
) -> None:
    report = copy_of(signed_run)
    (report / "manifest.json.sig").unlink()
    checked = verify(report, keys)
    assert checked.returncode == 1
    assert f"unsigned: manifest.json.sig is missing, but a signature by {keys.identity} was asked for" in checked.stdout
    assert verify(report).returncode == 0  # the files alone still match
