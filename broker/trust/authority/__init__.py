"""The registry authority: a role of its own, with its own home and keys, that may stay offline.

It approves organisations' registration requests (`broker.trust.request`),
revokes their keys, rotates its own key and exports signed registry snapshots
(`broker.trust.snapshot`). No participant's home ever holds its key, and no
code here is needed to run a participant's node.
"""

from broker.trust.authority.office import Approval, Authority, Export, is_authority_home

__all__ = ["Approval", "Authority", "Export", "is_authority_home"]
