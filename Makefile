# `make run`: set up .venv and run the whole pipeline on the embedded dataset.
# `make test`: set up .venv with the test extra and run the test suite.
# `make ablations`: queue and run the LAD ablations as DVC experiments, tabulate them into the report.
# `make bench`: what the default costs (benchmarks/cost.py: compute, speed, stage times, run cache, -j 2)
# `make ui`: browse the runs in the MLflow UI on http://127.0.0.1:5000
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1

.PHONY: run test ablations bench ui clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -e ".[test]"
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

test: $(VENV)/.installed-test
	PATH="$(CURDIR)/$(BIN):$$PATH" pytest

ablations: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m stages.ablations queue
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp run --run-all
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m stages.ablations report
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro report

bench: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" python benchmarks/cost.py --run --parallel

ui: $(VENV)/.installed
	mkdir -p .mlflow/artifacts
	$(BIN)/mlflow server --host 127.0.0.1 --port 5000 --workers 1 \
		--backend-store-uri sqlite:///$(CURDIR)/.mlflow/mlflow.db \
		--default-artifact-root $(CURDIR)/.mlflow/artifacts

clean:
	rm -rf data/prepared models/seed* checkpoints reports/eval reports/figures
