# `make run`: set up .venv and run the whole pipeline on the embedded dataset.
# `make test`: set up .venv with the test extra and run the test suite.
# `make test-fast`: the unit tests alone (no test marked e2e: none runs DVC, MLflow servers or torchrun)
# `make paper`: docs/protocol.md's table on the embedded data: its DVC experiments seed by seed, each
#   committed once collected (a rerun skips them), then reports/paper.md and the README's table (pipeline/experiments/protocol.py)
# `make ablations`: only the ablations' experiments, then the table
# `make bench`: what the default costs (benchmarks/cost.py: compute, speed, stage times, run cache, -j 2)
# `make ui`: browse the runs in the MLflow UI on http://127.0.0.1:5000
# `make recipe R=voc_deeplabv3_r18`: set a paper recipe's keys in params.yaml, comments kept (pipeline/overlays.py)
# `make lock`: regenerate requirements.lock from pyproject.toml (uv, every platform) after changing a dependency
# `make timings`: time a no-op `dvc repro` and `make test`, size .venv (reports/timings.json), then rewrite the
#   README's figures from the committed files (pipeline/readme.py; reports/gpu_check.json too, which
#   `bash benchmarks/gpu_check.sh` writes on a GPU); `dvc repro` from nothing is timed on a
#   fresh clone: python benchmarks/timings.py time repro -- dvc repro
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
# each stage forked from one interpreter that has imported torch, timm and MLflow: ~8 s less per stage
# process (pipeline/stage_server.py); plain `dvc repro` runs the same stages, each in a fresh interpreter
STAGE_SERVER := $(BIN)/python -m pipeline.stage_server --

.PHONY: run test test-fast paper ablations bench ui recipe lock timings clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# exact versions from the lock (test tools included: one environment for both), then the project itself;
# uv (its version from the lock) downloads and installs in parallel, and takes only this platform's markers;
# --compile-bytecode writes every .pyc at install (about 50 s on a 2-core AMD EPYC), so that no process compiles torch,
# timm or MLflow again where PYTHONDONTWRITEBYTECODE is set (import torch 4.5 -> 2.8 s, timm 12 -> 5.6 s)
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q "$$(grep -m1 '^uv==' requirements.lock | cut -d' ' -f1)"
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	touch $@

run: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(STAGE_SERVER) dvc repro

# tests/install_slurm.sh: Debian's Slurm and munge for tests/test_launch.py's cluster (as root with apt-get;
# elsewhere that test skips and says why)
test: $(VENV)/.installed
	$(BIN)/ruff check .
	sh tests/install_slurm.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" $(STAGE_SERVER) pytest -n 2 --dist loadfile  # two workers, each test file on one

test-fast: $(VENV)/.installed
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n 2 -m "not e2e" -q

# each experiment runs in the workspace from the committed params.yaml; the last `dvc repro` brings the
# workspace back to params.yaml (from the run cache)
paper: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(STAGE_SERVER) sh -c 'python -m commands.paper run --commit && python -m commands.paper report && dvc repro'

ablations: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(STAGE_SERVER) sh -c 'python -m commands.paper run --part ablation --commit && python -m commands.paper report && dvc repro'

bench: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" python benchmarks/cost.py --run --parallel

ui: $(VENV)/.installed
	mkdir -p .mlflow/artifacts
	$(BIN)/mlflow server --host 127.0.0.1 --port 5000 --workers 1 \
		--backend-store-uri sqlite:///$(CURDIR)/.mlflow/mlflow.db \
		--default-artifact-root $(CURDIR)/.mlflow/artifacts

recipe: $(VENV)/.installed
	$(BIN)/python -m pipeline.overlays apply $(R)

# one universal lock: Linux x86-64 (torch's CUDA build), Linux aarch64, macOS arm64 (tests/test_lock.py)
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 --no-emit-index-url \
		-o requirements.lock

# the README first: its test compares it with reports/timings.json as it stands
timings: $(VENV)/.installed
	$(BIN)/python -m pipeline.readme
	PATH="$(CURDIR)/$(BIN):$$PATH" python benchmarks/timings.py time make_test -- $(MAKE) test
	PATH="$(CURDIR)/$(BIN):$$PATH" python benchmarks/timings.py time noop -- dvc repro
	$(BIN)/python benchmarks/timings.py size install $(VENV)
	$(BIN)/python -m pipeline.readme

clean:
	rm -rf data/prepared models/seed* checkpoints reports/eval reports/figures
