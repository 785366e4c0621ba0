# Two commands do all set-up on a fresh machine with Python 3.11+ and make:
#   make run    start Redis (embedded unless REDIS_URL is set), the API on :8000 and a worker
#   make test   run the whole test suite (prints the 15 slowest tests)
#   make lint   ruff (lint and format check) and mypy; CI runs it before the tests
#   make test-unit  the fast unit tests alone (seconds), for the edit-test loop
#   make soak   (not part of test) traffic for SOAK_SECONDS while a worker and Redis are killed; lost must be 0;
#               then the fairness drill (scripts/fairness_drill.py), the Sentinel failover drill and make fuzz
#   make fuzz   (not part of test) Schemathesis, >= 10,000 cases from /openapi.json, against a stack of its own
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL := models/digits.keras
# The service from the repo root; the client package `inferq` from client/ (pip install ./client elsewhere).
export PYTHONPATH := $(CURDIR):$(CURDIR)/client
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run test test-unit lint soak fuzz failover-drill model bench venv clean

$(STAMP): requirements.txt requirements-common.txt requirements-api.txt requirements-grpc.txt requirements-worker.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

$(MODEL): | $(STAMP)
	$(PY) -m models.build_digits $(MODEL)

model: $(STAMP)  ## retrain the example model
	$(PY) -m models.build_digits $(MODEL)

run: $(STAMP) $(MODEL)
	$(PY) -m scripts.stack

# Two test processes (pytest-xdist), each with its own Redis; a test file's fixtures stay in one process.
TEST_PROCESSES ?= 2
test: $(STAMP) $(MODEL)
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile --durations=15 $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: $(STAMP) $(MODEL)  ## not part of `make test`; BENCH_QUICK=1 for a short run
	$(PY) -m bench.run

soak: $(STAMP) $(MODEL)  ## SOAK_SECONDS (default 60) of traffic while a worker and Redis are killed, the fairness drill, the rollout drill (ROLLOUT_VERSIONS), the failover drill and fuzz
	$(PY) -m scripts.soak
	$(PY) -m scripts.fairness_drill
	$(PY) -m scripts.rollout_drill
	$(PY) -m scripts.failover_drill
	$(MAKE) fuzz

failover-drill: $(STAMP) $(MODEL)  ## master SIGKILLed under traffic, replica promoted by Sentinel; prints jobs lost and the window
	$(PY) -m scripts.failover_drill

FUZZ_EXAMPLES ?= 500
FUZZ_SEED ?= 1
fuzz: $(STAMP) $(MODEL)  ## Schemathesis against a stack of its own: every check, at least 10,000 cases
	$(PY) -m scripts.fuzz --examples $(FUZZ_EXAMPLES) --seed $(FUZZ_SEED) --min-cases 10000

clean:
	rm -rf $(VENV) var .pytest_cache
