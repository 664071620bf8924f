"""Registry participants and message labels as Cedar entities and requests."""

from __future__ import annotations

import json
from typing import Any

import cedarpy

from broker.errors import PolicyLoadError
from broker.policy._model import Message
from broker.trust.registry import Participant, Registry

ORG = "Org"
MESSAGE = "Message"


def _ref(kind: str, eid: str) -> dict[str, Any]:
    return {"__entity": {"type": kind, "id": eid}}


def org_entity(p: Participant) -> dict[str, Any]:
    return {
        "uid": {"type": ORG, "id": p.id},
        "attrs": {
            "community": p.community,
            "role": p.role,
            "status": p.status,
            "categories": sorted(p.categories),
            "exercises": sorted(p.exercises),
        },
        "parents": [],
    }


def registry_entities(
    registry: Registry, schema: cedarpy.Schema, schema_file: str
) -> cedarpy.Entities:
    """Every organisation as an `Org`, checked against the schema once.

    A message with every label set is checked too: the engine sends these
    attributes, and a schema without one of them would make rules that test it
    with `has` silently false.
    """
    orgs = [org_entity(p) for p in registry]
    try:
        entities = cedarpy.Entities.from_json_str(json.dumps(orgs), schema)
    except ValueError as exc:
        raise PolicyLoadError(
            f"the registry's organisations do not match the schema: {exc}", file=schema_file
        ) from None
    some = next(iter(registry)).id
    sample = Message(
        sender=some,
        payload_type="Indicator",
        tlp="CLEAR",
        handling=frozenset({"H0"}),
        incident="i",
        exercise="e",
        categories=frozenset({"other"}),
        recipients=frozenset({some}),
        member_states=frozenset({"FR"}),
    )
    full = message_entity("m", sample, "civilian", True)
    try:
        entities.with_added_json_str(json.dumps([full]), schema)
    except ValueError as exc:
        culprit = _first_bad_attribute(entities, schema, full)
        raise PolicyLoadError(
            f"the message labels do not match the schema ({culprit or exc})", file=schema_file
        ) from None
    return entities


def _first_bad_attribute(
    entities: cedarpy.Entities, schema: cedarpy.Schema, full: dict[str, Any]
) -> str | None:
    attrs: dict[str, Any] = full["attrs"]
    for name in attrs:
        probe = {**full, "attrs": {k: v for k, v in attrs.items() if k != name}}
        try:
            entities.with_added_json_str(json.dumps([probe]), schema)
        except ValueError:
            continue
        return f"Message attribute {name!r} is not declared as the engine sends it"
    return None


def message_entity(
    uid: str, msg: Message, origin_community: str, personal_data: bool
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "sender": _ref(ORG, msg.sender),
        "origin_community": origin_community,
        "payload_type": msg.payload_type,
        "tlp": msg.tlp,
        "categories": sorted(msg.categories),
        "personal_data": personal_data,
        "recipients": [_ref(ORG, r) for r in sorted(msg.recipients)],
        "member_states_affected": len(msg.member_states),
        "handling": sorted(msg.handling),
    }
    for name in ("incident", "exercise"):
        value = getattr(msg, name)
        if value is not None:
            attrs[name] = value
    return {"uid": {"type": MESSAGE, "id": uid}, "attrs": attrs, "parents": []}


def request(org: str, action: str, message_uid: str, crisis_declared: bool) -> dict[str, Any]:
    return {
        "principal": {"type": ORG, "id": org},
        "action": {"type": "Action", "id": action},
        "resource": {"type": MESSAGE, "id": message_uid},
        "context": {"crisis_declared": crisis_declared},
    }
