"""facecert: conformance engine for the face-terminal HTTP task protocol.

Every tap (mock server, device simulator, proxy addon, offline captures)
turns traffic into :class:`Exchange` objects and feeds them to one
:class:`Engine`, which judges them against the schemas in ``schemas/`` and
the rules of one registry.
"""

from facecert.model import Exchange, Finding, Severity
from facecert.engine import Engine, EngineConfig
from facecert.contract import Contract, get_contract

__all__ = ["Contract", "Engine", "EngineConfig", "Exchange", "Finding", "Severity", "get_contract"]
