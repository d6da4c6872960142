# Two commands on a fresh clone: `make demo` and `make test`.
# Both create .venv at the repo root when it is missing and install everything.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint bench-quality bench-latency bench-peers bench-wrapper clean

$(STAMP): pyproject.toml constraints.txt integrations/langchain/pyproject.toml integrations/llama_index/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0 -e '.[local,postgres,dev,peers]' \
		-e 'integrations/langchain[agents]' -e integrations/llama_index
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check headroom_memory integrations tests benchmarks examples
	$(VENV)/bin/mypy

DATA ?= ../shared/data/locomo/dev.json

bench-quality: $(STAMP)
	$(PY) benchmarks/locomo_recall.py --data $(DATA)

bench-latency: $(STAMP)
	$(PY) benchmarks/latency.py

bench-peers: $(STAMP)
	$(PY) benchmarks/peers.py --data $(DATA)

bench-wrapper: $(STAMP)
	$(PY) benchmarks/wrapper_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
