"""The manifest on hand-made folders: what it lists, what it refuses, how it signs;
`facecert verify` on input it cannot use (exit 2); an unsigned run with its HTML report."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import facecert
from facecert.core.jsonsafe import loads_strict
from facecert.evidence import (
    EvidenceError,
    check_signing_key,
    contract_digest,
    file_sha256,
    harness_identity,
    predicate_from_summary,
    seal,
    verify_report,
    write_manifest,
)
from tests.evidence.conftest import Keys, make_key, run, ssh_verify, verify

pytestmark = pytest.mark.slow  # certification runs and a process per check: make test-fast leaves it out

ROOT = Path(__file__).resolve().parents[2]
PREDICATE = {"plan": "device", "verdict": "certified", "time_scale": float("nan")}


def _folder(tmp_path: Path) -> Path:
    report = tmp_path / "report"
    (report / "html" / "data").mkdir(parents=True)
    (report / "summary.json").write_text('{"verdict": "certified"}')
    (report / "html" / "index.html").write_text("<html></html>")
    (report / "html" / "data" / "ünïcode name.json").write_bytes(b"\x00\xff")
    (report / "empty").write_bytes(b"")
    return report


def test_manifest_lists_every_file_by_relative_posix_path_with_its_sha256(tmp_path: Path) -> None:
    report = _folder(tmp_path)
    path = write_manifest(report, PREDICATE)
    manifest = loads_strict(path.read_bytes())  # strict JSON: the NaN of the predicate is a string
    assert manifest["predicate"]["time_scale"] == "NaN"
    assert [s["name"] for s in manifest["subject"]] == [
        "empty",
        "html/data/ünïcode name.json",
        "html/index.html",
        "summary.json",
    ]
    for subject in manifest["subject"]:
        assert subject["digest"] == {"sha256": hashlib.sha256((report / subject["name"]).read_bytes()).hexdigest()}
    assert not list(report.glob("*.tmp"))
    write_manifest(report, PREDICATE)  # again: the manifest never lists itself
    assert "manifest.json" not in {s["name"] for s in loads_strict((report / "manifest.json").read_bytes())["subject"]}
    assert verify_report(report).code == 0


@pytest.mark.parametrize("planted", ["file", "folder"])
def test_a_symlink_in_the_folder_is_refused(tmp_path: Path, planted: str) -> None:
    report = _folder(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not part of the run")
    (report / "html" / "link").symlink_to(outside / "secret" if planted == "file" else outside)
    with pytest.raises(EvidenceError, match=r"^html/link is a symbolic link: an evidence bundle holds files only"):
        write_manifest(report, PREDICATE)
    assert not (report / "manifest.json").exists()


def test_a_fifo_and_a_name_that_is_not_utf8_are_refused(tmp_path: Path) -> None:
    report = _folder(tmp_path)
    os.mkfifo(report / "pipe")
    with pytest.raises(EvidenceError, match="pipe is not a regular file"):
        write_manifest(report, PREDICATE)
    with pytest.raises(EvidenceError, match="is not a regular file"):
        file_sha256(report / "pipe")  # a fifo swapped in after the listing: refused at once, no writer awaited
    (report / "pipe").unlink()
    with open(os.path.join(os.fsencode(report), b"bad\xffname"), "wb") as planted:
        planted.write(b"x")
    with pytest.raises(EvidenceError, match="the file name is not UTF-8"):
        write_manifest(report, PREDICATE)


def test_a_planted_manifest_link_is_replaced_not_followed(tmp_path: Path) -> None:
    report = _folder(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (report / "manifest.json").symlink_to(victim)
    write_manifest(report, PREDICATE)
    assert victim.read_text() == "keep me"
    assert not (report / "manifest.json").is_symlink()


def test_a_new_manifest_drops_the_old_signature(tmp_path: Path, keys: Keys) -> None:
    report = _folder(tmp_path)
    seal(report, PREDICATE, keys.lab)
    assert verify_report(report, keys.allowed, keys.identity).code == 0
    assert ssh_verify(report, keys).returncode == 0
    write_manifest(report, PREDICATE)
    assert not (report / "manifest.json.sig").exists()


def test_the_contract_digest_is_the_documented_sha256sum_recipe() -> None:
    recipe = "(cd schemas && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum) | sha256sum"
    done = subprocess.run(["bash", "-c", recipe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split()[0] == contract_digest()


def test_the_contract_digest_changes_with_any_contract_file(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "catalogue.yaml").write_text("a: 1\n")
    (tmp_path / "profiles" / "strict.yaml").write_text("b: 2\n")
    before = contract_digest(tmp_path)
    (tmp_path / "profiles" / "strict.yaml").write_text("b: 3\n")
    assert contract_digest(tmp_path) != before


def test_harness_identity_names_the_version_and_the_checkout() -> None:
    identity = harness_identity()
    assert identity["version"] == facecert.__version__
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    assert identity["commit"] == (head.stdout.strip() if head.returncode == 0 else None)


def test_the_predicate_from_a_summary() -> None:
    summary = {
        "plan": "server",
        "verdict": "not certified",
        "profile": "field",
        "protocol_version": "2.0",
        "time_scale": 0.05,
        "server_url": "http://127.0.0.1:1",
        "demo": False,
        "findings": [{"rule": "X"}],
        "scenarios": [
            {
                "name": "n",
                "feature": "f",
                "verdict": "fail",
                "rules": ["TASK-UNKNOWN"],
                "message": "long",
                "seconds": 1.0,
            }
        ],
    }
    predicate = predicate_from_summary(summary, plan="server", started=0.0, ended=1.5)
    assert predicate["scenarios"] == [{"name": "n", "feature": "f", "verdict": "fail", "rules": ["TASK-UNKNOWN"]}]
    assert predicate["peer"] == {"server_url": "http://127.0.0.1:1"}
    assert (predicate["started"], predicate["ended"]) == ("1970-01-01T00:00:00.000Z", "1970-01-01T00:00:01.500Z")
    assert "findings" not in predicate and predicate["verdict"] == "not certified"


# ---- keys that cannot sign ------------------------------------------------------------------------


def test_a_key_with_a_passphrase_says_what_to_do(tmp_path: Path, keys: Keys) -> None:
    locked = make_key(tmp_path / "locked", passphrase="secret words")
    with pytest.raises(EvidenceError, match=r"protected by a passphrase.*without one.*ssh-agent \(ssh-add .*\.pub"):
        check_signing_key(locked)


def test_a_key_others_can_read_and_a_missing_key(tmp_path: Path) -> None:
    key = make_key(tmp_path / "open")
    key.chmod(0o644)
    with pytest.raises(EvidenceError, match=r"others can read the key.*chmod 600"):
        check_signing_key(key)
    with pytest.raises(EvidenceError, match="no such key file"):
        check_signing_key(tmp_path / "nowhere")
    (tmp_path / "junk").write_text("not a key")
    (tmp_path / "junk").chmod(0o600)
    with pytest.raises(EvidenceError, match=r"ssh-keygen cannot sign with it \("):
        check_signing_key(tmp_path / "junk")


def test_no_ssh_keygen_is_one_clear_error(tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EvidenceError, match=r"ssh-keygen \(OpenSSH\) is not installed"):
        check_signing_key(keys.lab)


def test_certify_refuses_an_unusable_key_before_the_run(tmp_path: Path) -> None:
    locked = make_key(tmp_path / "locked", passphrase="secret words")
    done = run(
        "certify",
        "device",
        "--demo",
        "--no-html",
        "--tags",
        "cadence",
        "--report",
        str(tmp_path / "r"),
        "--sign",
        str(locked),
        timeout=60,
    )
    assert done.returncode == 2
    assert "protected by a passphrase" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "r").exists()  # said before anything ran


# ---- facecert verify on input it cannot use: exit 2, one line ----------------------------------------


def _verify_fails_with_2(report: Path, *extra: str) -> str:
    done = run("verify", str(report), *extra, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stdout
    return lines[0]


def test_verify_unusable_input_exits_2(tmp_path: Path, keys: Keys) -> None:
    assert "is not a folder" in _verify_fails_with_2(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    assert "is not a folder" in _verify_fails_with_2(tmp_path / "file")
    report = _folder(tmp_path)
    assert "manifest.json does not exist" in _verify_fails_with_2(report)
    manifest = report / "manifest.json"
    manifest.write_text("{not json")
    assert "manifest.json is not JSON" in _verify_fails_with_2(report)
    manifest.write_text('{"a": NaN}')
    assert "manifest.json is not JSON" in _verify_fails_with_2(report)
    manifest.write_text('{"_type": "https://example.test/other"}')
    assert "not an in-toto Statement v1" in _verify_fails_with_2(report)
    statement = {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://example.test/x", "subject": []}
    manifest.write_text(json.dumps(statement))
    assert "not a facecert evidence manifest" in _verify_fails_with_2(report)
    write_manifest(report, PREDICATE)
    good = json.loads(manifest.read_text())
    for name in ("../outside", "/etc/passwd", "html/../../x", "", "manifest.json"):
        hostile = {**good, "subject": [{"name": name, "digest": {"sha256": "0" * 64}}]}
        manifest.write_text(json.dumps(hostile))
        assert "does not name a file inside the folder" in _verify_fails_with_2(report), name
    manifest.write_text(json.dumps({**good, "subject": [{"name": "empty", "digest": {"sha256": "xyz"}}]}))
    assert "has no sha256 digest" in _verify_fails_with_2(report)
    manifest.write_text(json.dumps({**good, "subject": good["subject"][:1] * 2}))
    assert "is listed twice" in _verify_fails_with_2(report)
    manifest.unlink()
    (tmp_path / "elsewhere.json").write_text(json.dumps(good))
    manifest.symlink_to(tmp_path / "elsewhere.json")
    assert "manifest.json is a symbolic link: refused" in _verify_fails_with_2(report)
    manifest.unlink()
    write_manifest(report, PREDICATE)
    assert "go together" in _verify_fails_with_2(report, "--allowed-signers", str(keys.allowed))
    assert "go together" in _verify_fails_with_2(report, "--identity", keys.identity)
    seal(report, PREDICATE, keys.lab)
    assert "no such file" in _verify_fails_with_2(
        report, "--allowed-signers", str(tmp_path / "none"), "--identity", keys.identity
    )


# ---- an unsigned run, with its HTML report -----------------------------------------------------------


def test_an_unsigned_server_run_verifies_and_lists_its_html_report(tmp_path: Path) -> None:
    report = tmp_path / "report"
    done = run("certify", "server", "--demo", "--tags", "polling", "--report", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "manifest.json, unsigned; check it with: facecert verify" in done.stdout
    manifest = json.loads((report / "manifest.json").read_text())
    assert "html/index.html" in {s["name"] for s in manifest["subject"]}
    assert manifest["predicate"]["plan"] == "server" and set(manifest["predicate"]["peer"]) == {"server_url"}
    assert not (report / "manifest.json.sig").exists()
    checked = verify(report)
    assert checked.returncode == 0, checked.stdout
    assert "unsigned: no manifest.json.sig" in checked.stdout
    assert checked.stdout.strip().endswith(f"verified: {len(manifest['subject'])} files match manifest.json")
    (report / "html" / "index.html").write_text("<html>a forged report</html>")
    checked = verify(report)
    assert checked.returncode == 1 and checked.stdout.startswith("changed: html/index.html")


def test_certify_says_when_a_planted_link_keeps_it_from_sealing(tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (tmp_path / "elsewhere").write_text("not part of the run")
    (report / "notes").symlink_to(tmp_path / "elsewhere")
    done = run("certify", "device", "--demo", "--no-html", "--tags", "cadence", "--report", str(report))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "CERTIFIED" in done.stdout  # the verdict is printed; only the evidence is missing
    assert "error: no evidence manifest: notes is a symbolic link" in done.stdout
    assert not (report / "manifest.json").exists() and (report / "summary.json").is_file()
