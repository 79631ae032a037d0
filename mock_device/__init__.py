"""The reference device of the face-terminal task protocol (see docs/mock-device.md)."""

from facecert.mock_device.config import DeviceConfig, mac_for
from facecert.mock_device.device import Device
from facecert.mock_device.faults import FAULTS, FAULTS_BY_NAME, Fault
from facecert.mock_device.fleet import Fleet

__all__ = ["Device", "DeviceConfig", "Fleet", "FAULTS", "FAULTS_BY_NAME", "Fault", "mac_for"]
