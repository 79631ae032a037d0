"""The mock server's settings, shared by the Python API, the CLI and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facecert.core.contract import get_contract


def contract_max_body() -> int:
    """The body bound of the contract (catalogue.yaml ``limits.max_body_bytes``, 20 MiB)."""
    return get_contract().limits.max_body_bytes


DEFAULT_MAX_BODY = contract_max_body()  # the same value, for callers that import a constant


@dataclass
class ServerConfig:
    """How to run one mock platform server.

    ``port=0`` asks the OS for a free port (tests); ``db=None`` keeps the
    session in memory; ``assets=None`` generates the default face JPEG,
    screen-saver PNG and firmware image in a temporary folder.
    ``admin_token`` protects ``/_admin`` (required when binding beyond
    127.0.0.1; the CLI generates one then). ``public_names`` are the other
    names the control API answers to (reverse proxy, bench DNS name).
    """

    host: str = "127.0.0.1"
    port: int = 0
    prefix: str = ""
    db: str | Path | None = None
    assets: str | Path | None = None
    profile: str = "strict"
    protocol_version: str | None = None
    time_scale: float = 1.0
    max_body: int = field(default_factory=contract_max_body)
    admin_token: str | None = None
    tolerance: float = 0.25  # cadence tolerance handed to the engine (errata #26)
    firmware: str | Path | None = None  # a user-provided firmware image served as firmware.bin
    # names the control API answers to besides 127.0.0.1/localhost/[::1] and the bound address
    # ("bench.lan" any port, "bench.lan:8080" that port): the Host check against DNS rebinding
    public_names: tuple[str, ...] = ()

    def normalised_prefix(self) -> str:
        """``/test`` form: leading slash, no trailing one, empty for none."""
        prefix = (self.prefix or "").strip().strip("/")
        return f"/{prefix}" if prefix else ""
