"""Certification runs: the Gherkin plans of features/ driven against a real
peer (or our reference peer with ``--demo``), reported as Allure, JUnit, a
JSON summary and a HAR. ``register`` adds ``facecert certify`` to the CLI."""

from facecert.certify.cli import register

__all__ = ["register"]
