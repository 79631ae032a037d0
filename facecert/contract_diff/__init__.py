"""``facecert contract diff``: what a change of the contract does, and to whom.

Two contracts are compared (two protocol versions of one schema tree, or two
trees, e.g. this commit's schemas/ and the previous commit's): the catalogue
(tasks, endpoints) and every message schema, bundled (bundle.py) and walked
keyword by keyword (structural.py). Each change gets a direction and the
parties it breaks (model.py), and is then checked on concrete messages
(witness.py): a breaking change carries a counterexample, a message one
contract accepts and the other refuses. Imports only the engine core
(facecert.core.contract, facecert.core.versions).
"""

from __future__ import annotations

from facecert.contract_diff.bundle import bundled
from facecert.contract_diff.catalogue import catalogue_changes, messages
from facecert.contract_diff.model import Change, ContractDiff, Side
from facecert.contract_diff.structural import diff_schemas
from facecert.contract_diff.witness import check_changes, generator_name

__all__ = ["Change", "ContractDiff", "Side", "diff_contracts"]


def diff_contracts(old: Side, new: Side, check: bool = True) -> ContractDiff:
    """Every change from ``old`` to ``new``; with ``check``, each one tried on messages."""
    changes = catalogue_changes(old, new)
    before, after = messages(old), messages(new)
    common = sorted(before.keys() & after.keys())
    for name in common:
        sender = after[name].sender
        changes.extend(diff_schemas(name, sender, bundled(old, name), bundled(new, name)))
    if check:
        check_changes(changes, old, new)
    changes.sort(key=lambda c: (c.message, c.pointer, c.kind))
    return ContractDiff(old, new, changes, len(common), f"{generator_name()} + repaired examples" if check else "none")
