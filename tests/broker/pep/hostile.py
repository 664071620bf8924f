"""Envelopes a legitimate but hostile participant can make: signed with its real key,
built like `Sealer.seal` but with the recipients block or header bent before signing
(`tests.broker._forge` does the building)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.clock import to_millis, utc_now
from broker.envelope import Labels
from broker.envelope.context import EnvelopeContext
from tests.broker._forge import forge


def craft(
    env: EnvelopeContext,
    sender: str,
    payload_type: str,
    record: dict[str, Any],
    *,
    recipients: list[str],
    topic: str,
    labels: Labels,
    bend_blocks: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    **bent: Any,
) -> tuple[bytes, str]:
    """Envelope bytes and message id; `bent`: more of `forge`'s options (version, clear_tlp...)."""
    return forge(
        env.store,
        env.keyring,
        env.keystore,
        sender,
        payload_type,
        record,
        recipients=recipients,
        topic=topic,
        labels=labels,
        now=to_millis(utc_now()),
        bend_blocks=bend_blocks,
        **bent,
    )
