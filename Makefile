# Two commands do all set-up on a fresh machine:
#   make demo   local Kafka + the whole scenario (DEMO_ARGS=--serve keeps the console up)
#   make test   the test suite (starts its own real Kafka unless KAFKA_BOOTSTRAP is set)
# The suite in two lanes (together exactly `make test`; markers set in tests/conftest.py):
#   make test-unit    no Kafka, no Java, no browser, on every core: under a minute
#   make test-kafka   the rest: the real broker (and Chromium for the console's browser tests)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test test-unit test-kafka demo lint format bench clean fault-loop mutation

UNIT_LANE := not kafka and not browser

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# the unit lane on every core (pytest-xdist): its tests share no state; UNIT_JOBS=0 runs it
# in this process
UNIT_JOBS ?= auto
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "$(UNIT_LANE)" -n $(UNIT_JOBS)

test-kafka: $(STAMP)
	$(BIN)/python -m pytest -m "not ($(UNIT_LANE))"

# The fault tests N times in a row (default 20), reporting any run that flaked.
FAULT_RUNS ?= 20
fault-loop: $(STAMP)
	PYTHON=$(BIN)/python tests/faults/loop.sh $(FAULT_RUNS)

lint: $(STAMP)
	$(BIN)/ruff check broker connectors tests bench tools
	$(BIN)/ruff format --check broker connectors tests bench tools
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format broker connectors tests bench tools

demo: $(STAMP)
	$(BIN)/jcu demo $(DEMO_ARGS)

# Every bench, then issue 19's table of figures against goals (bench/summary.py).
bench: $(STAMP)
	for b in bench/[a-z]*.py; do \
		n=$$(basename $$b .py); [ $$n = summary ] || $(BIN)/python -m bench.$$n || exit 1; \
	done
	$(BIN)/python -m bench.summary

# Remove each security check in turn (opener, keyring, policy cache, audit verifier) and
# run the unit tests that cover it; lists the surviving mutants (docs/mutation.md).
# One module: make mutation MUTATION_ARGS=broker/envelope/opener.py
mutation: $(STAMP)
	$(BIN)/python -m tools.mutation $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-out
