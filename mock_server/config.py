"""The mock server's settings, shared by the Python API, the CLI and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facecert.core.defaults import CADENCE_TOLERANCE, DEFAULT_HOST, TIME_SCALE, max_body_bytes


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

    host: str = DEFAULT_HOST
    port: int = 0
    prefix: str = ""
    db: str | Path | None = None
    assets: str | Path | None = None
    profile: str = "strict"
    protocol_version: str | None = None
    time_scale: float = TIME_SCALE
    max_body: int = field(default_factory=max_body_bytes)  # the contract's limits.max_body_bytes
    admin_token: str | None = None
    tolerance: float = CADENCE_TOLERANCE  # cadence tolerance handed to the engine (errata #26)
    firmware: str | Path | None = None  # a user-provided firmware image served as firmware.bin
    # names the control API answers to besides 127.0.0.1/localhost/[::1] and the bound address
    # ("bench.lan" any port, "bench.lan:8080" that port): the Host check against DNS rebinding
    public_names: tuple[str, ...] = ()

    def normalised_prefix(self) -> str:
        """``/test`` form: leading slash, no trailing one, empty for none."""
        prefix = (self.prefix or "").strip().strip("/")
        return f"/{prefix}" if prefix else ""
