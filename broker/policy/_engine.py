"""The policy decision point: Cedar decisions, cached on what they depend on.

A decision for one organisation depends only on a handful of normalised
inputs (its community, role and status, whether its mandate covers one of the
message's categories, whether it is enrolled in the message's exercise,
whether it is named or is the sender) and on the message's labels. The engine
keys its cache on those, not on the organisation, so a steady stream of
messages is decided by dictionary look-ups; `_cacheable` makes sure at load
time that the rules cannot look at anything else. Cache misses are decided by
Cedar in one batch per message. Loading or reloading a different bundle or
registry starts with empty caches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy

from broker.errors import PolicyError, RegistryError
from broker.policy import _explain
from broker.policy._bundle import OBLIGE_ACTION, SHARE_ACTIONS, Bundle, Rule, load_bundle
from broker.policy._entities import message_entity, registry_entities, request
from broker.policy._model import HANDLING_CODES, TLPS, Action, Decision, Message, Verdict
from broker.trust.registry import Participant, Registry
from broker.vocabulary import CATEGORIES

PersonalDataFields = Callable[[str], Sequence[str]]

#: Each cache holds at most this many entries; when full it starts again empty.
CACHE_LIMIT = 200_000
_FULL = "m"
_REDACTED = "m-redacted"
_CATEGORIES = frozenset(CATEGORIES)

# (action, community, role, status, covers, enrolled, named, is_sender, tlp, handling,
#  personal_data, has_named, payload_type, exercise, has_incident, member_states, crisis,
#  origin_community, categories)
_Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A decision without the organisation: what the cache shares between organisations."""

    decision: Verdict
    rules: tuple[str, ...]
    legal_basis: tuple[str, ...]
    obligations: tuple[str, ...]
    redact_fields: tuple[str, ...]
    reasons: tuple[str, ...]
    add_mandate_basis: bool


@dataclass(slots=True)
class _State:
    """Everything one (bundle, registry) pair needs; replaced whole on reload."""

    bundle: Bundle
    registry: Registry
    entities: cedarpy.Entities
    bundle_hash: str
    permits: tuple[Rule, ...]
    outcomes: dict[_Key, _Outcome] = field(default_factory=dict)
    decisions: dict[tuple[str, _Key], Decision] = field(default_factory=dict)
    pd_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _registry_digest(registry: Registry) -> str:
    if registry.digest:
        return registry.digest
    canonical = [
        [
            p.id,
            p.community,
            p.role,
            p.status,
            sorted(p.exercises),
            [[sorted(m.categories), m.legal_basis] for m in p.mandates],
        ]
        for p in sorted(registry, key=lambda p: p.id)
    ]
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


