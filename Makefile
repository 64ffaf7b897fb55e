# ftsweep — two commands on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
FTSWEEP := $(VENV)/bin/ftsweep
# The CPU build of torch on this disk; a plain `torch` from PyPI pulls a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.ftsweep-installed

.PHONY: demo search slurm-test-deps browser-test-deps test test-fast check lint format typecheck data model clean-demo

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)  ## train the demo grid and write its report
	$(FTSWEEP) launch experiments/grid.yaml; status=$$?; \
	$(FTSWEEP) report --experiment grid && \
	echo "report: $$(pwd)/reports/grid/index.html" && exit $$status

search: $(STAMP)  ## search each method's space (Optuna, pruning) and write its report
	$(FTSWEEP) launch experiments/search.yaml; status=$$?; \
	$(FTSWEEP) report --experiment search && \
	echo "report: $$(pwd)/reports/search/index.html" && exit $$status

# Two workers: much of the suite waits on subprocesses (accelerate launch, Slurm's
# scheduler, the sandbox), so two at once finish sooner even on 2 cores.
test: $(STAMP)  ## the whole test suite (includes real training through accelerate launch)
	$(PY) -m pytest -q -n 2 --dist loadgroup

test-fast: $(STAMP)  ## everything but the slow end-to-end training tests
	$(PY) -m pytest -q -m "not slow"

# Debian's Slurm and munge, for the Slurm executor's tests (a real single-node cluster
# started by the tests themselves). Needs root and the package registries; CI calls it.
slurm-test-deps:
	@if command -v slurmctld >/dev/null && command -v munged >/dev/null; then \
		echo "slurm and munge are installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			slurm-wlm munge >/dev/null; \
	else \
		echo "slurm-test-deps: run as root (apt-get install slurm-wlm munge)" >&2; exit 1; \
	fi

# Debian's Chromium, for the report's browser test (tests/test_report_browser.py drives it
# through Playwright; no browser download). Needs root and the package registries; CI calls it.
browser-test-deps:
	@if command -v chromium >/dev/null; then \
		echo "chromium is installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium >/dev/null; \
	else \
		echo "browser-test-deps: run as root (apt-get install chromium)" >&2; exit 1; \
	fi

check: lint typecheck

lint: $(STAMP)
	$(VENV)/bin/ruff check ftsweep tests scripts benchmarks
	$(VENV)/bin/ruff format --check ftsweep tests scripts benchmarks

format: $(STAMP)  ## format the code base (make check fails on unformatted files)
	$(VENV)/bin/ruff format ftsweep tests scripts benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy ftsweep

data: $(STAMP)  ## regenerate data/ (deterministic; same bytes as committed)
	$(PY) scripts/make_data.py

model: $(STAMP)  ## retrain models/tiny-base (CPU, minutes; same files as committed)
	$(PY) scripts/build_tiny_base.py

clean-demo:
	rm -rf .ftsweep reports/grid

# Offline GPU machines: every wheel ftsweep needs beyond torch, for their Python and platform.
# make wheelhouse PYTHON=3.12 PLATFORM=manylinux_2_28_x86_64 CUDA=13.0   (docs/gpu.md)
PYTHON     ?= 3.12
PLATFORM   ?= manylinux_2_28_x86_64
CUDA       ?=
WHEELHOUSE ?= wheelhouse
.PHONY: wheelhouse
wheelhouse: $(STAMP)  ## wheels for an offline GPU machine (its own torch stays)
	$(PY) scripts/wheelhouse.py --python $(PYTHON) --platform $(PLATFORM) --out $(WHEELHOUSE) \
		$(if $(CUDA),--cuda $(CUDA)) $(if $(EXCLUDE_FROM),--exclude-from $(EXCLUDE_FROM))
