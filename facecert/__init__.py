"""facecert: conformance engine for the face-terminal HTTP task protocol.

Every tap (mock server, device simulator, proxy addon, offline captures)
turns traffic into :class:`Exchange` objects and feeds them to one
:class:`Engine`, which judges them against the schemas in ``schemas/`` and
the rules of one registry.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

try:
    __version__ = _dist_version("facecert")  # pyproject.toml is the one place it is written
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from facecert.core.contract import Contract, get_contract
from facecert.core.engine import Engine, EngineConfig
from facecert.core.model import Exchange, Finding, Severity

__all__ = ["__version__", "Contract", "Engine", "EngineConfig", "Exchange", "Finding", "Severity", "get_contract"]
