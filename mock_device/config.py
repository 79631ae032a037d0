"""What one simulated device is: its identity, its pace and its faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from facecert.core.defaults import DEFAULT_DEVICE_ID, TIME_SCALE, check_time_scale
from facecert.mock_device.faults import check_faults
from facecert.mock_device.persona import DEFAULT_DEVICE_IP, check_persona
from facecert.mock_device.spool import SPOOL_MAX


@dataclass
class DeviceConfig:
    """Identity and behaviour of one simulated terminal.

    ``server`` is the base URL the document calls server_url (it may carry a
    path prefix). ``time_scale`` multiplies every protocol interval (0.05
    makes the 20 s idle wait one second). ``spool_dir`` holds captures that
    could not be delivered while resume transfer is on; None keeps them in
    memory. ``persona`` is "spec" (only the document's fields) or "field"
    (also the vendor extras devices in the field send: mock_device.persona).
    """

    server: str
    device_id: str = DEFAULT_DEVICE_ID
    device_mac: str = "02-00-00-00-00-01"
    device_name: str = "facecert-sim"
    device_ip: str = DEFAULT_DEVICE_IP
    software_version: str = "1.0.0_SIM_V1.0(facecert)"
    lib_platform_version: str = "platform_sim v1.0"
    lib_ai_version: str = "ai_sim v1.0"
    web_version: str = "web_sim v1.0"
    time_scale: float = TIME_SCALE
    faults: set[str] = field(default_factory=set)
    protocol_version: str | None = None
    captures_per_minute: float = 0.0
    spool_dir: Path | None = None
    spool_max: int = SPOOL_MAX  # captures the spool keeps at most; past it the oldest is dropped (and counted)
    resume_transfer: bool = True
    request_timeout_s: float = 10.0
    record: bool = True  # keep every exchange (device's view) for judging; fleets turn it off
    log_lines: int = 500  # the log getLogFile returns is the last this many lines
    latency_samples: int = 500  # latencies kept for the summary's percentiles (a Locust fleet keeps none: Locust does)
    seed: int = 0
    persona: str = "spec"

    def __post_init__(self) -> None:
        self.faults = check_faults(set(self.faults))
        self.persona = check_persona(self.persona)
        self.server = server_url(self.server)
        check_time_scale(self.time_scale)
        if self.spool_dir is not None:
            self.spool_dir = Path(self.spool_dir)


def server_url(address: str) -> str:
    """The base URL for an address as the document writes it (``abc.com:90/test``: no scheme means
    http://), or ValueError saying what is wrong with it."""
    address = address.strip()
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"server {address!r}: only http:// and https:// are spoken")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError(f"server {address!r}: the port is not a number from 0 to 65535") from None
    if not parts.hostname or any(c.isspace() for c in address) or parts.query or parts.fragment:
        raise ValueError(f"server {address!r} is not host[:port][/prefix]")
    return address.rstrip("/")


def mac_for(number: int) -> str:
    """A locally administered MAC address, distinct per fleet member."""
    octets = [0x02, 0x00] + list(number.to_bytes(4, "big"))
    return "-".join(f"{o:02X}" for o in octets)