class PolicyEngine:
    """Decides who may receive a message, and explains why, from the Cedar bundle."""

    def __init__(
        self, policies_dir: Path, state: _State, personal_data_fields: PersonalDataFields
    ) -> None:
        self._dir = policies_dir
        self._state = state
        self._personal_data_fields = personal_data_fields

    @classmethod
    def load(
        cls,
        policies_dir: Path,
        registry: Registry,
        *,
        personal_data_fields: PersonalDataFields,
    ) -> PolicyEngine:
        """Parse and validate the bundle in `policies_dir`; raises `PolicyLoadError`."""
        return cls(policies_dir, cls._build(policies_dir, registry), personal_data_fields)

    @staticmethod
    def _build(policies_dir: Path, registry: Registry) -> _State:
        return PolicyEngine._state_for(load_bundle(policies_dir, _explain.PREDICATES), registry)

    @staticmethod
    def _state_for(bundle: Bundle, registry: Registry) -> _State:
        schema_file = ", ".join(f for f in bundle.files if f.endswith(".cedarschema"))
        entities = registry_entities(registry, bundle.schema, schema_file)
        digest = hashlib.sha256(
            f"{bundle.digest}\0{_registry_digest(registry)}".encode()
        ).hexdigest()
        return _State(
            bundle=bundle,
            registry=registry,
            entities=entities,
            bundle_hash=digest,
            permits=bundle.share_permits(),
        )

    @property
    def bundle_hash(self) -> str:
        """sha256 over the schema, every rule file and the registry digest."""
        return self._state.bundle_hash

    @property
    def registry(self) -> Registry:
        return self._state.registry

    @property
    def rules(self) -> dict[str, Rule]:
        return dict(self._state.bundle.rules)

    @property
    def files(self) -> tuple[str, ...]:
        return self._state.bundle.files

    def reload(self, registry: Registry | None = None) -> bool:
        """Re-read the bundle (and take `registry` if given); True if anything changed.

        A changed bundle or registry replaces the caches; a broken bundle raises
        `PolicyLoadError` and leaves the engine as it was.
        """
        state = self._build(self._dir, registry if registry is not None else self._state.registry)
        if state.bundle_hash == self._state.bundle_hash:
            return False
        self._state = state
        return True

    def with_registry(self, registry: Registry) -> PolicyEngine:
        """A separate engine on the same (already validated) bundle and another registry."""
        bundle = self._state.bundle
        return PolicyEngine(
            self._dir, self._state_for(bundle, registry), self._personal_data_fields
        )

    def cache_size(self) -> int:
        return len(self._state.outcomes)

    # -- deciding -------------------------------------------------------------

    def decide(
        self,
        msg: Message,
        org: str,
        *,
        crisis_incidents: frozenset[str] = frozenset(),
        action: Action = "publish",
        cached: bool = True,
    ) -> Decision:
        """May `org` receive `msg`? `crisis_incidents`: incidents under a declared crisis."""
        return self._decide(self._state, msg, [org], crisis_incidents, action, cached)[0]

    def decide_all(
        self,
        msg: Message,
        *,
        crisis_incidents: frozenset[str] = frozenset(),
        action: Action = "publish",
        cached: bool = True,
    ) -> list[Decision]:
        """A decision for every registered organisation but the sender, in registry order."""
        state = self._state
        orgs = [pid for pid in state.registry.participants if pid != msg.sender]
        return self._decide(state, msg, orgs, crisis_incidents, action, cached)

    def _decide(
        self,
        state: _State,
        msg: Message,
        orgs: list[str],
        crisis_incidents: frozenset[str],
        action: Action,
        cached: bool,
    ) -> list[Decision]:
        participants = state.registry.participants
        sender = participants.get(msg.sender)
        if sender is None:
            raise RegistryError(f"unknown sender {msg.sender!r}")
        crisis = msg.incident is not None and msg.incident in crisis_incidents
        labels = (
            msg.tlp,
            msg.handling,
            msg.personal_data,
            bool(msg.recipients),
            msg.payload_type,
            msg.exercise,
            msg.incident is not None,
            len(msg.member_states),
            crisis,
            sender.community,
            msg.categories,
        )
        keyed: list[tuple[Participant, _Key]] = []
        for org in orgs:
            p = participants.get(org)
            if p is None:
                raise RegistryError(f"unknown participant {org!r}")
            key = (
                action,
                p.community,
                p.role,
                p.status,
                not p.categories.isdisjoint(msg.categories),
                msg.exercise in p.exercises,
                org in msg.recipients,
                org == msg.sender,
                *labels,
            )
            keyed.append((p, key))

        if not cached:
            outcomes = self._evaluate(state, msg, sender, keyed, crisis, action)
            return [self._assemble(p, outcomes[k], msg) for p, k in keyed]

        decisions = state.decisions
        result: list[Decision | None] = [decisions.get((p.id, k)) for p, k in keyed]
        if all(d is not None for d in result):
            return result  # type: ignore[return-value]
        missing = [(p, k) for (p, k), d in zip(keyed, result, strict=True) if d is None]
        need = [(p, k) for p, k in missing if k not in state.outcomes]
        if need:
            fresh = self._evaluate(state, msg, sender, need, crisis, action)
            if len(state.outcomes) + len(fresh) > CACHE_LIMIT:
                state.outcomes.clear()
            state.outcomes.update(fresh)
        if len(decisions) + len(missing) > CACHE_LIMIT:
            decisions.clear()
        out: list[Decision] = []
        for (p, k), d in zip(keyed, result, strict=True):
            if d is None:
                d = self._assemble(p, state.outcomes[k], msg)
                decisions[(p.id, k)] = d
            out.append(d)
        return out

    @staticmethod
    def _assemble(p: Participant, outcome: _Outcome, msg: Message) -> Decision:
        basis = outcome.legal_basis
        if outcome.add_mandate_basis:
            basis = tuple(dict.fromkeys((*basis, *p.legal_basis_for(msg.categories))))
        return Decision(
            org=p.id,
            decision=outcome.decision,
            rules=outcome.rules,
            legal_basis=basis,
            obligations=outcome.obligations,
            redact_fields=outcome.redact_fields,
            reasons=outcome.reasons,
        )

    # -- Cedar ----------------------------------------------------------------

    def _pd_fields(self, state: _State, payload_type: str) -> tuple[str, ...]:
        fields = state.pd_fields.get(payload_type)
        if fields is None:
            fields = tuple(self._personal_data_fields(payload_type))
            state.pd_fields[payload_type] = fields
        return fields

    def _evaluate(
        self,
        state: _State,
        msg: Message,
        sender: Participant,
        keyed: Iterable[tuple[Participant, _Key]],
        crisis: bool,
        action: Action,
    ) -> dict[_Key, _Outcome]:
        """Decide every distinct key with Cedar, in one batch."""
        _check_labels(msg, action)
        pd_fields = self._pd_fields(state, msg.payload_type) if msg.personal_data else ()
        redactable = bool(pd_fields)
        delta = [message_entity(_FULL, msg, sender.community, msg.personal_data)]
        if redactable:
            delta.append(message_entity(_REDACTED, msg, sender.community, False))
        entities = state.entities.with_added_json_str(json.dumps(delta))

        firsts: dict[_Key, Participant] = {}
        for p, k in keyed:
            firsts.setdefault(k, p)
        uids = (_FULL, _REDACTED) if redactable else (_FULL,)
        requests = [
            request(p.id, act, uid, crisis)
            for p in firsts.values()
            for uid in uids
            for act in (action, OBLIGE_ACTION)
        ]
        answers = cedarpy.is_authorized_batch(
            requests, state.bundle.policies, entities, state.bundle.schema
        )
        step = 2 * len(uids)
        outcomes: dict[_Key, _Outcome] = {}
        for i, (key, p) in enumerate(firsts.items()):
            chunk = answers[i * step : (i + 1) * step]
            facts = _facts(p, msg, sender, crisis)
            outcomes[key] = self._outcome(state, chunk, facts, pd_fields)
        return outcomes

    @staticmethod
    def _outcome(
        state: _State,
        answers: Sequence[cedarpy.AuthzResult],
        facts: _explain.Facts,
        pd_fields: tuple[str, ...],
    ) -> _Outcome:
        rules = state.bundle.rules
        for answer in answers:
            if answer.diagnostics.errors:
                raise PolicyError(
                    f"Cedar could not evaluate a rule: {answer.diagnostics.errors[0]}"
                )

        def deciding(answer: cedarpy.AuthzResult) -> list[Rule]:
            ids = answer.diagnostics.id_annotations_by_reason
            return sorted(
                (rules[ids[p]] for p in answer.diagnostics.reasons), key=lambda r: r.order
            )

        share, oblige = answers[0], answers[1]
        if share.allowed:
            return _allowed(deciding(share), deciding(oblige))
        forbids = deciding(share)
        if not forbids:
            ids, reasons = _explain.default_deny(state.permits, facts)
            return _Outcome("deny", ids, (_explain.DEFAULT_DENY_BASIS,), (), (), reasons, False)
        if len(answers) > 2 and answers[2].allowed and all(r.redactable for r in forbids):
            copy = _allowed(deciding(answers[2]), deciding(answers[3]))
            note = (
                f"a copy without the personal-data fields [{', '.join(pd_fields)}] "
                "and with the personal-data flag cleared is allowed"
            )
            return _Outcome(
                decision="redact",
                rules=(*(r.id for r in forbids), *copy.rules),
                legal_basis=_unique(*(r.legal_basis for r in forbids), *copy.legal_basis),
                obligations=copy.obligations,
                redact_fields=pd_fields,
                reasons=(*(_explain.forbid_reason(r, facts) for r in forbids), note, *copy.reasons),
                add_mandate_basis=copy.add_mandate_basis,
            )
        reasons = tuple(_explain.forbid_reason(r, facts) for r in forbids)
        if len(answers) > 2 and all(r.redactable for r in forbids):
            reasons += ("a copy without the personal-data fields would not be allowed either",)
        return _Outcome(
            decision="deny",
            rules=tuple(r.id for r in forbids),
            legal_basis=_unique(*(r.legal_basis for r in forbids)),
            obligations=(),
            redact_fields=(),
            reasons=reasons,
            add_mandate_basis=False,
        )


