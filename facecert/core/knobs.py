"""Names of the knobs that break our reference peers on purpose: device fault
knobs (mock_device/faults.py) and server misbehaviours (mock_server/misbehaviours.py).

Both tables spell names with hyphens (``capture-no-echo``); misbehaviours were
once spelled with underscores (``capture_no_echo``). Every place a person or a
test gives a name (the CLI, the control API, the Python API) passes it through
:func:`knob_name`, so the old spellings keep working and one style is shown.
"""

from __future__ import annotations


def knob_name(name: str) -> str:
    """The table's spelling of a knob or misbehaviour name (underscores read as hyphens)."""
    return name.strip().replace("_", "-")
