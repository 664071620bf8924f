"""Fixtures shared by the connector tests: the console on enisa's node (console and
sitrep tests read the same small crisis)."""

from tests.connectors.console.fixture import console

__all__ = ["console"]
