"""Mutation testing of the security checks: does removing a check fail a test?

    make mutation                                   # every module below
    python -m tools.mutation broker/envelope/opener.py
    python -m tools.mutation --list broker/audit/verify.py

For each module, every refusal is removed in turn (`tools._mutants` says how),
and the module's fast unit tests (no Kafka) run against that mutant in a child
process, one at a time (one worker: the suite shares the machine). A mutant the
tests fail on is killed; one they pass on survived: a check no test needs. A
survivor is either killed with a new test or explained below (`EXPLAINED`,
mirrored in docs/mutation.md); the run exits non-zero on any other survivor.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tools._mutants import Mutant, mutants

ROOT = Path(__file__).resolve().parent.parent

#: measures memory over 20,000 leaves: slow, and no check of its own
_MEMORY_TEST = "tests/broker/audit/test_verify.py::test_memory_does_not_grow_with_the_log"
#: module -> the narrowest unit-test selection that exercises its checks.
TARGETS: dict[str, tuple[str, ...]] = {
    "broker/envelope/opener.py": ("tests/broker/envelope",),
    "broker/envelope/checks.py": ("tests/broker/envelope",),
    "broker/pep/checks.py": ("tests/broker/pep/test_checks.py",),
    "broker/trust/keyring.py": ("tests/broker/trust", "tests/broker/envelope/test_tamper.py"),
    "broker/trust/records.py": ("tests/broker/trust", "tests/broker/envelope/test_tamper.py"),
    "broker/policy/_engine.py": ("tests/broker/policy",),
    "broker/policy/_cacheable.py": ("tests/broker/policy",),
    "broker/audit/verify.py": (
        "tests/broker/audit/test_verify.py",
        "tests/broker/audit/test_verify_checks.py",
        "tests/broker/audit/test_witness.py",
        "tests/broker/audit/test_pack.py",
        f"--deselect={_MEMORY_TEST}",
    ),
    "broker/audit/checkpoint.py": (
        "tests/broker/audit/test_verify.py",
        "tests/broker/audit/test_verify_checks.py",
        "tests/broker/audit/test_witness.py",
        "tests/broker/audit/test_note.py",
        "tests/broker/audit/test_checkpoint.py",
        f"--deselect={_MEMORY_TEST}",
    ),
}

#: (module, Mutant.ident) -> why its survival is not a missing test (docs/mutation.md).
_VERIFY, _CHECKPOINT = "broker/audit/verify.py", "broker/audit/checkpoint.py"
EXPLAINED: dict[tuple[str, str], str] = {
    (
        "broker/policy/_engine.py",
        "PolicyEngine._decide:drop-conjunct:msg.incident is not None in msg.incident is not "
        "None and msg.incident in crisis_incid...",
    ): "equivalent: crisis incidents are strings (frozenset[str]), so None is never in them",
    (
        _VERIFY,
        "Verifier._start_records:drop-condition:held.what == 'checkpoint' and held.root == "
        "s.root_hash in held is None or (held.what == 'checkpoint' and held.root ...",
    ): "equivalent: a sighting that agrees with the checkpoint at its size then reaches "
    "`if held.root != s.root_hash`, which is false for it: nothing is recorded either way",
    (
        _VERIFY,
        "Verifier._resent:drop-condition:index != next_index in index != next_index or "
        "link != last",
    ): "equivalent: each leaf hashes its own index and links to its predecessor's hash, so a "
    "run whose links hold has consecutive indices (the link check, which a test needs, "
    "refuses any run this one would)",
    (
        _VERIFY,
        "Verifier._resent:drop-conjunct:index == expected - 1 in index == expected - 1 and "
        "leaf == p.last_leaf",
    ): "equivalent: only indices >= expected - 1 reach it, and a leaf equal to the tree's "
    "last leaf has that leaf's index (the index is inside the hashed bytes)",
    (
        _VERIFY,
        "Verifier._modified:drop-condition:expected == 0 in expected == 0 or p.last is None",
    ): "equivalent: at index 0 there is no previous record, so p.last is None as well",
    (
        _CHECKPOINT,
        "Checkpoint.from_body:drop-condition:not all(lines) in len(lines) != 4 or not all(lines)",
    ): "equivalent: an empty origin, size, root or time line is refused by that line's own "
    "check (test_checkpoint.py, test_note.py); only the wording of the error differs",
}

#: the unit lane (as `make test-unit`), one process, stopping at the first failure
_PYTEST: tuple[str, ...] = ("-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=")
_PYTEST += ("-m", "not kafka and not browser")


@dataclass(frozen=True, slots=True)
class Outcome:
    mutant: Mutant
    #: "killed", "timeout" (killed too), "survived", or "error" (the child could not run)
    verdict: str
    seconds: float


def _run(module: str, index: int, timeout: float) -> tuple[int | None, str]:
    """Run the module's tests against mutant `index` (-1: none); (exit status, output)."""
    cmd = [sys.executable, "-m", "tools._mutant_run", module, str(index), "--"]
    cmd += [*_PYTEST, *TARGETS[module]]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None, ""
    return done.returncode, done.stdout + done.stderr


