"""What every verb that acts as a participant shares: `--as`, and the node's context.

A verb acts as the organisation whose node JCU_HOME is. `--as` may name it
(scripts read better) but never another one: that is refused with one line
before any key is opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from broker import config
from broker.config import Settings
from broker.trust.keystore import Keystore
from broker.trust.node import NodeHome

if TYPE_CHECKING:
    from broker.pep.context import PepContext
    from broker.schemas import SchemaStore

F = TypeVar("F", bound=Callable[..., Any])


def as_option(role: str = "Participant", name: str = "participant") -> Callable[[F], F]:
    """`--as ORG` (the parameter `name`): optional; must be this node's own participant."""
    return click.option(
        "--as",
        name,
        default=None,
        metavar="ORG",
        help=f"{role}: this node's own organisation (the default); any other is refused.",
    )


def acting_as(requested: str | None, settings: Settings | None = None) -> str:
    """The participant this node is, checked against `--as`."""
    settings = settings or config.load()
    return NodeHome.open(settings.home).acting_as(requested)


async def catch_up_if_empty(settings: Settings, store: SchemaStore | None = None) -> None:
    """A node that has accepted no registry snapshot yet reads jcu.registry first."""
    from broker.schemas import SchemaStore
    from broker.trust.state import TrustedRegistry, registry_dir
    from broker.trust.topic import catch_up

    store = store or SchemaStore.load(settings.schemas)
    trusted = TrustedRegistry.load(registry_dir(settings), store)
    if trusted.current is None:
        await catch_up(settings.kafka, trusted)


def _early_keystore(node: NodeHome) -> Keystore | None:
    """The keystore `jcu` began unlocking as it started (broker.cli._early), if it is this
    node's."""
    context = click.get_current_context(silent=True)
    early = context.find_object(Keystore) if context is not None else None
    return early if early is not None and early.directory == node.keystore_dir else None


def node_context(requested: str | None, *, sync: bool = True) -> tuple[PepContext, str]:
    """This node's enforcement context and its participant (refusing another `--as`).

    With `sync`, a node that holds no registry snapshot yet fetches one from Kafka. The
    keystore starts unlocking (scrypt, in a thread) before the enforcement point's code is
    even imported, or earlier still, as `jcu` started (broker.cli._early): a verb acting as
    its participant opens a key soon after.
    """
    settings = config.load()
    node = NodeHome.open(settings.home)
    me = node.acting_as(requested)
    keystore = _early_keystore(node) or node.keystore()
    keystore.unlock_ahead()
    from broker.pep.context import PepContext
    from broker.schemas import SchemaStore

    store = SchemaStore.load(settings.schemas)
    if sync:
        asyncio.run(catch_up_if_empty(settings, store))
    return PepContext.load(settings, keystore=keystore, store=store), me
