"""The policy layer: who may receive a message, by which rule, on which legal basis.

The rules are Cedar (`policies/*.cedar`, validated against
`policies/*.cedarschema` when loaded); the engine asks Cedar, caches decisions
on the normalised inputs they depend on, and explains each one in plain words.

    engine = PolicyEngine.load(settings.policies, registry,
                               personal_data_fields=store.personal_data_fields)
    for d in engine.decide_all(Message(sender="cert-eu", payload_type="Indicator",
                                       tlp="AMBER", categories=frozenset({"fraud"}))):
        print(d.org, d.decision, d.rules, d.reasons)
"""

from broker.policy._bundle import Rule
from broker.policy._engine import PersonalDataFields, PolicyEngine
from broker.policy._explain import DEFAULT_DENY
from broker.policy._model import HANDLING_CODES, TLPS, Action, Decision, Message, Verdict
from broker.policy._scenarios import ScenarioResult, load_scenarios, run_scenarios

__all__ = [
    "DEFAULT_DENY",
    "HANDLING_CODES",
    "TLPS",
    "Action",
    "Decision",
    "Message",
    "PersonalDataFields",
    "PolicyEngine",
    "Rule",
    "ScenarioResult",
    "Verdict",
    "load_scenarios",
    "run_scenarios",
]