def _verdict(status: int | None) -> str:
    if status is None:
        return "timeout"
    return {0: "survived", 1: "killed"}.get(status, "error")


def run_module(module: str, timeout: float) -> list[Outcome]:
    found = mutants(ROOT / module)
    tests = " ".join(TARGETS[module])
    print(f"{module}: {len(found)} mutants; tests: {tests}", flush=True)
    status, output = _run(module, -1, timeout)
    if status != 0:
        sys.exit(f"{module}: the unmutated tests do not pass (exit {status}):\n{output[-3000:]}")
    outcomes = []
    for m in found:
        start = time.monotonic()
        status, output = _run(module, m.index, timeout)
        outcome = Outcome(m, _verdict(status), time.monotonic() - start)
        outcomes.append(outcome)
        print(
            f"  [{m.index + 1:>3}/{len(found)}] line {m.line:>4} {m.kind:<14} "
            f"{outcome.verdict:<8} {outcome.seconds:5.1f}s  {m.function}: {m.check}",
            flush=True,
        )
        if outcome.verdict == "error":
            print(output[-2000:], file=sys.stderr)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.mutation",
        description="Remove each security check in turn and run the unit tests that cover it.",
    )
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant run")
    args = parser.parse_args(argv)
    modules = args.modules or list(TARGETS)
    unknown = [m for m in modules if m not in TARGETS]
    if unknown:
        parser.error(f"not a mutation target: {', '.join(unknown)}; targets: {', '.join(TARGETS)}")
    if args.list:
        for module in modules:
            for m in mutants(ROOT / module):
                print(f"{module}:{m.line}: [{m.index}] {m.ident}")
        return 0

    results = {module: run_module(module, args.timeout) for module in modules}
    print("\nmodule                          mutants  killed  explained  survived  errors")
    unexplained: list[tuple[str, Outcome]] = []
    for module, outcomes in results.items():
        killed = sum(o.verdict in ("killed", "timeout") for o in outcomes)
        errors = sum(o.verdict == "error" for o in outcomes)
        survived = [o for o in outcomes if o.verdict == "survived"]
        explained = [o for o in survived if (module, o.mutant.ident) in EXPLAINED]
        unexplained += [(module, o) for o in survived if o not in explained]
        print(
            f"{module:<32}{len(outcomes):>7}{killed:>8}{len(explained):>11}"
            f"{len(survived) - len(explained):>10}{errors:>8}"
        )
    for module, o in ((m, o) for m, outs in results.items() for o in outs):
        reason = EXPLAINED.get((module, o.mutant.ident))
        if o.verdict == "survived" and reason:
            print(f"explained  {module}:{o.mutant.line} {o.mutant.ident}\n           {reason}")
    for module, o in unexplained:
        print(f"SURVIVED   {module}:{o.mutant.line} {o.mutant.ident}")
    failed = bool(unexplained) or any(o.verdict == "error" for v in results.values() for o in v)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