def _unique(*items: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _allowed(permits: list[Rule], obligations: list[Rule]) -> _Outcome:
    return _Outcome(
        decision="allow",
        rules=tuple(r.id for r in (*permits, *obligations)),
        legal_basis=_unique(*(r.legal_basis for r in (*permits, *obligations))),
        obligations=tuple(r.obligation for r in obligations if r.obligation),
        redact_fields=(),
        reasons=(
            *(_explain.permit_reason(r) for r in permits),
            *(f"{r.id}: obligation: {r.obligation}" for r in obligations),
        ),
        add_mandate_basis=any("mandate-covers" in r.requires for r in permits),
    )


def _facts(p: Participant, msg: Message, sender: Participant, crisis: bool) -> _explain.Facts:
    return _explain.Facts(
        status=p.status,
        community=p.community,
        role=p.role,
        origin_community=sender.community,
        tlp=msg.tlp,
        handling=msg.handling,
        payload_type=msg.payload_type,
        exercise=msg.exercise,
        categories=msg.categories,
        covers=not p.categories.isdisjoint(msg.categories),
        named=p.id in msg.recipients,
        has_named=bool(msg.recipients),
        has_incident=msg.incident is not None,
        crisis_declared=crisis,
        member_states=len(msg.member_states),
    )


def _check_labels(msg: Message, action: str) -> None:
    if msg.tlp not in TLPS:
        raise PolicyError(f"unknown TLP {msg.tlp!r}; expected one of {', '.join(TLPS)}")
    bad_codes = sorted(msg.handling - set(HANDLING_CODES))
    if bad_codes:
        raise PolicyError(
            f"unknown handling codes {bad_codes}; expected some of {', '.join(HANDLING_CODES)}"
        )
    unknown = sorted(msg.categories - _CATEGORIES)
    if unknown:
        raise PolicyError(f"unknown categories {unknown}; expected some of {', '.join(CATEGORIES)}")
    if action not in SHARE_ACTIONS:
        raise PolicyError(f"unknown action {action!r}; expected one of {', '.join(SHARE_ACTIONS)}")
