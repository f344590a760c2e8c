# Quick start: `make demo` and `make test` need only python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The peers pin their own Numba (PyTensor needs an older one), so they get a venv of their own.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
# Test processes: most of a test's time is Numba compiling on one core. A file's tests share a process
# (--dist loadfile), so its module fixtures compile once.
TEST_WORKERS ?= 2

.PHONY: demo test test-slow fuzz bench warmup lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,examples]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow -n $(TEST_WORKERS) --dist loadfile

fuzz: $(STAMP)
	GRADC_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -m slow tests/test_expr_random.py

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[dev,examples,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/run.py

# compile the code every model shares once for this machine: a first model then compiles only its own kernels
warmup: $(STAMP)
	$(VENV)/bin/gradc warmup

lint: $(STAMP)
	$(PY) -m ruff check gradc tests benchmarks examples

clean:
	rm -rf $(VENV) $(BENCH_VENV) benchmarks/out examples/out .pytest_cache
