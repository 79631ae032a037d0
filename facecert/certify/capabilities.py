"""Capability statements: what a peer claims to do, checked against what it does.

A statement is a YAML file validated by ``schemas/capabilities/<party>.schema.json``;
its enums come from the contract (catalogue tasks, versions and endpoints by
``x-enum-from``, alarm types and capture kinds by ``$ref`` into the message
schemas), so nothing here lists a task, a field or an alarm type by hand.

Scenarios say what they need with Gherkin tags ``@needs:KIND[=VALUE]``
(``@needs:task=getLogFile``, ``@needs:gps``, ``@needs:alarm=<alarm_type>``; an
outline's ``<param>`` is filled from its example row). With a statement:

- a scenario needing something the statement does not declare is
  ``not_applicable``, the capability named (:func:`check_needs`, before its first step);
- a scenario needing something declared that fails with a rule meaning "it did
  not happen" (ABSENCE) also names ``CAP-DECLARED-MISSING`` (:func:`declared_missing`);
- behaviour seen in the exchanges but not declared is a ``CAP-UNDECLARED``
  warning finding (:func:`undeclared`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from facecert.core.contract import Contract, get_contract
from facecert.core.rules.registry import RULES

PARTIES = ("device", "server")
SCHEMA = "capabilities/{party}"
MAX_STATEMENT_BYTES = 1 << 20  # a statement is a page of YAML; anything bigger is not one

# need kind -> the statement member that declares it; a list member holds values, a boolean one is on/off
MEMBERS = {
    "device": {
        "task": "tasks",
        "capture": "capture_kinds",
        "image": "image_fields",
        "alarm": "alarm_types",
        "gps": "gps",
        "resume_transfer": "resume_transfer",
    },
    "server": {"task": "tasks", "ack": "acks", "frpic_echo": "echoes_frpic_name"},
}
# need kind -> the plan rules that mean "what the scenario needed did not happen": declared and failed with one
# of them, the scenario also names CAP-DECLARED-MISSING
ABSENCE = {
    "device": {
        "task": {"TASK-NOT-DONE", "RESULT-MISSING"},
        "capture": {"CAPTURE-MISSING"},
        "alarm": {"ALARM-MISSING"},
        "gps": {"GPS-MISSING"},
        "resume_transfer": {"RESUME-REPLAY"},
    },
    "server": {"task": {"TASK-NOT-SENT"}, "ack": {"ANSWER-MISSING", "ANSWER-HTTP-STATUS"}},
}


class CapabilityError(ValueError):
    """The statement cannot be used (not YAML, breaks its schema, names what the contract lacks)."""


@dataclass(frozen=True)
class Need:
    kind: str
    value: str | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value}"


@dataclass
class Statement:
    party: str
    data: dict[str, Any]
    sha256: str
    source: str
    raw: bytes

    def declares(self, need: Need) -> bool:
        member = MEMBERS[self.party].get(need.kind)
        if member is None:
            raise CapabilityError(
                f"@needs:{need}: no capability {need.kind!r} for a {self.party} "
                f"(one of {', '.join(MEMBERS[self.party])})"
            )
        declared = self.data.get(member, _default(self.party, member))
        if isinstance(declared, bool):
            return declared
        return need.value in {str(v) for v in declared}


# ---- the schema with the contract's enums ---------------------------------------------------------
def _schema(party: str, contract: Contract | None = None) -> dict[str, Any]:
    return (contract or get_contract()).raw[SCHEMA.format(party=party)]


def _default(party: str, member: str) -> Any:
    return _schema(party)["properties"][member].get("default", [])


def enum_from(source: str, contract: Contract | None = None) -> list[Any]:
    """The values an ``x-enum-from`` annotation names, read from the contract."""
    c = contract or get_contract()
    if source == "catalogue tasks":
        return [name for name, task in c.all_tasks.items() if task.result is not None]
    if source == "catalogue protocol versions":
        return list(c.versions)
    if source == "catalogue idle task":
        return [c.idle_task]
    if source == "catalogue acknowledged endpoints":
        return [name for name, e in c.all_endpoints.items() if e.answer != "tasks"]
    if source == "catalogue endpoints":
        return list(c.all_endpoints)
    if source == "capture image fields":
        capture = c.raw[c.all_endpoints["faceRecognition"].request]
        return [
            name
            for name, prop in capture["properties"].items()
            if isinstance(prop, dict) and str(prop.get("$ref", "")).endswith("jpegBase64")
        ]
    raise KeyError(f"x-enum-from {source!r} names nothing of the contract")


def _ref_enum(prop: dict[str, Any], contract: Contract) -> tuple[list[Any], str]:
    """The enum (and its description) an ``items.$ref`` into a message schema points at."""
    ref = prop.get("items", {}).get("$ref", "")
    doc, _, pointer = ref.partition("#")
    name = next(n for n in contract.raw if contract.schema_id(n) == doc)
    node: Any = contract.raw[name]
    for part in [p for p in pointer.split("/") if p]:
        node = node[part]
    return list(node.get("enum", [])), node.get("description", "")


def allowed_values(party: str, member: str, contract: Contract | None = None) -> tuple[list[Any], str]:
    """(values the member may hold, what they mean) from the contract; ([], "") when free."""
    c = contract or get_contract()
    prop = _schema(party, c)["properties"][member]
    if "x-enum-from" in prop:
        return enum_from(prop["x-enum-from"], c), ""
    if "x-keys-from" in prop:
        return enum_from(prop["x-keys-from"], c), ""
    if "$ref" in prop.get("items", {}):
        return _ref_enum(prop, c)
    return [], ""


# ---- loading ----------------------------------------------------------------------------------
def load_statement(path: Path, party: str) -> Statement:
    """Read and check a statement; CapabilityError says what is wrong in one line."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_STATEMENT_BYTES + 1)
    except OSError as exc:
        raise CapabilityError(f"--capabilities {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_STATEMENT_BYTES:
        raise CapabilityError(f"--capabilities {path}: larger than {MAX_STATEMENT_BYTES} bytes; not a statement")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CapabilityError(f"--capabilities {path}: not YAML ({str(exc).splitlines()[0]})") from None
    return check_statement(data, party, raw, str(path))


def check_statement(data: Any, party: str, raw: bytes, source: str) -> Statement:
    contract = get_contract()
    if isinstance(data, dict) and data.get("statement") in PARTIES and data["statement"] != party:
        raise CapabilityError(
            f"{source} is a {data['statement']} statement; certify {party} needs a {party} one "
            f"(facecert capabilities template --{party})"
        )
    errors = contract.errors(SCHEMA.format(party=party), data, limit=5)
    if errors:
        raise CapabilityError(f"{source}: " + "; ".join(f"{e.pointer or '/'}: {e.message}" for e in errors))
    for member in data:
        values, _ = allowed_values(party, member, contract)
        given = data[member]
        named = [given] if isinstance(given, str) else list(given) if isinstance(given, (list, dict)) else []
        unknown = [v for v in named if values and v not in values]
        if unknown:
            raise CapabilityError(
                f"{source}: /{member}: {', '.join(map(str, unknown))} not of the contract "
                f"(one of {', '.join(map(str, values))})"
            )
    try:
        contract.check_version(str(data["protocol_version"]))
    except ValueError as exc:
        raise CapabilityError(f"{source}: /protocol_version: {exc}") from None
    return Statement(party, data, hashlib.sha256(raw).hexdigest(), source, raw)


# ---- the template -------------------------------------------------------------------------------
def template(party: str) -> str:
    """A commented statement declaring everything the contract has (delete what the peer lacks)."""
    contract = get_contract()
    schema = _schema(party, contract)
    lines = [
        f"# {schema['title']} (schemas/{SCHEMA.format(party=party)}.schema.json).",
        *[f"# {line}" for line in _wrap(schema["description"])],
        f"# Use it with: facecert certify {party} --capabilities THIS_FILE",
        "",
    ]
    for member, prop in schema["properties"].items():
        values, meaning = allowed_values(party, member, contract)
        lines += [
            f"# {line}" for line in _wrap(prop["description"] + ("" if member in schema["required"] else " (optional)"))
        ]
        lines.append(f"{member}:{_full_value(party, member, prop, values, contract, _labels(meaning))}")
        lines.append("")
    return "\n".join(lines)


def _full_value(
    party: str, member: str, prop: dict[str, Any], values: list[Any], contract: Contract, labels: dict[str, str]
) -> str:
    """The member declaring everything, one list item a line (delete the lines the peer lacks)."""
    if "const" in prop:
        return f" {json.dumps(prop['const'])}"
    if member == "protocol_version":
        return f" {json.dumps(contract.latest)}"
    if prop.get("type") == "boolean":
        return " true"
    if member == "idle_answer":
        return f" {contract.idle_task}"
    if member == "vendor_extensions":  # the extras field devices are known to add (catalogue vendor_extras)
        return "".join(
            f"\n  {endpoint}: {json.dumps(list(fields))}" for endpoint, fields in contract.vendor_extras.items()
        )
    return "".join(f"\n  - {json.dumps(v)}" + (f"  # {labels[str(v)]}" if str(v) in labels else "") for v in values)


def _labels(meaning: str) -> dict[str, str]:
    """value -> its words, from an enum's description ("Alarm type: 0 motion detection, 1 input alarm 1, ...")."""
    head = re.sub(r"\s*\([^()]*\)\s*$", "", meaning).split(":", 1)[-1]  # the Chinese original in brackets
    pairs = (re.match(r"\s*(\d+) (.+)", part) for part in head.split(","))
    return {m.group(1): m.group(2).strip() for m in pairs if m}


def _wrap(text: str, width: int = 100) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


# ---- needs of a scenario ------------------------------------------------------------------------
_PARAM = re.compile(r"<([^<>]+)>")


def needs_of(tags: Iterable[str], example: dict[str, str]) -> list[Need]:
    """``needs:`` tags with the outline row's values put in for ``<param>``."""
    out = []
    for tag in tags:
        kind, _, value = tag.partition("=")
        value = _PARAM.sub(lambda m: str(example.get(m.group(1), m.group(0))), value)
        out.append(Need(kind, value or None))
    return out


def check_needs(statement: Statement | None, needs: list[Need]) -> str | None:
    """Why the scenario is outside the statement (None: it applies)."""
    if statement is None:
        return None
    missing = [str(n) for n in needs if not statement.declares(n)]
    if not missing:
        return None
    return (
        f"outside the {statement.party}'s capability statement: it does not declare "
        f"{', '.join(missing)} ({statement.source})"
    )


def declared_missing(statement: Statement | None, needs: list[Need], rules: tuple[str, ...]) -> list[str]:
    """The declared needs a failure with ``rules`` shows were not delivered."""
    if statement is None:
        return []
    absence = ABSENCE[statement.party]
    return [str(n) for n in needs if set(rules) & absence.get(n.kind, set()) and statement.declares(n)]


# ---- behaviour seen but not declared --------------------------------------------------------------
def undeclared(
    statement: Statement | None, exchanges: Iterable[Any], findings: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """CAP-UNDECLARED findings (warnings), one per kind of undeclared behaviour, at its first exchange.

    Vendor fields are the engine's MSG-UNKNOWN-FIELD findings (the schemas say what the document defines)."""
    if statement is None:
        return []
    contract = get_contract()
    seen: dict[str, dict[str, Any]] = {}
    for index, exchange in enumerate(exchanges):
        endpoint = contract.endpoint_for_path(getattr(exchange, "path", ""))
        if endpoint is None:
            continue
        body, answer = _json(exchange.request_body), _json(exchange.response_body)
        for key, text in _observations(statement, contract, endpoint.name, body, answer):
            seen.setdefault(key, _finding(statement, text, exchange, index, endpoint.name))
    for found in findings:
        if (
            found.get("rule") == "MSG-UNKNOWN-FIELD"
            and statement.party == "device"
            and found.get("direction") == "request"
        ):
            endpoint, field = found.get("endpoint", ""), str(found.get("pointer", "")).lstrip("/")
            if field and field not in (statement.data.get("vendor_extensions") or {}).get(endpoint, []):
                text = (
                    f"the device's {endpoint} carries {field}, a field the document does not define and its "
                    f"statement does not declare (vendor_extensions.{endpoint})"
                )
                seen.setdefault(
                    f"vendor={endpoint}/{field}", {**_finding_at(statement, text, found), "time": found.get("time")}
                )
    return list(seen.values())


def _observations(
    statement: Statement, contract: Contract, endpoint: str, body: Any, answer: Any
) -> Iterable[tuple[str, str]]:
    if statement.party == "server":
        if endpoint == "taskRequest" and isinstance(answer, dict):
            task = answer.get("request_type")
            if (
                isinstance(task, str)
                and task in contract.all_tasks
                and task != contract.idle_task
                and not statement.declares(Need("task", task))
            ):
                yield f"task={task}", f"the server sent {task}, which its statement does not declare (tasks)"
        return
    if not isinstance(body, dict):
        return
    if endpoint == "gpsReport" and not statement.declares(Need("gps")):
        yield "gps", "the device sent a gpsReport, but its statement declares no GPS (gps: false)"
    if (
        endpoint == "deviceAlarm"
        and isinstance(body.get("alarm_type"), int)
        and not statement.declares(Need("alarm", str(body["alarm_type"])))
    ):
        yield (
            f"alarm={body['alarm_type']}",
            f"the device reported alarm type {body['alarm_type']}, which its statement does not declare (alarm_types)",
        )
    if endpoint == "faceRecognition":
        kind = body.get("car_label", 0)
        if isinstance(kind, int) and not statement.declares(Need("capture", str(kind))):
            yield (
                f"capture={kind}",
                (
                    f"the device uploaded a capture of car_label {kind}, which its statement "
                    "does not declare (capture_kinds)"
                ),
            )
        for field in enum_from("capture image fields", contract):
            if body.get(field) and not statement.declares(Need("image", field)):
                yield (
                    f"image={field}",
                    (f"the device's captures carry {field}, which its statement does not declare (image_fields)"),
                )


def _json(raw: bytes | None) -> Any:
    try:
        return json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        return None


def _finding(statement: Statement, text: str, exchange: Any, index: int, endpoint: str) -> dict[str, Any]:
    number = getattr(exchange, "index", -1)
    return {
        **_finding_at(
            statement,
            text,
            {
                "exchange": number if number >= 0 else index,
                "endpoint": endpoint,
                "direction": "answer" if statement.party == "server" else "request",
            },
        ),
        "time": getattr(exchange, "started", None),
    }


def _finding_at(statement: Statement, text: str, where: dict[str, Any]) -> dict[str, Any]:
    rule = RULES["CAP-UNDECLARED"]
    return {
        "rule": rule.id,
        "severity": rule.severity.value,
        "party": statement.party,
        "message": text,
        "spec": rule.spec,
        "exchange": where.get("exchange", -1),
        "endpoint": where.get("endpoint", ""),
        "direction": where.get("direction", ""),
        "pointer": where.get("pointer", ""),
    }


# ---- facecert capabilities template --------------------------------------------------------------
def register_capabilities(app: Any) -> None:
    """``facecert capabilities template --device|--server``."""
    import sys

    import typer

    group = typer.Typer(no_args_is_help=True, help="Capability statements: what a peer claims to do.")

    @group.command("template")
    def template_command(
        device: bool = typer.Option(False, "--device", help="a device's statement"),
        server: bool = typer.Option(False, "--server", help="a platform server's statement"),
    ) -> None:
        """Print a commented statement declaring everything the contract has: delete what the peer lacks."""
        from rich.console import Console

        from facecert.clicommon import fail

        if device == server:
            fail(Console(), "choose one of --device and --server")
        sys.stdout.write(template("device" if device else "server"))

    app.add_typer(group, name="capabilities")


def save_copy(statement: Statement, report: Path) -> Path:
    """The statement beside the report (its sha256 is the summary's): never through a link planted there."""
    import os

    path = report / "capabilities.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(statement.raw)
    return path
