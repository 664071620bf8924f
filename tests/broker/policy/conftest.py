"""Fixtures for the policy tests: the sample registry and bundle, and a message builder."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from broker.policy import Message, PolicyEngine
from broker.trust.registry import Registry, load_registry

POLICIES = Path(__file__).resolve().parents[3] / "policies"

#: Which payload types mark personal-data fields, as the schema store would say.
PD_FIELDS: dict[str, tuple[str, ...]] = {
    "IncidentReport": ("reporter", "affected_persons"),
    "AssistanceRequest": ("contact",),
}


def pd_fields(payload_type: str) -> Sequence[str]:
    return PD_FIELDS.get(payload_type, ())


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry(POLICIES / "participants.yaml")


@pytest.fixture(scope="session")
def engine(registry: Registry) -> PolicyEngine:
    return PolicyEngine.load(POLICIES, registry, personal_data_fields=pd_fields)


@pytest.fixture
def policies_copy(tmp_path: Path) -> Path:
    """A writable copy of the sample bundle, for tests that break or change it."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def make_message(**labels: Any) -> Message:
    """A message from cert-eu (civilian): an Indicator unless told otherwise."""
    labels.setdefault("sender", "cert-eu")
    labels.setdefault("payload_type", "Indicator")
    for name in ("categories", "recipients", "member_states"):
        if name in labels:
            labels[name] = frozenset(labels[name])
    if isinstance(labels.get("handling"), str):
        labels["handling"] = frozenset({labels["handling"]})
    elif labels.get("handling") is None:
        labels.pop("handling", None)
    return Message(**labels)


MessageFactory = Callable[..., Message]


@pytest.fixture
def msg() -> MessageFactory:
    return make_message
