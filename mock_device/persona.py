"""How a device dresses its messages: ``spec`` sends only the document's fields,
``field`` adds the vendor extras devices in the field send (NOTES.md, last
section), as listed once in schemas/catalogue.yaml (``vendor_extras``).

The reference device (``DeviceConfig.persona``), its ``vendor-fields`` fault
knob and the harness device of ``certify server --persona`` all dress through
:func:`dress`, so the list of extras lives in the catalogue alone. request_id
needs no dressing: every device here echoes it with the type the server used.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from facecert.core.contract import get_contract

PERSONAS = ("spec", "field")
DEFAULT_DEVICE_IP = "127.0.0.1"


def check_persona(persona: str) -> str:
    """The persona, or ValueError naming the known ones (for the CLI and the config)."""
    if persona not in PERSONAS:
        raise ValueError(f"unknown persona {persona!r}; one of {', '.join(PERSONAS)}")
    return persona


def dress(endpoint: str, body: dict[str, Any], persona: str, device_ip: str = DEFAULT_DEVICE_IP) -> dict[str, Any]:
    """``body`` as a device of ``persona`` sends it to ``endpoint`` (a new dict; fields it already has stay)."""
    if check_persona(persona) == "spec":
        return dict(body)
    return with_vendor_extras(endpoint, body, device_ip)


def with_vendor_extras(endpoint: str, body: dict[str, Any], device_ip: str = DEFAULT_DEVICE_IP) -> dict[str, Any]:
    """``body`` plus the catalogue's vendor extras of ``endpoint``, each made as the catalogue says."""
    dressed = dict(body)
    for name, how in get_contract().vendor_extras.get(endpoint, {}).items():
        if name not in dressed:
            dressed[name] = _value(endpoint, name, how, dressed, device_ip)
    return dressed


def _value(endpoint: str, name: str, how: dict[str, Any], body: dict[str, Any], device_ip: str) -> Any:
    if "value" in how:
        return how["value"]
    fill = how.get("fill")
    if fill == "device_ip":
        return device_ip
    if fill == "endpoint":
        return endpoint
    if fill == "hex32":  # a signature of the message (vendors do not publish theirs): 32 hex digits
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()
    raise ValueError(f"catalogue vendor_extras {endpoint}.{name}: no value and unknown fill {fill!r}")
