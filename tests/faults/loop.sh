#!/bin/sh
# Runs the fault tests (deterministic injection: broker/faults.py, tests/hooks.py) N times
# in a row, default 20, each run a fresh pytest session with its own Kafka, and reports
# every run that failed and which tests failed in it. Exit 0 only if none flaked.
#
#   tests/faults/loop.sh [N]        (or: make fault-loop [FAULT_RUNS=N])
#
# FAULT_TESTS overrides the test selection (pytest arguments).
set -u
runs=${1:-20}
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here" || exit 2
python=${PYTHON:-.venv/bin/python}
tests=${FAULT_TESTS:-"tests/broker/pep/test_fault_points.py tests/broker/pep/test_state_faults.py tests/broker/pep/test_sink_outage.py tests/broker/pep/test_channels.py tests/broker/pep/test_exactly_once.py::test_subscriber_killed_mid_stream_delivers_and_audits_each_message_once"}
logs=$(mktemp -d "${TMPDIR:-/tmp}/jcu-fault-loop.XXXXXX")
failed=0
i=1
while [ "$i" -le "$runs" ]; do
    started=$(date +%s)
    # shellcheck disable=SC2086 # the selection is a list of pytest arguments
    if "$python" -m pytest $tests -q -p no:cacheprovider -rf >"$logs/run-$i.log" 2>&1; then
        echo "run $i/$runs: ok ($(( $(date +%s) - started )) s)"
    else
        failed=$((failed + 1))
        echo "run $i/$runs: FAILED ($(( $(date +%s) - started )) s), log $logs/run-$i.log:"
        grep -E '^(FAILED|ERROR) ' "$logs/run-$i.log" | sed 's/^/    /'
    fi
    i=$((i + 1))
done
echo "fault loop: $failed of $runs runs failed (logs in $logs)"
[ "$failed" -eq 0 ]
