"""What a contract diff is made of: the two sides compared, the messages, and one change.

A change is classified by its **direction** (what the new contract does to the
set of messages it accepts at that place) and then by **who it breaks**, which
depends on who sends the message:

===========  ==========================  ===========================
sender       tightening (accepts less)   loosening (accepts more)
===========  ==========================  ===========================
device       breaks devices: an old      breaks servers: they must
             device's message is now     now accept what they never
             refused                     had to
server       breaks servers: an old      breaks devices: they must
             server's message is now     now accept (carry out) what
             refused                     they never had to
===========  ==========================  ===========================

A change that does both (a type or a pattern replaced) breaks both; a change
of annotations only (descriptions) breaks nobody.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecert.core.contract import Contract

TIGHTENING = "tightening"
LOOSENING = "loosening"
BOTH = "both"
NEUTRAL = "neutral"
DIRECTIONS = (TIGHTENING, LOOSENING, BOTH, NEUTRAL)
PARTIES = ("device", "server")


def breaks(sender: str, direction: str) -> list[str]:
    """Who a change breaks, from who sends the message and which way the change goes."""
    receiver = "server" if sender == "device" else "device"
    if direction == TIGHTENING:
        return [sender]
    if direction == LOOSENING:
        return [receiver]
    if direction == BOTH:
        return sorted({sender, receiver})
    return []


def directions_of(direction: str) -> list[str]:
    """The one-way searches a direction needs (both: each way)."""
    return {
        TIGHTENING: [TIGHTENING],
        LOOSENING: [LOOSENING],
        BOTH: [TIGHTENING, LOOSENING],
        NEUTRAL: [TIGHTENING, LOOSENING],
    }[direction]


@dataclass
class Side:
    """One contract to compare: a schema tree (its catalogue and schemas) cut to one protocol version."""

    contract: Contract
    version: str
    label: str  # how the output names this side: "1.3", or "old (schemas-old/) 2.0"

    @classmethod
    def load(cls, root: Path | None, version: str | None, label: str = "") -> Side:
        contract = Contract(root)
        version = contract.check_version(version)
        return cls(contract, version, label or version)


@dataclass(frozen=True)
class Message:
    """A schema that is sent on the wire, and who sends it (from the catalogue's roles)."""

    name: str  # schema name: device/deviceAlarm, server/tasks/addUser
    sender: str  # "device" or "server"
    role: str  # what it is: "deviceAlarm request", "addUser task", "addUser result"


@dataclass
class Witness:
    """A concrete message that shows a change: accepted by one side, refused by the other."""

    direction: str  # TIGHTENING: the old side accepts it and the new refuses it; LOOSENING: the reverse
    instance: Any
    accepted_by: str
    refused_by: str
    error: dict[str, Any]  # the refusing side's first error at the change: keyword, pointer, message
    method: str  # how it was found: "example <file> with <pointer> changed", "generated from <side>", ...
    endpoint: str = ""  # for catalogue changes: the endpoint the message goes to

    def to_dict(self) -> dict[str, Any]:
        out = {
            "direction": self.direction,
            "accepted_by": self.accepted_by,
            "refused_by": self.refused_by,
            "error": self.error,
            "method": self.method,
            "message": self.instance,
        }
        if self.endpoint:
            out["endpoint"] = self.endpoint
        return out


@dataclass
class Change:
    """One difference between the two contracts at one place of one message."""

    message: str  # schema name, or the catalogue entry for a task or endpoint
    sender: str
    kind: str  # field added, required added, type, enum, range, length, pattern, task added, ...
    pointer: str  # where in the message (instance JSON pointer, * for any array item)
    old: Any
    new: Any
    direction: str
    detail: str = ""  # one line for a person
    condition: str = ""  # when the change applies (inside if/then/else or one alternative of anyOf)
    witnesses: list[Witness] = field(default_factory=list)
    tried: int = 0  # candidate messages tried in the empirical check
    note: str = ""  # what the empirical check found, when it is not simply "confirmed"
    static_direction: str = ""  # the direction from the schemas alone, when the empirical check changed it

    @property
    def breaks(self) -> list[str]:
        return breaks(self.sender, self.direction)

    @property
    def breaking(self) -> bool:
        return bool(self.breaks)

    @property
    def confirmed(self) -> bool:
        """Every way this change is said to break was shown by a witness (a neutral one: none was found)."""
        if self.direction == NEUTRAL:
            return not self.witnesses
        found = {w.direction for w in self.witnesses}
        return set(directions_of(self.direction)) <= found

    def to_dict(self) -> dict[str, Any]:
        out = {
            "message": self.message,
            "sender": self.sender,
            "kind": self.kind,
            "pointer": self.pointer,
            "old": self.old,
            "new": self.new,
            "direction": self.direction,
            "breaks": self.breaks,
            "breaking": self.breaking,
            "detail": self.detail,
            "confirmed": self.confirmed,
            "tried": self.tried,
            "counterexamples": [w.to_dict() for w in self.witnesses],
        }
        if self.condition:
            out["condition"] = self.condition
        if self.note:
            out["note"] = self.note
        if self.static_direction:
            out["static_direction"] = self.static_direction
        return out


@dataclass
class ContractDiff:
    """Every change between two contracts, per message."""

    old: Side
    new: Side
    changes: list[Change]
    messages: int  # messages compared
    empirical: str  # how instances were made: "hypothesis-jsonschema + examples" or "examples"

    def breaking(self, party: str | None = None) -> list[Change]:
        return [c for c in self.changes if c.breaking and (party is None or party in c.breaks)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": {"root": str(self.old.contract.root), "version": self.old.version, "label": self.old.label},
            "new": {"root": str(self.new.contract.root), "version": self.new.version, "label": self.new.label},
            "messages_compared": self.messages,
            "instances": self.empirical,
            "counts": {
                "changes": len(self.changes),
                "breaking": len(self.breaking()),
                "breaks_devices": len(self.breaking("device")),
                "breaks_servers": len(self.breaking("server")),
                "unconfirmed": sum(1 for c in self.changes if not c.confirmed),
            },
            "changes": [c.to_dict() for c in self.changes],
        }
