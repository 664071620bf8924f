"""Who sees what: the two roles, and the one rule each applies to every audit record.

- `operator`: the platform-wide read-only view: every enforcement point's log.
- `auditor` of an organisation: its own decisions, receipts and deliveries only:
  every decision its own enforcement points took (`ORG/publish`, `ORG/receive`,
  `ORG/control`, ...), and the decisions of other enforcement points that
  allowed ORG a message (ORG was entitled to it, so it may know it exists).
  Never a decision about a third party, nor a denial of ORG by another sender
  (that would tell ORG of a message it may not see).

Every page and JSON endpoint asks the viewer; the check is on the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from broker.audit import LoggedRecord

Role = Literal["operator", "auditor"]
ROLES: tuple[Role, ...] = ("operator", "auditor")
#: How a viewer proved who it is: an account of this node, or its own node's key.
Via = Literal["password", "key"]
VIAS: tuple[Via, ...] = ("password", "key")


class Forbidden(Exception):
    """The viewer may not see this: the console answers 403, saying what it may see."""


@dataclass(frozen=True, slots=True)
class Viewer:
    user: str
    role: Role
    #: the auditor's organisation; None for an operator
    org: str | None = None
    #: "key": an auditor signed in with its own node's key (`broker.trust.sign_in`)
    via: Via = "password"
    #: the key it signed in with (a key sign-in ends when that key stops being current)
    key_id: str | None = None

    @property
    def operator(self) -> bool:
        return self.role == "operator"

    def describe(self) -> str:
        return "operator (platform-wide)" if self.operator else f"auditor of {self.org}"

    def may_see_org(self, org: str) -> bool:
        return self.operator or org == self.org

    def require_org(self, org: str) -> None:
        if not self.may_see_org(org):
            raise Forbidden(f"{self.describe()} may not see {org}'s data")

    def sees(self, rec: LoggedRecord) -> bool:
        """Whether this audit record is within the viewer's view."""
        if self.operator:
            return True
        org = self.org
        if rec.enforcement_point.partition("/")[0] == org:
            return True
        r = rec.record
        return r.organisation == org and r.decision in ("allow", "redact")

    def sees_ep(self, enforcement_point: str) -> bool:
        return self.operator or enforcement_point.partition("/")[0] == self.org

    def sees_group(self, group: str) -> bool:
        """Consumer groups are named after their participant (`jcu.subscriber.ORG`)."""
        if self.operator:
            return True
        return group.rsplit(".", 1)[-1] == self.org or group.startswith(f"{self.org}.")
