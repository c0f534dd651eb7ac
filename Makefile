# deepscope: two commands, `make demo` and `make test`. Both create .venv if it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deepscope-installed
DEMO_OUT ?= demo_out
# A CPU build of torch keeps installs small; set TORCH_SPEC/TORCH_INDEX to override (see DEVELOPERS.md).
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test install torch-cpu bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	@# uv resolves and installs in ~15 s where pip takes ~50 s; pip is the fallback when uv cannot be had.
	@$(PY) -m pip install -q uv 2>&1 | grep -v "is ignored" || true
	@$(PY) -c "import torch" 2>/dev/null || $(MAKE) --no-print-directory torch-cpu
	@$(PY) -m uv pip install -q --python $(PY) -e ".[dev]" \
	  || $(PY) -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
	@$(PY) -c "import deepscope, torch, tifffile, imagecodecs" 
	@touch $(STAMP)

# CPU torch: a local wheel when the machine has one (pip's find-links; uv unpacks it in ~2 s where pip takes
# ~12 s), else PyTorch's CPU index.
torch-cpu:
	@echo "installing a CPU build of $(TORCH_SPEC)"
	@LINKS=""; for d in $$($(PY) -m pip config get global.find-links 2>/dev/null) $$PIP_FIND_LINKS; do \
	   LINKS="$$LINKS --find-links $$d"; done; \
	 ( test -n "$$LINKS" && $(PY) -m uv pip install -q --python $(PY) --no-index --no-deps $$LINKS "$(TORCH_SPEC)" 2>/dev/null ) \
	  || $(PY) -m pip install -q --no-index --no-deps "$(TORCH_SPEC)" 2>/dev/null \
	  || $(PY) -m pip install -q --index-url $(TORCH_INDEX) "$(TORCH_SPEC)"

demo: $(STAMP)
	@$(PY) -m deepscope.demo --out $(DEMO_OUT)

# PYTHONDONTWRITEBYTECODE is cleared for the tests: with it set (as on this machine) every test process and
# every subprocess a test starts would compile the same modules from source again (pytest's rewritten tests too).
# Whole files go to the two workers in collection order, long files first (tests/conftest.py).
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=20

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info src/*.egg-info
