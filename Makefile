# tf-lifecycle: every target sets up what it needs first. CI runs `make test` (.ci/run).
#   make run    install the environment, then run the whole DAG on configs/default.yaml
#   make test   install the environment and test tools, then run the tests
#   make lint   ruff, mypy and snakemake --lint
#   make dag    render the rule graph to docs/rulegraph.svg (needs Graphviz `dot`)
#   make reliability  run the fault-injection tests and write their table into docs/reliability.md
#   make bench  run every benchmark in benchmarks/ (needs a finished `make run`; ~30 minutes)
#   make slurm-jobs    list the latest Slurm run's jobs: rule, wildcards, state, log (RUN=<id> for another)
#   make slurm-cancel  scancel what the latest Slurm run left queued or running (RUN=<id> for another)
#   make bench-slurm   the default DAG through the Slurm profile against a local run (needs Slurm)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MAIN_STAMP := $(VENV)/.installed-main
TEST_STAMP := $(VENV)/.installed-test
CORES ?= all

.PHONY: run test lint dag env clean reliability bench slurm-jobs slurm-cancel bench-slurm

env: $(MAIN_STAMP)

$(MAIN_STAMP): envs/main.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r envs/main.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(TEST_STAMP): $(MAIN_STAMP) envs/test.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r envs/test.txt
	touch $@

run: $(MAIN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES)

test: $(TEST_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

reliability: $(TEST_STAMP)
	rm -f build/reliability-table.md && mkdir -p build
	PATH="$(CURDIR)/$(BIN):$$PATH" TF_LIFECYCLE_RELIABILITY_TABLE=$(CURDIR)/build/reliability-table.md \
	  $(BIN)/python -m pytest tests/test_resume.py tests/test_faults.py tests/test_bad_input.py tests/test_damaged_files.py \
	  tests/test_slurm.py -k "not two_workers and not interrupting"
	$(BIN)/python tests/write_reliability.py build/reliability-table.md docs/reliability.md

BENCHMARKS := tfrecord_write input_pipeline training_overhead dag_scale cached_rerun step_startup deploy_formats

bench: $(MAIN_STAMP)
	@test -f results/report/reproduction.md || { echo "make bench needs a finished run: make run"; exit 1; }
	for name in $(BENCHMARKS); do \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/$$name.py || echo "$$name: target missed or failed"; \
	done

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check workflow scripts tests
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

dag: $(MAIN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --rulegraph | dot -Tsvg -o docs/rulegraph.svg
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --rulegraph | dot -Tpng -Gdpi=110 -o docs/rulegraph.png

clean:
	rm -rf results .snakemake

slurm-jobs: $(MAIN_STAMP)
	$(BIN)/python -m workflow.infra.slurm_jobs list $(RUN)

slurm-cancel: $(MAIN_STAMP)
	$(BIN)/python -m workflow.infra.slurm_jobs cancel $(RUN)

bench-slurm: $(MAIN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/slurm_polling.py
