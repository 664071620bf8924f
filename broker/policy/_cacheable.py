"""Which rule shapes the decision cache can serve.

The engine caches a decision on normalised inputs: for the recipient, its
community, role, status, whether its mandate covers one of the message's
categories, whether it is enrolled in the message's exercise, whether it is
named and whether it is the sender. A rule that looked at anything else about
the recipient (a specific category, its id) would make two recipients with
the same normalised inputs decide differently, and the cache would be wrong.
This module walks each rule's syntax tree (Cedar's JSON form) at load time and
names the first such use, so the bundle fails to load instead.
"""

from __future__ import annotations

from typing import Any

_PRINCIPAL: dict[str, Any] = {"Var": "principal"}
_RESOURCE: dict[str, Any] = {"Var": "resource"}
#: Recipient attributes a rule may read directly (they are part of the cache key).
PLAIN_PRINCIPAL_ATTRS = frozenset({"community", "role", "status"})
#: Message attributes a rule may read only in the shapes below.
_GUARDED_RESOURCE_ATTRS = frozenset({"sender", "recipients", "incident"})


def _attr(var: dict[str, Any], name: str) -> dict[str, Any]:
    return {".": {"left": var, "attr": name}}


def _allowed_shapes() -> list[dict[str, Any]]:
    categories = _attr(_PRINCIPAL, "categories"), _attr(_RESOURCE, "categories")
    exercises = _attr(_PRINCIPAL, "exercises"), _attr(_RESOURCE, "exercise")
    sender = _attr(_RESOURCE, "sender")
    recipients = _attr(_RESOURCE, "recipients")
    shapes: list[dict[str, Any]] = [
        {"containsAny": {"left": categories[0], "right": categories[1]}},
        {"contains": {"left": exercises[0], "right": exercises[1]}},
        {"contains": {"left": recipients, "right": _PRINCIPAL}},
        {"isEmpty": {"arg": recipients}},
    ]
    for op in ("==", "!="):
        shapes.append({op: {"left": _PRINCIPAL, "right": sender}})
        shapes.append({op: {"left": sender, "right": _PRINCIPAL}})
    shapes.extend(_attr(_PRINCIPAL, a) for a in PLAIN_PRINCIPAL_ATTRS)
    return shapes


_SHAPES = _allowed_shapes()

USAGE = (
    "rules may read the recipient only as principal.community/.role/.status, "
    "principal.categories.containsAny(resource.categories), "
    "principal.exercises.contains(resource.exercise), principal == resource.sender and "
    "resource.recipients.contains(principal) (resource.recipients also with .isEmpty(); "
    "resource.incident only with `has`)"
)


def first_uncacheable_use(policy_est: dict[str, Any]) -> str | None:
    """Describe the first use in one policy (Cedar JSON/EST) the cache cannot normalise."""
    if policy_est.get("principal", {}).get("op") not in ("All", "is"):
        return "the rule's scope names a specific principal"
    for condition in policy_est.get("conditions", []):
        found = _walk(condition.get("body"))
        if found:
            return found
    return None


def _walk(node: Any) -> str | None:
    if isinstance(node, list):
        for item in node:
            found = _walk(item)
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    if node in _SHAPES:
        return None
    if node == _PRINCIPAL:
        return "the rule uses the principal itself"
    access = node.get(".")
    if isinstance(access, dict):
        if access.get("left") == _PRINCIPAL:
            return f"the rule reads principal.{access.get('attr')}"
        if access.get("left") == _RESOURCE and access.get("attr") in _GUARDED_RESOURCE_ATTRS:
            return f"the rule reads resource.{access.get('attr')}"
    for value in node.values():
        found = _walk(value)
        if found:
            return found
    return None
