"""Evidence bundle: a report folder anyone can check offline.

A certification is handed to a customer or a lab; they must be able to tell
that the folder they got is the one the run wrote, and who vouches for it.
Every run ends by writing ``manifest.json`` in its report folder, an in-toto
Statement v1:

* ``subject``: every file of the folder (recursively; relative POSIX paths)
  with its sha256, except ``manifest.json`` and ``manifest.json.sig``;
* ``predicateType`` :data:`PREDICATE_TYPE` (stable: a new layout of the
  predicate gets a new URI), ``predicate``: what was certified, by which
  harness and contract, how, and when (:func:`evidence_predicate`).

``--sign KEY`` adds ``manifest.json.sig``, an SSH signature (namespace
:data:`NAMESPACE`) made by the stock ``ssh-keygen -Y sign``, so an auditor
needs nothing but OpenSSH to check it; no cryptography is written here.

Links are never followed: a symbolic link in the folder is refused when the
manifest is written and reported when it is verified (what it points to is
not part of the run). Files are opened with ``O_NOFOLLOW``; the signature
and the manifest are written fresh and renamed into place
(:func:`facecert.core.files.replace_with`), and ``ssh-keygen`` only ever
reads and writes copies in a private temporary folder, because it follows
links when it writes ``FILE.sig``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facecert.core.contract import schemas_dir
from facecert.core.files import replace_with
from facecert.core.jsonsafe import dumps_strict, loads_strict, printable

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://facecert.dev/evidence/v1"
NAMESPACE = "facecert-evidence"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
SEALS = frozenset({MANIFEST, SIGNATURE})  # the files a manifest cannot list (it would have to hash itself)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # a manifest lists file names and hashes; beyond this it is not ours
SSH_TIMEOUT_S = 60.0  # ssh-keygen signs in milliseconds; an agent asking for confirmation may take a while
GIT_TIMEOUT_S = 10.0
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a fifo swapped in cannot stall the open
_HEX = frozenset("0123456789abcdef")


class EvidenceError(Exception):
    """The manifest cannot be written, signed or read; the message is one line a person can act on."""


# ---- the folder's files -------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderEntry:
    """One thing below the report folder that is not a directory."""

    name: str  # relative POSIX path
    path: Path
    kind: str  # "file", "link" (a symbolic link, never followed) or "other" (fifo, socket, device)

    @property
    def shown(self) -> str:
        """The name for a terminal or a log line (control characters escaped)."""
        return printable(self.name)


def folder_entries(folder: Path) -> list[FolderEntry]:
    """Everything below ``folder`` that is not a directory, sorted by name.

    Directories are entered, links are not (a linked directory is an entry of
    kind ``link``), so nothing outside the folder is ever read."""
    found: list[FolderEntry] = []
    stack: list[tuple[str, Path]] = [("", Path(folder))]
    while stack:
        prefix, here = stack.pop()
        try:
            with os.scandir(here) as listing:
                entries = list(listing)
        except OSError as exc:
            raise EvidenceError(f"cannot read the folder {printable(str(here))}: {exc.strerror or exc}") from None
        for entry in entries:
            name = prefix + entry.name
            if entry.is_symlink():
                found.append(FolderEntry(name, Path(entry.path), "link"))
            elif entry.is_dir(follow_symlinks=False):
                stack.append((name + "/", Path(entry.path)))
            else:
                kind = "file" if entry.is_file(follow_symlinks=False) else "other"
                found.append(FolderEntry(name, Path(entry.path), kind))
    found.sort(key=lambda e: e.name)
    return found


def file_sha256(path: Path) -> str:
    """sha256 of a regular file, opened without following a link (ELOOP when it is one)."""
    try:
        fd = os.open(path, _READ)
    except OSError as exc:
        raise EvidenceError(f"cannot read {printable(str(path))}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise EvidenceError(f"{printable(str(path))} is not a regular file")
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _utf8(name: str) -> bool:
    """A name JSON can carry exactly (a name of bytes that are not UTF-8 decodes to lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def subjects(folder: Path) -> list[dict[str, Any]]:
    """The in-toto subjects of a report folder: every file but the manifest and its signature."""
    listed = []
    for entry in folder_entries(folder):
        if entry.name in SEALS:
            continue
        if entry.kind == "link":
            raise EvidenceError(
                f"{entry.shown} is a symbolic link: an evidence bundle holds files only "
                "(links are not followed); remove it or put the file itself there"
            )
        if entry.kind != "file":
            raise EvidenceError(f"{entry.shown} is not a regular file (fifo, socket or device): remove it")
        if not _utf8(entry.name):
            raise EvidenceError(f"{entry.shown}: the file name is not UTF-8, which a JSON manifest cannot name exactly")
        listed.append({"name": entry.name, "digest": {"sha256": file_sha256(entry.path)}})
    return listed


# ---- the predicate ------------------------------------------------------------------------------


def contract_digest(root: Path | None = None) -> str:
    """sha256 of the contract: every file under ``schemas/`` (schemas, profiles, catalogue, examples).

    The text hashed is the ``sha256sum`` listing, one ``<sha256>  <path>\\n`` line
    per file, sorted by path, so anyone can recompute it from a checkout:
    ``(cd schemas && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum) | sha256sum``."""
    folder = Path(root) if root is not None else schemas_dir()
    lines = []
    for entry in folder_entries(folder):
        if entry.kind != "file":
            raise EvidenceError(f"schemas/{entry.shown} is not a regular file: the contract cannot be hashed")
        lines.append(f"{file_sha256(entry.path)}  {entry.name}\n")
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def _source_root() -> Path:
    return Path(__file__).resolve().parent.parent


def harness_identity() -> dict[str, Any]:
    """facecert's version (``facecert.__version__``, from the package metadata) and, when it runs
    from a git checkout, the commit and whether tracked files differ from it (``dirty``): a commit
    alone does not describe edited code."""
    import facecert

    commit, dirty = _git_state(_source_root())
    return {"name": "facecert", "version": facecert.__version__, "commit": commit, "dirty": dirty}


def _git(root: Path, *args: str) -> str | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}  # a hook's GIT_DIR names another repo
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _git_state(root: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout facecert runs from; (None, None) when it is not one
    (an installed package inside somebody else's repository is not our checkout)."""
    if shutil.which("git") is None:
        return None, None
    head = _git(root, "rev-parse", "--show-toplevel", "HEAD")
    lines = head.split() if head else []
    if len(lines) != 2 or Path(lines[0]).resolve() != root:
        return None, None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return lines[1], None if status is None else bool(status.strip())


def iso_time(epoch: float | None) -> str | None:
    """UTC ISO 8601 with milliseconds, as the other reports write times."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def evidence_predicate(
    *,
    plan: str,
    verdict: str,
    scenarios: list[dict[str, Any]],
    profile: str | None,
    protocol_version: str | None,
    time_scale: float | None,
    peer: dict[str, Any],
    started: float | None,
    ended: float | None,
    demo: bool | None = None,
    capabilities_sha256: str | None = None,
    redaction_salt: str | None = None,
    command: list[str] | None = None,
    personal_data: str | None = None,
) -> dict[str, Any]:
    """The predicate of a run's manifest (layout :data:`PREDICATE_TYPE`).

    ``scenarios`` keep name, feature, verdict and rules. ``capabilities_sha256``
    (the capability statement the peer declared) and ``redaction_salt`` (kept
    only when asked: --keep-salt) are null until a run has them; ``personal_data`` says
    whether the report holds faces and names ("kept") or not ("redacted"). ``command`` defaults to
    this process's ``sys.argv``."""
    return {
        "plan": plan,
        "verdict": verdict,
        "scenarios": [
            {
                "name": s.get("name"),
                "feature": s.get("feature"),
                "verdict": s.get("verdict"),
                "rules": list(s.get("rules") or []),
            }
            for s in scenarios
        ],
        "harness": harness_identity(),
        "contract_sha256": contract_digest(),
        "capabilities_sha256": capabilities_sha256,
        "redaction_salt": redaction_salt,
        "personal_data": personal_data,  # "redacted" (the default) or "kept" (--keep-personal-data)
        "profile": profile,
        "protocol_version": protocol_version,
        "time_scale": time_scale,
        "demo": demo,
        "command": list(sys.argv if command is None else command),
        "peer": peer,
        "started": iso_time(started),
        "ended": iso_time(ended),
    }


PEER_FIELDS = ("device_id", "server_url", "devices")  # who was certified: the summary's names for it


def predicate_from_summary(
    summary: dict[str, Any], *, plan: str, started: float | None, ended: float | None
) -> dict[str, Any]:
    """The predicate of a run from its ``summary.json`` fields (certify device/server, proxy).

    The peer is what the summary names: the device id (and the URL the device
    was told to use), the server URL under test, or the devices a proxy saw."""
    return evidence_predicate(
        plan=plan,
        verdict=str(summary.get("verdict")),
        scenarios=list(summary.get("scenarios") or []),
        profile=summary.get("profile"),
        protocol_version=summary.get("protocol_version"),
        time_scale=summary.get("time_scale"),
        demo=summary.get("demo"),
        peer={k: summary[k] for k in PEER_FIELDS if k in summary},
        capabilities_sha256=summary.get("capabilities_sha256"),
        started=started,
        ended=ended,
        redaction_salt=summary.get("redaction_salt"),
        personal_data=summary.get("personal_data"),
    )


# ---- writing and signing ------------------------------------------------------------------------


def statement(report_dir: Path, predicate: dict[str, Any]) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects(Path(report_dir)),
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def write_manifest(report_dir: Path, predicate: dict[str, Any]) -> Path:
    """Hash every file of ``report_dir`` and write ``manifest.json`` (strict JSON).

    A signature left by an earlier manifest is removed first: it would no longer match."""
    folder = Path(report_dir)
    if not folder.is_dir():
        raise EvidenceError(f"{printable(str(folder))} is not a folder")
    text = dumps_strict(statement(folder, predicate), indent=2) + "\n"
    old = folder / SIGNATURE
    if os.path.lexists(old):
        old.unlink()
    return replace_with(folder / MANIFEST, lambda out: out.write(text))


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise EvidenceError(
            "ssh-keygen (OpenSSH) is not installed: it makes and checks the signatures "
            "(e.g. apt-get install openssh-client)"
        )
    return found


def _run_ssh_keygen(args: list[str], workdir: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """ssh-keygen in its own session: without a controlling terminal it can never stop to ask
    for a passphrase (a run ends unattended); a passphrase it needs makes it fail instead."""
    try:
        return subprocess.run(
            [_ssh_keygen(), *args],
            cwd=workdir,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=SSH_TIMEOUT_S,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EvidenceError(f"ssh-keygen did not finish within {SSH_TIMEOUT_S:.0f} s") from None
    except OSError as exc:
        raise EvidenceError(f"cannot run ssh-keygen: {exc}") from None


def _said(done: subprocess.CompletedProcess[bytes]) -> str:
    """The line of ssh-keygen's output that says what went wrong (not its banners)."""
    lines = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines()]
    lines = [
        line
        for line in lines
        if line
        and not line.startswith("@")
        and not line.startswith("Signing ")
        and not line.startswith("Write signature")
    ]
    return printable(lines[-1] if lines else f"exit status {done.returncode}")


def sign_bytes(data: bytes, key: Path) -> bytes:
    """The armored SSH signature (namespace :data:`NAMESPACE`) of ``data`` by ``key``.

    ``key`` is an OpenSSH private key without a passphrase, or a public key whose
    private half is loaded in ssh-agent."""
    key = Path(key).expanduser()
    if not key.is_file():
        raise EvidenceError(f"--sign {printable(str(key))}: no such key file")
    with tempfile.TemporaryDirectory(prefix="facecert-sign-") as scratch:
        work = Path(scratch)
        (work / MANIFEST).write_bytes(data)
        done = _run_ssh_keygen(["-Y", "sign", "-f", str(key.resolve()), "-n", NAMESPACE, MANIFEST], work)
        if done.returncode != 0 or not (work / SIGNATURE).is_file():
            raise EvidenceError(_key_problem(key, done))
        return (work / SIGNATURE).read_bytes()


def _key_problem(key: Path, done: subprocess.CompletedProcess[bytes]) -> str:
    shown = printable(str(key))
    output = done.stderr.decode("utf-8", "replace")
    if "passphrase" in output:
        return (
            f"--sign {shown}: the key is protected by a passphrase, and a run signs unattended: use a key "
            f'without one (ssh-keygen -t ed25519 -N "" -f KEY), or load it in ssh-agent (ssh-add {shown}) '
            f"and give its public key (--sign {shown}.pub)"
        )
    if "bad permissions" in output or "are too open" in output:
        return f"--sign {shown}: others can read the key, so ssh-keygen refuses it: chmod 600 {shown}"
    return f"--sign {shown}: ssh-keygen cannot sign with it ({_said(done)})"


def check_signing_key(key: Path) -> None:
    """Sign a few bytes with ``key`` before a run, so a key that cannot sign is said at
    once rather than after a plan that took minutes."""
    sign_bytes(b"facecert: can this key sign?\n", key)


def sign_manifest(report_dir: Path, key: Path) -> Path:
    """Write ``manifest.json.sig``: the SSH signature of the manifest's exact bytes."""
    folder = Path(report_dir)
    signature = sign_bytes(_read_seal(folder / MANIFEST), key)
    return replace_with(folder / SIGNATURE, lambda out: out.write(signature.decode("ascii")))


def seal(report_dir: Path, predicate: dict[str, Any], key: Path | None = None) -> list[Path]:
    """The last step of a run: write the manifest and, with a key, its signature."""
    written = [write_manifest(report_dir, predicate)]
    if key is not None:
        written.append(sign_manifest(report_dir, key))
    return written


# ---- verifying ----------------------------------------------------------------------------------


@dataclass
class Verification:
    """What ``facecert verify`` found: ``problems`` (each one line) fail it; ``notes`` inform."""

    files: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signed_by: str | None = None

    @property
    def code(self) -> int:
        return 1 if self.problems else 0


def _read_seal(path: Path) -> bytes:
    """The manifest or its signature, read once without following a link (bounded)."""
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError:
        raise EvidenceError(f"{printable(str(path))} does not exist") from None
    except OSError as exc:
        if os.path.islink(path):
            raise EvidenceError(
                f"{printable(str(path))} is a symbolic link: refused (links are not followed)"
            ) from None
        raise EvidenceError(f"cannot read {printable(str(path))}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise EvidenceError(f"{printable(str(path))} is not a regular file")
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise EvidenceError(
            f"{printable(str(path))} is larger than {MAX_MANIFEST_BYTES // 2**20} MiB: not a facecert manifest"
        )
    return data


def _inside(name: str) -> bool:
    """A relative POSIX path that stays inside the folder (a hostile manifest cannot name ../x)."""
    parts = name.split("/")
    return bool(name) and "\0" not in name and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def read_manifest(report_dir: Path) -> tuple[bytes, dict[str, Any], dict[str, str]]:
    """(the manifest's bytes, the statement, name → sha256); EvidenceError when it is not a usable manifest."""
    folder = Path(report_dir)
    if not folder.is_dir():
        raise EvidenceError(f"{printable(str(folder))} is not a folder")
    raw = _read_seal(folder / MANIFEST)
    try:
        document = loads_strict(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EvidenceError(f"{MANIFEST} is not JSON: {printable(str(exc))[:200]}") from None
    if not isinstance(document, dict) or document.get("_type") != STATEMENT_TYPE:
        raise EvidenceError(f"{MANIFEST} is not an in-toto Statement v1 (_type {STATEMENT_TYPE})")
    if document.get("predicateType") != PREDICATE_TYPE:
        raise EvidenceError(
            f"{MANIFEST} is not a facecert evidence manifest (predicateType "
            f"{printable(str(document.get('predicateType')))[:100]}, not {PREDICATE_TYPE})"
        )
    listed = document.get("subject")
    if not isinstance(listed, list):
        raise EvidenceError(f"{MANIFEST}: subject is not a list")
    digests: dict[str, str] = {}
    for index, item in enumerate(listed):
        name = item.get("name") if isinstance(item, dict) else None
        digest = item.get("digest") if isinstance(item, dict) else None
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(name, str) or not _inside(name) or name in SEALS:
            raise EvidenceError(f"{MANIFEST}: subject {index} does not name a file inside the folder")
        if not isinstance(sha, str) or len(sha) != 64 or not set(sha) <= _HEX:
            raise EvidenceError(f"{MANIFEST}: subject {printable(name)} has no sha256 digest")
        if name in digests:
            raise EvidenceError(f"{MANIFEST}: subject {printable(name)} is listed twice")
        digests[name] = sha
    return raw, document, digests


def verify_report(report_dir: Path, allowed_signers: Path | None = None, identity: str | None = None) -> Verification:
    """Check every file of ``report_dir`` against its manifest, and the signature when there is one.

    EvidenceError: the input is unusable (no folder, no manifest, not one of ours)."""
    folder = Path(report_dir)
    raw, document, digests = read_manifest(folder)
    result = Verification(files=len(digests))
    _check_files(folder, digests, result)
    _check_signature(folder, raw, allowed_signers, identity, result)
    _note_contract(document, result)
    return result


def _check_files(folder: Path, digests: dict[str, str], result: Verification) -> None:
    present: set[str] = set()
    for entry in folder_entries(folder):
        if entry.name in SEALS:
            continue
        present.add(entry.name)
        if entry.kind == "link":
            result.problems.append(
                f"symbolic link: {entry.shown} (links are not followed; the bundle holds files only)"
            )
        elif entry.kind != "file":
            result.problems.append(f"not a file: {entry.shown} (fifo, socket or device)")
        elif entry.name not in digests:
            result.problems.append(f"added: {entry.shown} (not in {MANIFEST})")
        else:
            now = file_sha256(entry.path)
            if now != digests[entry.name]:
                result.problems.append(
                    f"changed: {entry.shown} (sha256 {now[:16]}…, {MANIFEST} says {digests[entry.name][:16]}…)"
                )
    for name in digests:
        if name not in present:
            result.problems.append(f"missing: {printable(name)}")


def _check_signature(
    folder: Path, raw: bytes, allowed_signers: Path | None, identity: str | None, result: Verification
) -> None:
    signed = os.path.lexists(folder / SIGNATURE)
    if not signed:
        if allowed_signers is not None:
            result.problems.append(
                f"unsigned: {SIGNATURE} is missing, but a signature by {printable(identity or '')} was asked for"
            )
        else:
            result.notes.append(f"unsigned: no {SIGNATURE} (the files match the manifest; nobody vouches for it)")
        return
    if allowed_signers is None or identity is None:
        result.problems.append(
            f"signature not checked: {SIGNATURE} is there; give --allowed-signers FILE "
            f'--identity ID (a line of FILE: ID namespaces="{NAMESPACE}" ssh-ed25519 AAAA…)'
        )
        return
    signature = _read_seal(folder / SIGNATURE)
    said = verify_bytes(raw, signature, allowed_signers, identity)
    if said is None:
        result.signed_by = identity
    else:
        result.problems.append(
            f"bad signature: {SIGNATURE} is not a good {NAMESPACE} signature of {MANIFEST} "
            f"by {printable(identity)} ({said})"
        )


def verify_bytes(data: bytes, signature: bytes, allowed_signers: Path, identity: str) -> str | None:
    """None when ``signature`` is a good :data:`NAMESPACE` signature of ``data`` by ``identity``
    in ``allowed_signers`` (``ssh-keygen -Y verify``); else what ssh-keygen said."""
    signers = Path(allowed_signers).expanduser()
    if not signers.is_file():
        raise EvidenceError(f"--allowed-signers {printable(str(signers))}: no such file")
    with tempfile.TemporaryDirectory(prefix="facecert-verify-") as scratch:
        work = Path(scratch)
        (work / SIGNATURE).write_bytes(signature)
        done = _run_ssh_keygen(
            ["-Y", "verify", "-f", str(signers.resolve()), "-I", identity, "-n", NAMESPACE, "-s", SIGNATURE],
            work,
            stdin=data,
        )
    return None if done.returncode == 0 else _said(done)


def _note_contract(document: dict[str, Any], result: Verification) -> None:
    """Say whether the run used the contract this facecert holds (informative: runs of older
    contracts stay verifiable)."""
    predicate = document.get("predicate")
    recorded = predicate.get("contract_sha256") if isinstance(predicate, dict) else None
    try:
        here = contract_digest()
    except EvidenceError:
        return
    if recorded == here:
        result.notes.append("contract: the run used the same schemas/ as this facecert")
    else:
        result.notes.append("contract: the run used other schemas/ than this facecert's (another version)")
