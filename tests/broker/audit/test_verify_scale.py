"""`jcu audit verify` streams: its peak memory on a log of a million decisions stays within
the stated bound (docs/audit.md, *At scale*), measured as the RSS of the verifying process."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest

from bench._auditlog import PER_MESSAGE, PUBLISHER, RECEIVERS, SyntheticLog, peak_rss, to_kafka
from broker.clock import utc_now
from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_COSIGNATURES, AUDIT_DECISIONS
from tests.world import World

pytestmark = pytest.mark.kafka
#: The stated bound of `jcu audit verify`'s peak RSS, whatever the size of the log.
VERIFY_RSS_BOUND_MIB = 128
DECISIONS = 1_000_000


async def test_verify_of_a_million_decisions_stays_within_its_memory_bound(
    world: World, tmp_path: Path
) -> None:
    signers = {}
    for org in (PUBLISHER, *RECEIVERS):
        ctx = world.ctx(org)
        kid = ctx.envelope.keyring.current_signing_key_id(org, utc_now())
        signers[org] = ctx.envelope.keystore.signing_key(org, kid)
    log = SyntheticLog(world.ctx(PUBLISHER).envelope.store, signers)
    messages = -(-DECISIONS // PER_MESSAGE)
    prefix = f"test.scale.{uuid.uuid4().hex[:8]}."
    names = {AUDIT_DECISIONS: f"{prefix}decisions", AUDIT_CHECKPOINTS: f"{prefix}checkpoints",
             AUDIT_COSIGNATURES: f"{prefix}cosignatures"}  # fmt: skip
    # The synthetic log is written with the platform admin's rights (it speaks for several
    # enforcement points at once) and verified as an auditor, behind the same walls.
    async with world.audit_walls(prefix, names):
        decisions, checkpoints = await to_kafka(
            world.admin, log, messages, (names[AUDIT_DECISIONS], names[AUDIT_CHECKPOINTS])
        )
        out_file, err_file = tmp_path / "out.json", tmp_path / "err.txt"
        argv = [sys.executable, "-m", "broker.cli", "audit", "verify", "--full", "--json",
                "--decisions-topic", decisions, "--checkpoints-topic", checkpoints,
                "--cosignatures-topic", names[AUDIT_COSIGNATURES]]  # fmt: skip
        with out_file.open("wb") as out, err_file.open("wb") as err:
            code, peak_mib = await asyncio.to_thread(
                peak_rss,
                argv,
                tmp_path / "rss",
                env=world.auditor_env("pesco"),  # a node that takes no part in the log
                stdout=out,
                stderr=err,
            )
        assert code == 0, err_file.read_text()[-2000:]
        out = out_file.read_text()
        report = json.loads(out)
        assert report["ok"]
        points = report["enforcement_points"]
        assert sum(p["decisions"] for p in points) >= DECISIONS
        assert {p["unsealed"] for p in points} == {0}
        assert peak_mib <= VERIFY_RSS_BOUND_MIB, f"peak RSS {peak_mib:.0f} MiB"
