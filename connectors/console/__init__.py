"""The operator console: a read-only web view of who got what, why, and the situation report.

An adapter over the broker's data (the audit log, the crisis board, the policy,
the registry snapshot, Kafka's own figures), served by a Starlette app:

    data = ConsoleData(ctx, keys=..., valid=..., stats=collect)
    app = create_app(data, ConsoleUsers(home / USERS_FILE), login=True)

Roles and what each may see: `connectors.console.access`.
"""

from __future__ import annotations

from connectors.console.access import ROLES, Forbidden, Role, Viewer
from connectors.console.app import create_app
from connectors.console.data import ConsoleData
from connectors.console.users import USERS_FILE, ConsoleUsers

__all__ = [
    "ROLES",
    "USERS_FILE",
    "ConsoleData",
    "ConsoleUsers",
    "Forbidden",
    "Role",
    "Viewer",
    "create_app",
]
