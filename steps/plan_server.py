"""The server certification plan: every feature of features/server."""

from pytest_bdd import scenarios

scenarios("server")
