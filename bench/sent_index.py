"""The publisher's sent index as it grows: the cost per message of a publish batch's four
steps (begin, producing, produced, add_many) near the start and with many rows held.

Run: .venv/bin/python -m bench.sent_index [--rows 200000] [--batch 100] [--window 5000]

Drives `SentLog` exactly as `Publisher._send_plans` does per batch: `begin` (bodies
pending, with the audit mark), `producing` (the ids), `produced` (one placement per
copy), `add_many` (bodies sent, sources, the pending rows settled, the mark), with
uuid4 message ids and STIX-like source refs (a random object id, a version, the
bundle) and bodies of three community copies of five recipients. Prints µs per
message over a window of batches once the index holds `--window` rows (the
baseline) and once it holds `--rows`, and their ratio (1 = the cost does not grow
with the index); also the bytes written per batch at each point (the WAL frames and
checkpoints, from /proc/self/io: pages of 4 KiB and their headers).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from bench import _results
from broker.audit import AuditMark
from broker.envelope import Labels
from broker.pep.sent import SentCopy, SentLog, SentMessage, SourceRef

_COMMUNITIES = ("civilian", "law_enforcement", "defence")


def _messages(n: int, bundle: str) -> list[SentMessage]:
    labels = Labels.of("AMBER", categories=("malicious-code",), handling_codes=("H1",))
    copies = tuple(
        SentCopy(c, f"jcu.{c}.indicators", tuple(f"org-{c}-{r}" for r in range(5)))
        for c in _COMMUNITIES
    )
    return [
        SentMessage(
            str(uuid.uuid4()),
            "cert-fr",
            "Indicator",
            labels,
            copies,
            SourceRef(f"indicator--{uuid.uuid4()}", "2026-12-05T08:00:00.000Z", bundle),
            (("soc-x", ("forbid-tlp",)),),
        )
        for _ in range(n)
    ]


def _batch(index: SentLog, messages: list[SentMessage], offset: int) -> None:
    """One publish batch, the publisher's four steps in its order."""
    index.begin(messages, int(time.time() * 1000), mark=AuditMark(offset, offset))
    index.producing(m.message_id for m in messages)
    index.produced(
        (m.message_id, c.topic, c.recipients, 0, offset + i)
        for i, m in enumerate(messages)
        for c in m.copies
    )
    index.add_many(
        messages,
        settled=[m.message_id for m in messages],
        mark=AuditMark(offset + 1, offset + len(messages)),
    )


def _written() -> int:
    """Bytes this process has handed to write() so far (Linux; 0 elsewhere): the WAL frames
    each commit writes and the checkpoints that copy them back."""
    try:
        text = Path("/proc/self/io").read_text(encoding="ascii")
    except OSError:
        return 0
    return next(
        (int(v) for k, v in (ln.split(": ") for ln in text.splitlines()) if k == "wchar"), 0
    )


def _window(index: SentLog, batches: int, batch: int, offset: int) -> tuple[float, float]:
    """µs per message and KiB written per batch over `batches` batches."""
    spent = 0.0
    written = 0
    for b in range(batches):
        messages = _messages(batch, f"bundle--{uuid.uuid4()}")
        before = _written()
        t0 = time.perf_counter()
        _batch(index, messages, offset + b * batch)
        spent += time.perf_counter() - t0
        written += _written() - before
    return spent / (batches * batch) * 1e6, written / 1024 / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows held at the end")
    parser.add_argument("--batch", type=int, default=100, help="messages per publish batch")
    parser.add_argument("--window", type=int, default=5_000, help="messages per measurement")
    args = parser.parse_args()
    batches = max(1, args.window // args.batch)

    with tempfile.TemporaryDirectory(prefix="jcu-bench-sent-") as tmp:
        path = Path(tmp) / "sent" / "cert-fr.sqlite"
        index = SentLog(path, point="cert-fr/publish", retention=timedelta(days=37))
        offset = 0
        # Warm up to one window of rows, then measure the baseline window.
        for _ in range(batches):
            _batch(index, _messages(args.batch, "bundle--warm"), offset)
            offset += args.batch
        small_rows = index.count()
        small_us, small_kib = _window(index, batches, args.batch, offset)
        offset += batches * args.batch
        t_fill = time.perf_counter()
        while index.count() < args.rows - batches * args.batch:
            _batch(index, _messages(args.batch, f"bundle--{offset}"), offset)
            offset += args.batch
            if offset % 50_000 == 0:
                print(f"  filled {index.count():,} rows", flush=True)
        fill_s = time.perf_counter() - t_fill
        large_rows = index.count()
        large_us, large_kib = _window(index, batches, args.batch, offset)
        size_mb = path.stat().st_size / 1e6
        index.close()

    ratio = large_us / small_us
    print(f"sent index, batches of {args.batch}, windows of {batches * args.batch} messages")
    print(f"  at {small_rows:>9,} rows: {small_us:7.1f} µs/msg, {small_kib:6.0f} KiB written/batch")
    print(f"  at {large_rows:>9,} rows: {large_us:7.1f} µs/msg, {large_kib:6.0f} KiB written/batch")
    print(f"  ratio large/small: {ratio:.2f} (1 = does not grow with the index)")
    print(f"  fill: {fill_s:.1f} s; file {size_mb:.0f} MB")
    _results.record(
        "sent_index",
        {
            "small_us_per_message": round(small_us, 1),
            "large_us_per_message": round(large_us, 1),
            "large_over_small": round(ratio, 2),
            "small_kib_per_batch": round(small_kib, 1),
            "large_kib_per_batch": round(large_kib, 1),
        },
        rows=large_rows,
        batch=args.batch,
        window=batches * args.batch,
    )


if __name__ == "__main__":
    main()
