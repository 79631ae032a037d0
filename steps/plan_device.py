"""The device certification plan: every feature of features/device."""

from pytest_bdd import scenarios

scenarios("device")
